#!/usr/bin/python3
"""Independent float64 PyTorch reference for the hdistill Llama-style student
(LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM), written from the
published architecture; transformers is not used.

Usage:
    /usr/bin/python3 tests/ref/torch_llama.py IN.h5 OUT.h5 [IN2.h5 OUT2.h5 ...]
    /usr/bin/python3 tests/ref/torch_llama.py --selftest

IN.h5 (written by a C test through tests/unit/torch_io.h):
    root attributes  n_layer, n_head, d_model, vocab_size, max_seq_len, B, T (int),
                     arch = "llama", n_kv_head, head_dim, d_ff, qkv_bias, qk_norm,
                     tie_embeddings, rope_llama3, rope_original_max_pos (int),
                     norm_eps, rope_theta, rope_factor, rope_low_freq_factor,
                     rope_high_freq_factor (float)
    /params/<name>   float32, Hugging Face names and shapes (param_shapes below)
    /input/tokens, targets, pos, doc  int32 (B,T);  /input/weights float32 (B,T)

OUT.h5:
    /logits          float32 (B,T,V)
    /loss            float64   -sum w[b,t] log_softmax(logits[b,t])[target[b,t]]
    /grads/<name>    float32, d loss / d param, every parameter

The model, in float64:
    x = embed_tokens[tokens]
    per layer:  a = RMSNorm(x) * input_layernorm
                q, k, v = a Wq^T (+bq), a Wk^T (+bk), a Wv^T (+bv), split into heads of head_dim
                q, k = RMSNorm_per_head(q) * q_norm, ... (qk_norm, before the rotation)
                q, k rotated: x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1),
                    angles pos * inv_freq (cat(freqs, freqs)); inv_freq = theta^(-2j/hd),
                    with llama3 scaling (factor, low/high frequency factors, original context)
                k, v repeated n_head/n_kv_head times (repeat_kv); softmax(q k^T / sqrt(hd) + mask) v
                x = x + y Wo^T
                m = RMSNorm(x) * post_attention_layernorm;  x = x + down(silu(gate m) * up m)
    logits = (RMSNorm(x) * norm) head^T, head = embed_tokens if tied else lm_head
Mask: query t sees key s iff s <= t and doc[b,s] == doc[b,t].  RMSNorm(x) = x / sqrt(mean(x^2) + eps).

Exit 0 with one summary line per pair; on malformed input one line "torch_llama: error: ..." on stderr, exit 2.
"""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ["OMP_NUM_THREADS"])

import math  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
DTYPE = torch.float64
INT_KEYS = ("n_layer", "n_head", "d_model", "vocab_size", "max_seq_len", "B", "T", "n_kv_head", "head_dim", "d_ff",
            "qkv_bias", "qk_norm", "tie_embeddings", "rope_llama3", "rope_original_max_pos")
REAL_KEYS = ("norm_eps", "rope_theta", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor")
INPUT_KEYS = ("tokens", "targets", "pos", "doc", "weights")


class InputError(Exception):
    pass


def param_shapes(cfg):
    """Hugging Face names -> shapes, in the model's order."""
    C, V, hd, F = cfg["d_model"], cfg["vocab_size"], cfg["head_dim"], cfg["d_ff"]
    QD, KD = cfg["n_head"] * hd, cfg["n_kv_head"] * hd
    shapes = {"model.embed_tokens.weight": (V, C)}
    for l in range(cfg["n_layer"]):
        p = "model.layers.%d." % l
        shapes[p + "input_layernorm.weight"] = (C,)
        for n, rows in (("q", QD), ("k", KD), ("v", KD)):
            shapes[p + "self_attn.%s_proj.weight" % n] = (rows, C)
            if cfg["qkv_bias"]:
                shapes[p + "self_attn.%s_proj.bias" % n] = (rows,)
        shapes[p + "self_attn.o_proj.weight"] = (C, QD)
        if cfg["qk_norm"]:
            shapes[p + "self_attn.q_norm.weight"] = (hd,)
            shapes[p + "self_attn.k_norm.weight"] = (hd,)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (F, C)
        shapes[p + "mlp.up_proj.weight"] = (F, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F)
    shapes["model.norm.weight"] = (C,)
    if not cfg["tie_embeddings"]:
        shapes["lm_head.weight"] = (V, C)
    return shapes


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------
def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def inv_freq(cfg):
    hd = cfg["head_dim"]
    f = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=DTYPE) / hd))
    if not cfg["rope_llama3"]:
        return f
    factor, lo, hi = cfg["rope_factor"], cfg["rope_low_freq_factor"], cfg["rope_high_freq_factor"]
    orig = cfg["rope_original_max_pos"]
    wavelen = 2 * math.pi / f
    scaled = torch.where(wavelen > orig / lo, f / factor, f)  # long wavelengths: interpolated by factor
    smooth = (orig / wavelen - lo) / (hi - lo)
    mid = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= orig / hi) & (wavelen <= orig / lo)
    return torch.where(medium, mid, scaled)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope(x, cos, sin):
    return x * cos + rotate_half(x) * sin


