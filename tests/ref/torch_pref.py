#!/usr/bin/python3
"""Independent PyTorch reference of the critique-phase objectives.

usage: /usr/bin/python3 tests/ref/torch_pref.py IN.h5 OUT.h5

IN.h5 is tests/ref/torch_ref.py's input (model, tokens, targets, pos, doc,
weights) plus /input/example (B,T int: which sequence a target token
belongs to, -1 for none) and /pairs/{chosen,rejected} (sequence ids),
/pairs/{ref_w,ref_l} (reference log-probs) with root attributes objective
("dpo" | "brio" | "sd"), beta, margin, rank_weight, ce_weight.  A
sequence's log-prob is the sum of log_softmax(logits)[target] over its
tokens (weights > 0).  Losses, as in Rafailov et al. 2023 (DPO), Liu et al.
2022 (BRIO, length-normalised with a margin, plus cross-entropy on the
chosen sequence) and plain cross-entropy on the chosen sequence (SD), are
averaged over the pairs.  OUT.h5: /loss (float64), /grads/<param>.
Computed in float64.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref  # noqa: E402  (sets the thread environment before torch)
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    cfg, params, inp = torch_ref.read_input(argv[1])
    with h5py.File(argv[1], "r") as f:
        example = np.asarray(f["/input/example"][()]).astype(np.int64)
        chosen = np.asarray(f["/pairs/chosen"][()]).astype(np.int64)
        rejected = np.asarray(f["/pairs/rejected"][()]).astype(np.int64)
        ref_w = torch.as_tensor(np.asarray(f["/pairs/ref_w"][()], dtype=np.float64))
        ref_l = torch.as_tensor(np.asarray(f["/pairs/ref_l"][()], dtype=np.float64))
        a = f.attrs
        obj = a["objective"].decode() if isinstance(a["objective"], bytes) else str(a["objective"])
        beta, margin = float(a["beta"]), float(a["margin"])
        rank_w, ce_w = float(a["rank_weight"]), float(a["ce_weight"])
    model = torch_ref.RefGPT(cfg, params)
    t = lambda k: torch.as_tensor(inp[k].astype(np.int64))
    logits = model(t("tokens"), t("pos"), t("doc"))
    logp_tok = F.log_softmax(logits, dim=-1).gather(-1, t("targets")[..., None])[..., 0]  # (B,T)
    mask = torch.as_tensor(inp["weights"] > 0)
    ex = torch.as_tensor(example)
    n_seq = int(example.max()) + 1
    seq_logp = torch.stack([logp_tok[(ex == s) & mask].sum() for s in range(n_seq)])
    seq_len = torch.stack([((ex == s) & mask).sum() for s in range(n_seq)]).to(torch.float64)
    lw, ll = seq_logp[chosen], seq_logp[rejected]
    nw, nl = seq_len[chosen], seq_len[rejected]
    if obj == "dpo":
        losses = -F.logsigmoid(beta * ((lw - ref_w) - (ll - ref_l)))
    elif obj == "brio":
        losses = rank_w * torch.clamp(margin - (lw / nw - ll / nl), min=0) + ce_w * (-lw / nw)
    elif obj == "sd":
        losses = -lw / nw
    else:
        print("torch_pref: error: unknown objective %r" % obj, file=sys.stderr)
        return 2
    loss = losses.mean()
    loss.backward()
    with h5py.File(argv[2], "w") as f:
        f.create_dataset("loss", data=np.float64(loss.item()))
        f.create_dataset("seq_logp", data=seq_logp.detach().numpy())
        g = f.create_group("grads")
        for n in model.names:
            gr = model.param(n).grad
            arr = np.zeros(torch_ref.param_shapes(cfg)[n]) if gr is None else gr.detach().numpy()
            g.create_dataset(n, data=arr.astype(np.float32))
    print("torch_pref: %s loss=%.17g" % (obj, loss.item()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
