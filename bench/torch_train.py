#!/usr/bin/python3
"""PyTorch CPU baseline for the hdistill training benchmark.

Usage:
    /usr/bin/python3 bench/torch_train.py --layers L --heads NH --dim C --vocab V \
        --seq T --batch B --steps N --warmup W --threads K [--json] [--seed S]
    /usr/bin/python3 bench/torch_train.py --arch llama --layers L --heads NH --dim C --vocab V \
        --kv-heads KV [--head-dim HD] --ffn F [--rope-theta TH] [--norm-eps E] [--qkv-bias] \
        --seq T --batch B --steps N --warmup W --threads K [--json]
    /usr/bin/python3 bench/torch_train.py --preset smollm2-135m --seq T --batch B ...
    /usr/bin/python3 bench/torch_train.py --selftest
        the Llama model in float64 against tests/ref/torch_llama.py (the reference
        hdistill's engine/llama.c is tested against; needs h5py) on three tiny shapes
        (GQA, q/k/v biases, head_dim != dim/heads): logits and loss within 1e-10,
        flops_per_token equal to engine/llama.c's formula

Models, float32, written with idiomatic PyTorch modules, no dropout, tied
embedding/LM head, explicit attention (matmul + masked_fill + softmax):
  --arch gpt2 (default): GPT-2 (nn.Embedding, nn.Linear, nn.LayerNorm,
    F.gelu(approximate='tanh')), GPT-2 init (normal std 0.02, residual
    projections 0.02/sqrt(2L)); learned position table of max(T, 1024) rows.
  --arch llama: the Llama-style decoder of hdistill's engine/llama.c as
    transformers writes it (LlamaForCausalLM): RMSNorm in float32 (eps
    --norm-eps, default 1e-5), q/k/v/o and gate/up/down nn.Linear without
    bias (--qkv-bias: q/k/v with bias, Qwen2.5), rotary positions in the
    rotate_half layout (theta --rope-theta), grouped-query attention (--kv-heads
    key/value heads, expanded to --heads with expand+reshape, as repeat_kv),
    head_dim --head-dim (default dim/heads), SwiGLU MLP of width --ffn
    (down(F.silu(gate(x)) * up(x))); init normal std 0.02 for every matrix
    and the embedding, norm weights 1, biases 0 (hdistill's init).
  --preset NAME fills the shape from a small table (PRESETS below: the
    published shapes of hdistill's engine/presets.c); flags given as well
    override it.  Positions are 0..T-1, one document per row, full causal mask.

Data: random tokens from a seeded generator (a pool of pre-generated batches,
cycled, so data generation is not timed); targets are the inputs shifted by one.
Loss: mean cross entropy over all B*T tokens.
Optimizer: torch.optim.AdamW, lr 3e-4, betas (0.9, 0.95), eps 1e-8,
weight decay 0.1 on 2-D tensors (matmul weights and embeddings), 0 on
biases and norm parameters (GPT-2/nanoGPT convention, and hdistill's;
--decay-all applies it to every parameter instead).  Gradient norm clipped
at 1.0.

Timing: W warm-up steps, then N timed steps (wall clock, perf_counter).
tok_s = B*T*N / time, step_s = time / N.  loss_first is the loss of the
very first step (first warm-up step, or first timed step if W=0);
loss_last is the loss of the last timed step.  flops_per_token counts the
model's own modules the PaLM way, 6 x (weights of every nn.Linear, the tied
head once) + 12 L T (heads x head_dim), to be compared with hdistill's
model_flops_per_token.

Threads: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set
to --threads before torch is imported (Debian's torch uses OpenBLAS, which
torch.set_num_threads does not cap), then torch.set_num_threads(K) is called.
OMP_WAIT_POLICY is left as given in the environment.

Output: one human-readable line; with --json, exactly one JSON line on stdout
instead: {"tok_s", "step_s", "loss_first", "loss_last", "flops_per_token", ...config...}.
"""
import argparse
import json
import os
import sys


