#!/usr/bin/python3
"""PyTorch CPU baseline for the hdistill training benchmark.

Usage:
    /usr/bin/python3 bench/torch_train.py --layers L --heads NH --dim C --vocab V \
        --seq T --batch B --steps N --warmup W --threads K [--json] [--seed S]

Model: GPT-2 architecture in float32, written with idiomatic PyTorch modules
(nn.Embedding, nn.Linear, nn.LayerNorm, F.gelu(approximate='tanh'), explicit
attention = matmul + masked_fill + softmax, no dropout), tied wte/lm_head,
GPT-2 init (normal std 0.02, residual projections 0.02/sqrt(2L)).
Learned position table has max(T, 1024) rows; positions are 0..T-1, one
document per row, full causal mask.

Data: random tokens from a seeded generator (a pool of pre-generated batches,
cycled, so data generation is not timed); targets are the inputs shifted by one.
Loss: mean cross entropy over all B*T tokens.
Optimizer: torch.optim.AdamW, lr 3e-4, betas (0.9, 0.95), eps 1e-8,
weight decay 0.1 on 2-D tensors (matmul weights and embeddings), 0 on
biases and LayerNorm parameters (GPT-2/nanoGPT convention; --decay-all
applies it to every parameter instead).  Gradient norm clipped at 1.0.

Timing: W warm-up steps, then N timed steps (wall clock, perf_counter).
tok_s = B*T*N / time, step_s = time / N.  loss_first is the loss of the
very first step (first warm-up step, or first timed step if W=0);
loss_last is the loss of the last timed step.

Threads: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set
to --threads before torch is imported (Debian's torch uses OpenBLAS, which
torch.set_num_threads does not cap), then torch.set_num_threads(K) is called.
OMP_WAIT_POLICY is left as given in the environment.

Output: one human-readable line; with --json, exactly one JSON line on stdout
instead: {"tok_s", "step_s", "loss_first", "loss_last", ...config...}.
"""
import argparse
import json
import os
import sys


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch GPT-2 training baseline (CPU)")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--dim", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--ranks", type=int, default=1,
                    help="data-parallel processes (DistributedDataParallel, gloo); --batch is global")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--decay-all", action="store_true",
                    help="apply weight decay to all parameters (default: 2-D tensors only)")
    a = ap.parse_args(argv)
    for k in ("layers", "heads", "dim", "vocab", "seq", "batch", "steps", "threads"):
        if getattr(a, k) <= 0:
            ap.error("--%s must be positive" % k)
    if a.warmup < 0:
        ap.error("--warmup must be >= 0")
    if a.dim % a.heads:
        ap.error("--dim must be divisible by --heads")
    if a.ranks < 1 or a.batch % a.ranks:
        ap.error("--batch must be divisible by --ranks")
    return a


args = parse_args(sys.argv[1:])
# Must happen before torch (and its OpenBLAS / OpenMP runtimes) is loaded.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(args.threads)

import math  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)


class CausalSelfAttention(nn.Module):
    def __init__(self, C, NH, T):
        super().__init__()
        self.NH = NH
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        # a constant, kept out of the module's buffers (DDP's gloo broadcast rejects bool)
        self.mask = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.NH
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.NH, hs).transpose(1, 2)
        k = k.view(B, T, self.NH, hs).transpose(1, 2)
        v = v.view(B, T, self.NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.c_fc = nn.Linear(C, 4 * C)
        self.c_proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, C, NH, T):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C, eps=1e-5)
        self.attn = CausalSelfAttention(C, NH, T)
        self.ln_2 = nn.LayerNorm(C, eps=1e-5)
        self.mlp = MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, L, NH, C, V, T, P):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(P, C)
        self.h = nn.ModuleList([Block(C, NH, T) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.pos = torch.arange(T)
        self.apply(self._init)
        for n, p in self.named_parameters():
            if n.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(self.pos[:T])
        for blk in self.h:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))


def main(rank=0):
    a = args
    if a.ranks > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%s" % os.environ["TORCH_TRAIN_PORT"],
                                rank=rank, world_size=a.ranks)
    torch.manual_seed(a.seed)
    P = max(a.seq, 1024)
    model = GPT(a.layers, a.heads, a.dim, a.vocab, a.seq, P)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    if a.ranks > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)

    if a.decay_all:
        groups = [{"params": list(model.parameters()), "weight_decay": 0.1}]
    else:
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)

    gen = torch.Generator().manual_seed(a.seed + 1 + rank)
    pool = min(a.steps + a.warmup, 8)
    rows = a.batch // a.ranks
    data = [torch.randint(0, a.vocab, (rows, a.seq + 1), generator=gen) for _ in range(pool)]
    batches = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]

    def step(i):
        x, y = batches[i % pool]
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    loss_first = None
    for i in range(a.warmup):
        lv = step(i)
        if loss_first is None:
            loss_first = lv
    if a.ranks > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for i in range(a.warmup, a.warmup + a.steps):
        lv = step(i)
        if loss_first is None:
            loss_first = lv
    if a.ranks > 1:
        dist.barrier()
    dt = time.perf_counter() - t0
    loss_last = lv
    if rank != 0:
        return 0

    tok_s = a.batch * a.seq * a.steps / dt
    step_s = dt / a.steps
    if not (math.isfinite(loss_first) and math.isfinite(loss_last)):
        print("torch_train: error: non-finite loss", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps({
            "tok_s": tok_s, "step_s": step_s, "loss_first": loss_first, "loss_last": loss_last,
            "layers": a.layers, "heads": a.heads, "dim": a.dim, "vocab": a.vocab, "seq": a.seq,
            "batch": a.batch, "steps": a.steps, "warmup": a.warmup, "threads": a.threads,
            "ranks": a.ranks, "max_pos": P, "params": nparams, "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        }))
    else:
        print("torch_train: L=%d NH=%d C=%d V=%d T=%d B=%d threads=%d params=%d: %.1f tok/s, "
              "%.4f s/step, loss %.4f -> %.4f"
              % (a.layers, a.heads, a.dim, a.vocab, a.seq, a.batch, a.threads, nparams,
                 tok_s, step_s, loss_first, loss_last))
    return 0


if __name__ == "__main__":
    if args.ranks > 1:
        import socket
        import torch.multiprocessing as mp
        with socket.socket() as s_:
            s_.bind(("127.0.0.1", 0))
            os.environ["TORCH_TRAIN_PORT"] = str(s_.getsockname()[1])  # inherited by spawn
        mp.spawn(main, nprocs=args.ranks, join=True)
        sys.exit(0)
    sys.exit(main())