def repeat_kv(x, n):
    B, KV, T, hd = x.shape
    return x[:, :, None].expand(B, KV, n, T, hd).reshape(B, KV * n, T, hd)


def forward(cfg, g, tokens, pos, doc):
    """logits (B,T,V); g(name) returns the float64 parameter."""
    NH, KV, hd, eps = cfg["n_head"], cfg["n_kv_head"], cfg["head_dim"], cfg["norm_eps"]
    B, T = tokens.shape
    x = g("model.embed_tokens.weight")[tokens]
    freqs = pos.to(DTYPE)[..., None] * inv_freq(cfg)  # (B,T,hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # (B,1,T,hd)
    allowed = (torch.tril(torch.ones(T, T, dtype=torch.bool))[None] & (doc[:, :, None] == doc[:, None, :]))[:, None]
    for l in range(cfg["n_layer"]):
        p = "model.layers.%d.self_attn." % l
        a = rms_norm(x, g("model.layers.%d.input_layernorm.weight" % l), eps)

        def proj(n, heads):
            y = a @ g(p + n + "_proj.weight").t()
            if cfg["qkv_bias"]:
                y = y + g(p + n + "_proj.bias")
            return y.reshape(B, T, heads, hd)

        q, k, v = proj("q", NH), proj("k", KV), proj("v", KV)
        if cfg["qk_norm"]:
            q = rms_norm(q, g(p + "q_norm.weight"), eps)
            k = rms_norm(k, g(p + "k_norm.weight"), eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k, v = repeat_kv(k, NH // KV), repeat_kv(v, NH // KV)
        s = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        att = torch.softmax(s.masked_fill(~allowed, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, NH * hd)
        x = x + y @ g(p + "o_proj.weight").t()
        m = rms_norm(x, g("model.layers.%d.post_attention_layernorm.weight" % l), eps)
        mp = "model.layers.%d.mlp." % l
        hmid = torch.nn.functional.silu(m @ g(mp + "gate_proj.weight").t()) * (m @ g(mp + "up_proj.weight").t())
        x = x + hmid @ g(mp + "down_proj.weight").t()
    x = rms_norm(x, g("model.norm.weight"), eps)
    return x @ g("model.embed_tokens.weight" if cfg["tie_embeddings"] else "lm_head.weight").t()


def weighted_nll(logits, targets, weights):
    logp = torch.log_softmax(logits, dim=-1)
    return -(weights * logp.gather(-1, targets[..., None])[..., 0]).sum()


def compute(cfg, params, inp):
    """-> (logits float64 np, loss float, {name: float64 grad np})."""
    P = {n: torch.tensor(np.asarray(a, np.float64), requires_grad=True) for n, a in params.items()}
    t = {k: torch.as_tensor(np.asarray(inp[k]).astype(np.int64)) for k in ("tokens", "targets", "pos", "doc")}
    logits = forward(cfg, P.__getitem__, t["tokens"], t["pos"], t["doc"])
    loss = weighted_nll(logits, t["targets"], torch.as_tensor(np.asarray(inp["weights"], np.float64)))
    loss.backward()
    grads = {n: (P[n].grad if P[n].grad is not None else torch.zeros_like(P[n])).numpy().copy() for n in P}
    return logits.detach().numpy(), float(loss.item()), grads


def logits_of(cfg, params, tokens, pos, doc):
    """float64 logits without gradients (for tests/ref/hf_llama.py)."""
    P = {n: torch.as_tensor(np.asarray(a, np.float64)) for n, a in params.items()}
    with torch.no_grad():
        return forward(cfg, P.__getitem__, *(torch.as_tensor(np.asarray(a).astype(np.int64))
                                             for a in (tokens, pos, doc))).numpy()


# --------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------
def read_input(path):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError("cannot open '%s': %s" % (path, e))
    with f:
        if f.attrs.get("arch", b"") not in ("llama", b"llama"):
            raise InputError("%s: root attribute arch is not 'llama'" % path)
        cfg = {}
        for k in INT_KEYS + REAL_KEYS:
            if k not in f.attrs:
                raise InputError("%s: missing root attribute '%s'" % (path, k))
            v = np.asarray(f.attrs[k]).reshape(())
            cfg[k] = int(v) if k in INT_KEYS else float(v)
        for k in ("n_layer", "n_head", "d_model", "vocab_size", "B", "T", "n_kv_head", "head_dim", "d_ff"):
            if cfg[k] <= 0:
                raise InputError("%s: attribute %s=%d must be positive" % (path, k, cfg[k]))
        if cfg["n_head"] % cfg["n_kv_head"] or cfg["head_dim"] % 2:
            raise InputError("%s: n_kv_head must divide n_head and head_dim be even" % path)
        params = {}
        for name, shape in param_shapes(cfg).items():
            if "params/" + name not in f:
                raise InputError("%s: missing dataset /params/%s" % (path, name))
            a = np.asarray(f["params/" + name][()])
            if a.shape != shape or not np.all(np.isfinite(a)):
                raise InputError("%s: /params/%s has shape %s (want %s) or non-finite values" % (path, name, a.shape,
                                                                                                 shape))
            params[name] = a
        extra = sorted(set(f["params"].keys()) - set(params)) if "params" in f else []
        if extra:
            raise InputError("%s: unexpected dataset /params/%s" % (path, extra[0]))
        inp = {}
        for k in INPUT_KEYS:
            if "input/" + k not in f:
                raise InputError("%s: missing dataset /input/%s" % (path, k))
            inp[k] = np.asarray(f["input/" + k][()])
            if inp[k].shape != (cfg["B"], cfg["T"]):
                raise InputError("%s: /input/%s has shape %s" % (path, k, inp[k].shape))
    for k, hi in (("tokens", cfg["vocab_size"]), ("targets", cfg["vocab_size"]), ("pos", cfg["max_seq_len"])):
        if inp[k].min() < 0 or inp[k].max() >= hi:
            raise InputError("%s: /input/%s outside [0,%d)" % (path, k, hi))
    return cfg, params, inp


def write_output(path, logits, loss, grads):
    with h5py.File(path, "w") as f:
        f.create_dataset("logits", data=logits.astype(np.float32))
        f.create_dataset("loss", data=np.float64(loss))
        g = f.create_group("grads")
        for n, a in grads.items():
            g.create_dataset(n, data=a.astype(np.float32))


# --------------------------------------------------------------------------
# Self-test: an independent loop-based numpy forward, finite differences,
# packing isolation and the llama3 frequencies' regions.
# --------------------------------------------------------------------------
def random_case(rng, **over):
    cfg = dict(n_layer=2, n_head=4, d_model=12, vocab_size=11, max_seq_len=64, B=2, T=9, n_kv_head=2, head_dim=8,
               d_ff=10, qkv_bias=1, qk_norm=1, tie_embeddings=0, rope_llama3=1, rope_original_max_pos=32,
               norm_eps=1e-5, rope_theta=50.0, rope_factor=4.0, rope_low_freq_factor=1.0, rope_high_freq_factor=4.0)
    cfg.update(over)
    params = {n: (1.0 + 0.2 * rng.standard_normal(s) if n.endswith("norm.weight") else 0.4 * rng.standard_normal(s))
              for n, s in param_shapes(cfg).items()}
    B, T = cfg["B"], cfg["T"]
    doc = np.zeros((B, T), np.int64)
    pos = np.zeros((B, T), np.int64)
    for b in range(B):
        s = 3 + b
        doc[b, s:] = 1
        pos[b, :s], pos[b, s:] = np.arange(s) + 30 * b, np.arange(T - s) + 27  # up to beyond the original context
    inp = dict(tokens=rng.integers(0, cfg["vocab_size"], (B, T)), targets=rng.integers(0, cfg["vocab_size"], (B, T)),
               pos=pos, doc=doc, weights=rng.uniform(0.2, 1.0, (B, T)))
    return cfg, params, inp


def numpy_forward(cfg, P, inp):
    NH, KV, hd, eps, C = cfg["n_head"], cfg["n_kv_head"], cfg["head_dim"], cfg["norm_eps"], cfg["d_model"]
    h2 = hd // 2

    def rn(v, w):
        return v / np.sqrt((v * v).mean() + eps) * w

    base = [cfg["rope_theta"] ** (-2.0 * j / hd) for j in range(h2)]
    inv = []
    for f in base:  # region by region, written out
        wl = 2 * math.pi / f
        lo_wl = cfg["rope_original_max_pos"] / cfg["rope_low_freq_factor"]
        hi_wl = cfg["rope_original_max_pos"] / cfg["rope_high_freq_factor"]
        if not cfg["rope_llama3"] or wl < hi_wl:
            inv.append(f)
        elif wl > lo_wl:
            inv.append(f / cfg["rope_factor"])
        else:
            s = (cfg["rope_original_max_pos"] / wl - cfg["rope_low_freq_factor"]) / (
                cfg["rope_high_freq_factor"] - cfg["rope_low_freq_factor"])
            inv.append((1 - s) * f / cfg["rope_factor"] + s * f)

    def rot(v, p):
        out = v.copy()
        for j in range(h2):
            c, s = math.cos(p * inv[j]), math.sin(p * inv[j])
            out[j], out[j + h2] = v[j] * c - v[j + h2] * s, v[j + h2] * c + v[j] * s
        return out

    B, T = inp["tokens"].shape
    out = np.zeros((B, T, cfg["vocab_size"]))
    for b in range(B):
        xs = [P["model.embed_tokens.weight"][inp["tokens"][b, t]].copy() for t in range(T)]
        for l in range(cfg["n_layer"]):
            p = "model.layers.%d." % l
            qs, ks, vs = [], [], []
            for t in range(T):
                a = rn(xs[t], P[p + "input_layernorm.weight"])
                hv = {}
                for n in "qkv":
                    hv[n] = P[p + "self_attn.%s_proj.weight" % n] @ a
                    if cfg["qkv_bias"]:
                        hv[n] = hv[n] + P[p + "self_attn.%s_proj.bias" % n]
                q = [hv["q"][h * hd:(h + 1) * hd] for h in range(NH)]
                k = [hv["k"][h * hd:(h + 1) * hd] for h in range(KV)]
                if cfg["qk_norm"]:
                    q = [rn(u, P[p + "self_attn.q_norm.weight"]) for u in q]
                    k = [rn(u, P[p + "self_attn.k_norm.weight"]) for u in k]
                qs.append([rot(u, inp["pos"][b, t]) for u in q])
                ks.append([rot(u, inp["pos"][b, t]) for u in k])
                vs.append([hv["v"][h * hd:(h + 1) * hd] for h in range(KV)])
            new = []
            for t in range(T):
                y = np.zeros(NH * hd)
                keys = [s for s in range(t + 1) if inp["doc"][b, s] == inp["doc"][b, t]]
                for h in range(NH):
                    g = h // (NH // KV)
                    sc = np.array([qs[t][h] @ ks[s][g] for s in keys]) / math.sqrt(hd)
                    e = np.exp(sc - sc.max())
                    y[h * hd:(h + 1) * hd] = sum(w * vs[s][g] for w, s in zip(e / e.sum(), keys))
                xt = xs[t] + P[p + "self_attn.o_proj.weight"] @ y
                m = rn(xt, P[p + "post_attention_layernorm.weight"])
                gt = P[p + "mlp.gate_proj.weight"] @ m
                hmid = gt / (1 + np.exp(-gt)) * (P[p + "mlp.up_proj.weight"] @ m)
                new.append(xt + P[p + "mlp.down_proj.weight"] @ hmid)
            xs = new
        W = P["model.embed_tokens.weight" if cfg["tie_embeddings"] else "lm_head.weight"]
        for t in range(T):
            out[b, t] = W @ rn(xs[t], P["model.norm.weight"])
    assert C == xs[0].shape[0]
    return out


def selftest():
    rng = np.random.default_rng(5)
    ok = True

    def check(cond, msg):
        nonlocal ok
        print(("PASS " if cond else "FAIL ") + msg)
        ok = ok and bool(cond)

    for over in ({}, dict(qkv_bias=0, qk_norm=0, rope_llama3=0, tie_embeddings=1, n_kv_head=4),
                 dict(n_kv_head=1, head_dim=4, qk_norm=0)):
        cfg, params, inp = random_case(rng, **over)
        logits, loss, grads = compute(cfg, params, inp)
        ref = numpy_forward(cfg, params, inp)
        check(np.abs(ref - logits).max() < 1e-10, "torch vs loop-numpy forward %s: %.2e" % (over, np.abs(ref - logits).max()))
        # central differences in float64 on a few coordinates of every tensor
        worst = 0.0
        for n, a in params.items():
            for _ in range(2):
                i = tuple(int(rng.integers(0, s)) for s in a.shape)
                pp = dict(params)
                hplus, hminus = a.copy(), a.copy()
                hplus[i] += 1e-6
                hminus[i] -= 1e-6
                pp[n] = hplus
                lp = compute(cfg, pp, inp)[1]
                pp[n] = hminus
                lm = compute(cfg, pp, inp)[1]
                fd = (lp - lm) / 2e-6
                worst = max(worst, abs(fd - grads[n][i]) / max(1e-3, abs(fd)))
        check(worst < 1e-5, "finite differences over every tensor: worst rel err %.2e" % worst)
        # packing: doc 1 of row 0 alone in its own row gives the same logits
        s = int(np.argmax(inp["doc"][0] != 0))
        solo = {k: v[0:1, s:].copy() for k, v in inp.items()}
        ls = compute(dict(cfg, B=1, T=cfg["T"] - s), params, solo)[0]
        check(np.abs(ls[0] - logits[0, s:]).max() < 1e-12, "packed document == document alone")
    cfg = dict(head_dim=64, rope_theta=500000.0, rope_llama3=1, rope_factor=32.0, rope_low_freq_factor=1.0,
               rope_high_freq_factor=4.0, rope_original_max_pos=8192)
    f = inv_freq(cfg).numpy()
    check(f[0] == 1.0 and abs(f[15] / 0.001290547928209264 - 1) < 1e-13 and abs(f[31] / 9.4183067254349087e-08 - 1)
          < 1e-13, "llama3 frequencies of Llama 3.2 (kept, interpolated, divided)")
    print("selftest %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv):
    if len(argv) == 2 and argv[1] == "--selftest":
        return selftest()
    if len(argv) < 3 or len(argv) % 2 == 0:
        print("usage: %s IN.h5 OUT.h5 [IN2.h5 OUT2.h5 ...] | --selftest" % argv[0], file=sys.stderr)
        return 2
    try:
        for i in range(1, len(argv), 2):
            cfg, params, inp = read_input(argv[i])
            logits, loss, grads = compute(cfg, params, inp)
            if not math.isfinite(loss):
                raise InputError("%s: loss is not finite" % argv[i])
            write_output(argv[i + 1], logits, loss, grads)
            print("torch_llama: %s L=%d NH=%d KV=%d hd=%d C=%d F=%d V=%d loss=%.17g" % (
                argv[i], cfg["n_layer"], cfg["n_head"], cfg["n_kv_head"], cfg["head_dim"], cfg["d_model"],
                cfg["d_ff"], cfg["vocab_size"], loss))
    except InputError as e:
        print("torch_llama: error: %s" % e, file=sys.stderr)
        return 2
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        print("torch_llama: error: %s: %s" % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""),
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