# The shapes of hdistill's engine/presets.c that the benchmarks use (published
# config.json values; bench/train.sh passes the explicit flags it reads from
# bench_train's JSON, so this table is for running the script by hand).
PRESETS = {
    "gpt2-124m": dict(arch="gpt2", layers=12, heads=12, dim=768, vocab=50257),
    "llama-tiny": dict(arch="llama", layers=2, heads=4, dim=64, vocab=512, kv_heads=2, head_dim=16, ffn=192,
                       rope_theta=10000.0, norm_eps=1e-5),
    "smollm2-135m": dict(arch="llama", layers=30, heads=9, dim=576, vocab=49152, kv_heads=3, head_dim=64,
                         ffn=1536, rope_theta=100000.0, norm_eps=1e-5),
    "smollm2-360m": dict(arch="llama", layers=32, heads=15, dim=960, vocab=49152, kv_heads=5, head_dim=64,
                         ffn=2560, rope_theta=100000.0, norm_eps=1e-5),
    "qwen2.5-0.5b": dict(arch="llama", layers=24, heads=14, dim=896, vocab=151936, kv_heads=2, head_dim=64,
                         ffn=4864, rope_theta=1000000.0, norm_eps=1e-6, qkv_bias=True),
}


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch training baseline (CPU): GPT-2 or a Llama-style decoder")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a model shape (flags given as well override it)")
    ap.add_argument("--arch", choices=("gpt2", "llama"))
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--kv-heads", type=int, help="llama: key/value heads (default --heads)")
    ap.add_argument("--head-dim", type=int, help="llama: channels per head (default dim/heads)")
    ap.add_argument("--ffn", type=int, help="llama: SwiGLU hidden width")
    ap.add_argument("--rope-theta", type=float, help="llama: rotary base (default 10000)")
    ap.add_argument("--norm-eps", type=float, help="llama: RMSNorm epsilon (default 1e-5)")
    ap.add_argument("--qkv-bias", action="store_true", default=None, help="llama: q/k/v projections with bias")
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
    base = dict(arch="gpt2", kv_heads=None, head_dim=None, ffn=None, rope_theta=10000.0, norm_eps=1e-5,
                qkv_bias=False)
    if a.preset:
        base.update(PRESETS[a.preset])
    for k, v in base.items():
        if getattr(a, k, None) is None:
            setattr(a, k, v)
    for k in ("layers", "heads", "dim", "vocab"):
        if getattr(a, k) is None:
            ap.error("--%s is required (or --preset)" % k)
    for k in ("layers", "heads", "dim", "vocab", "seq", "batch", "steps", "threads"):
        if getattr(a, k) <= 0:
            ap.error("--%s must be positive" % k)
    if a.warmup < 0:
        ap.error("--warmup must be >= 0")
    if a.arch == "gpt2":
        if a.dim % a.heads:
            ap.error("--dim must be divisible by --heads")
    else:
        if a.kv_heads is None:
            a.kv_heads = a.heads
        if a.head_dim is None:
            if a.dim % a.heads:
                ap.error("--dim must be divisible by --heads (or give --head-dim)")
            a.head_dim = a.dim // a.heads
        if a.ffn is None:
            ap.error("--ffn is required for --arch llama")
        if a.kv_heads <= 0 or a.heads % a.kv_heads:
            ap.error("--kv-heads must be positive and divide --heads")
        if a.head_dim <= 0 or a.head_dim % 2 or a.ffn <= 0:
            ap.error("--head-dim must be positive and even, --ffn positive")
        if not (a.rope_theta > 1 and 0 < a.norm_eps < 1):
            ap.error("--rope-theta must be above 1, --norm-eps in (0, 1)")
    if a.ranks < 1 or a.batch % a.ranks:
        ap.error("--batch must be divisible by --ranks")
    return a


SELFTEST = sys.argv[1:] == ["--selftest"]
args = None if SELFTEST else parse_args(sys.argv[1:])
THREADS = 1 if SELFTEST else args.threads
# Must happen before torch (and its OpenBLAS / OpenMP runtimes) is loaded.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(THREADS)

import math  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(THREADS)


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


class RMSNorm(nn.Module):
    """transformers' LlamaRMSNorm: x / sqrt(mean(x^2) + eps) * weight, in float32."""

    def __init__(self, C, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype  # float32 here (the cast matters only for half types; float64 stays, --selftest)
        x = x.to(torch.promote_types(dtype, torch.float32))
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class LlamaAttention(nn.Module):
    def __init__(self, C, NH, KV, hd, bias, T):
        super().__init__()
        self.NH, self.KV, self.hd = NH, KV, hd
        self.q_proj = nn.Linear(C, NH * hd, bias=bias)
        self.k_proj = nn.Linear(C, KV * hd, bias=bias)
        self.v_proj = nn.Linear(C, KV * hd, bias=bias)
        self.o_proj = nn.Linear(NH * hd, C, bias=False)
        self.mask = torch.tril(torch.ones(T, T, dtype=torch.bool))  # a constant, not a buffer (see GPT-2)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        NH, KV, hd = self.NH, self.KV, self.hd
        q = self.q_proj(x).view(B, T, NH, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, T, KV, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if KV != NH:  # repeat_kv: each key/value head serves NH/KV query heads
            k = k[:, :, None].expand(B, KV, NH // KV, T, hd).reshape(B, NH, T, hd)
            v = v[:, :, None].expand(B, KV, NH // KV, T, hd).reshape(B, NH, T, hd)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, NH * hd)
        return self.o_proj(y)


class LlamaMLP(nn.Module):
    def __init__(self, C, FF):
        super().__init__()
        self.gate_proj = nn.Linear(C, FF, bias=False)
        self.up_proj = nn.Linear(C, FF, bias=False)
        self.down_proj = nn.Linear(FF, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, a, T):
        super().__init__()
        self.input_layernorm = RMSNorm(a.dim, a.norm_eps)
        self.self_attn = LlamaAttention(a.dim, a.heads, a.kv_heads, a.head_dim, a.qkv_bias, T)
        self.post_attention_layernorm = RMSNorm(a.dim, a.norm_eps)
        self.mlp = LlamaMLP(a.dim, a.ffn)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class Llama(nn.Module):
    def __init__(self, a, T):
        super().__init__()
        self.embed_tokens = nn.Embedding(a.vocab, a.dim)
        self.layers = nn.ModuleList([LlamaBlock(a, T) for _ in range(a.layers)])
        self.norm = RMSNorm(a.dim, a.norm_eps)
        self.lm_head = nn.Linear(a.dim, a.vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied
        self.head_dim, self.rope_theta, self.T = a.head_dim, a.rope_theta, T
        self.set_rope(torch.float32)
        self.apply(self._init)

    def set_rope(self, dtype):
        """rotary tables cos, sin [T, hd] at positions 0..T-1 (LlamaRotaryEmbedding's default
        rope type), computed in float64 and kept as dtype; constants, not parameters."""
        hd = self.head_dim
        inv_freq = 1.0 / (self.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        freqs = torch.outer(torch.arange(self.T, dtype=torch.float64), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos().to(dtype), emb.sin().to(dtype)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def logits(self, idx):
        T = idx.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = self.embed_tokens(idx)
        for blk in self.layers:
            x = blk(x, cos, sin)
        return self.lm_head(self.norm(x))

    def forward(self, idx, targets):
        B, T = idx.shape
        logits = self.logits(idx)
        return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))


def flops_per_token(model, a):
    """PaLM convention from the model's own modules: 6 x (weights of every
    nn.Linear, a tied head counted once as the product it is) + 12 L T (attention width)."""
    mat = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    width = a.heads * a.head_dim if a.arch == "llama" else a.dim
    return 6.0 * mat + 12.0 * a.layers * a.seq * width


def selftest():
    """The Llama model above in float64 against tests/ref/torch_llama.py (the independent
    reference hdistill's engine/llama.c is tested against) on tiny random shapes: same
    logits and loss; and flops_per_token against the formula of engine/llama.c."""
    from argparse import Namespace
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
    import torch_llama as ref
    torch.manual_seed(3)
    cases = [Namespace(arch="llama", layers=2, heads=4, kv_heads=2, head_dim=16, dim=64, ffn=96, vocab=97,
                       rope_theta=10000.0, norm_eps=1e-5, qkv_bias=False, seq=12),
             Namespace(arch="llama", layers=3, heads=6, kv_heads=2, head_dim=10, dim=48, ffn=80, vocab=131,
                       rope_theta=1e6, norm_eps=1e-6, qkv_bias=True, seq=17),
             Namespace(arch="llama", layers=1, heads=3, kv_heads=3, head_dim=8, dim=24, ffn=40, vocab=50,
                       rope_theta=1e5, norm_eps=1e-5, qkv_bias=False, seq=9)]
    worst = 0.0
    for a in cases:
        model = Llama(a, a.seq).double()
        model.set_rope(torch.float64)
        with torch.no_grad():  # norms and biases away from 1 and 0, so that they are tested too
            for n, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.3 * torch.randn_like(p))
        cfg = {"n_layer": a.layers, "n_head": a.heads, "n_kv_head": a.kv_heads, "head_dim": a.head_dim,
               "d_model": a.dim, "d_ff": a.ffn, "vocab_size": a.vocab, "rope_theta": a.rope_theta,
               "norm_eps": a.norm_eps, "qkv_bias": int(a.qkv_bias), "qk_norm": 0, "tie_embeddings": 1,
               "rope_llama3": 0}
        params = {"model." + n: p.detach().numpy() for n, p in model.named_parameters() if not n.startswith("lm_head")}
        if set(params) != set(ref.param_shapes(cfg)):
            print("selftest: parameter names differ from the reference's", file=sys.stderr)
            return 1
        B, T = 2, a.seq
        tok = torch.randint(0, a.vocab, (B, T + 1))
        x, y = tok[:, :-1].contiguous(), tok[:, 1:].contiguous()
        pos, doc = torch.arange(T).expand(B, T), torch.zeros(B, T, dtype=torch.int64)
        want = ref.logits_of(cfg, params, x.numpy(), pos.numpy(), doc.numpy())
        with torch.no_grad():
            got = model.logits(x).numpy()
            loss = float(model(x, y))
        want_loss = float(torch.nn.functional.cross_entropy(torch.as_tensor(want).view(B * T, -1), y.reshape(-1)))
        d = max(float(abs(got - want).max()), abs(loss - want_loss))
        per_layer = 2.0 * a.dim * a.heads * a.head_dim + 2.0 * a.dim * a.kv_heads * a.head_dim + 3.0 * a.dim * a.ffn
        want_f = 6.0 * (a.layers * per_layer + a.vocab * a.dim) + 12.0 * a.layers * T * a.heads * a.head_dim
        got_f = flops_per_token(model, a)
        print("selftest: L%d NH%d/KV%d hd%d C%d bias %d: max |logits - reference| %.3g, loss %.6f vs %.6f, "
              "FLOPs/token %.0f vs %.0f" % (a.layers, a.heads, a.kv_heads, a.head_dim, a.dim, a.qkv_bias, d, loss,
                                            want_loss, got_f, want_f))
        if not (d < 1e-10 and got_f == want_f):
            print("selftest: FAILED", file=sys.stderr)
            return 1
        worst = max(worst, d)
    print("selftest: ok (%d cases, worst difference %.3g)" % (len(cases), worst))
    return 0


def main(rank=0):
    a = args
    if a.ranks > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%s" % os.environ["TORCH_TRAIN_PORT"],
                                rank=rank, world_size=a.ranks)
    torch.manual_seed(a.seed)
    P = max(a.seq, 1024) if a.arch == "gpt2" else a.seq
    if a.arch == "llama":
        model = Llama(a, a.seq)
    else:
        model = GPT(a.layers, a.heads, a.dim, a.vocab, a.seq, P)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    fpt = flops_per_token(model, a)
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
        shape = {}
        if a.arch == "llama":
            shape = {"kv_heads": a.kv_heads, "head_dim": a.head_dim, "ffn": a.ffn, "rope_theta": a.rope_theta,
                     "norm_eps": a.norm_eps, "qkv_bias": int(bool(a.qkv_bias)), "tied": 1}
        print(json.dumps({
            "tok_s": tok_s, "step_s": step_s, "loss_first": loss_first, "loss_last": loss_last,
            "flops_per_token": fpt, "arch": a.arch, "preset": a.preset or "", **shape,
            "layers": a.layers, "heads": a.heads, "dim": a.dim, "vocab": a.vocab, "seq": a.seq,
            "batch": a.batch, "steps": a.steps, "warmup": a.warmup, "threads": a.threads,
            "ranks": a.ranks, "max_pos": P, "params": nparams, "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        }))
    else:
        print("torch_train: %s L=%d NH=%d C=%d V=%d T=%d B=%d threads=%d params=%d: %.1f tok/s, "
              "%.4f s/step, loss %.4f -> %.4f, %.4g FLOPs/token"
              % (a.arch, a.layers, a.heads, a.dim, a.vocab, a.seq, a.batch, a.threads, nparams,
                 tok_s, step_s, loss_first, loss_last, fpt))
    return 0


if __name__ == "__main__":
    if SELFTEST:
        sys.exit(selftest())
    if args.ranks > 1:
        import socket
        import torch.multiprocessing as mp
        with socket.socket() as s_:
            s_.bind(("127.0.0.1", 0))
            os.environ["TORCH_TRAIN_PORT"] = str(s_.getsockname()[1])  # inherited by spawn
        mp.spawn(main, nprocs=args.ranks, join=True)
        sys.exit(0)
    sys.exit(main())
