#!/usr/bin/python3
"""PyTorch CPU baseline for the hdistill decoding benchmark (bench/decode.sh).

Usage:
    /usr/bin/python3 bench/torch_decode.py --layers L --heads NH --dim C --vocab V \
        --prompts N --prompt-len T0 --new G --k K --beam W --threads T --warmup W --reps R \
        [--arch gpt2|llama --kv-heads KV --head-dim HD --ffn F --rope-theta X --norm-eps E] \
        [--top-p P] [--temperature X] [--length-penalty A] [--cache prealloc|cat] [--seed S] [--json]
--k 0 skips sampling, --beam 0 skips beam search.

Model: float32, random weights, written as plain PyTorch modules (nn.Embedding,
nn.Linear, explicit attention = matmul + softmax) with a key/value cache:
  gpt2  -- GPT-2 (LayerNorm, GELU tanh MLP 4C, learned positions, tied head),
           the architecture of bench/torch_train.py (not imported: that script
           parses its own arguments at import); init N(0, 0.02), residual
           projections N(0, 0.02/sqrt(2L)), biases 0.
  llama -- Llama-style (RMSNorm, rotate_half RoPE, grouped-query attention
           without repeating the cache: q is viewed as [B, KV, rep*T, hd] against
           the KV heads, SwiGLU, tied head, no biases, no q/k norm, no Llama 3
           rope scaling: the SmolLM2 shapes); init N(0, 0.02), norms 1.
End of text: eot = V-1 made impossible exactly as bench/bench_decode.c does
(GPT-2: wte[eot] = -1000, ln_f.bias[0] = 1, so eot's logit is -1000; Llama:
residual channel 0 held at 0.02, head row eot = -1e4 e_0).  Prompts are
random ids in [0, V-1).  Every run is checked to generate exactly the
expected tokens with no eot, else exit 1.

Cache: per layer K and V of [rows, heads, T0+G, hd] preallocated and written
in place (--cache prealloc, default), or concatenated each step (--cache cat,
as Hugging Face's legacy cache).  Prefill feeds the N prompts once ([N, T0],
causal mask), logits only for their last position.

(a) Sampling: the N prompts' caches are expanded (index_select) to N*K rows,
    all candidates ONE batch; each step: log_softmax at temperature 1 (the
    model's log-probability, summed per sequence as gen.c does), probs at the
    temperature, nucleus by torch.sort descending + cumsum (keep the smallest
    prefix whose mass reaches top_p), torch.multinomial on it; then one model
    call of [N*K, 1].  Sequences that ended are padded with eot (as Hugging
    Face does), not removed.
(b) Beam search, all inputs' beams in one [N*W, 1] model call per step: step 0
    from the prompt logits (one hypothesis per input), scores cum + log_softmax
    viewed as [N, nh*V], torch.topk 2W, the first W non-eot candidates continue
    (eot candidates met before them become finished hypotheses), caches
    reordered with index_select on the parents' rows, finished hypotheses kept
    per input (the W best by sum(logp) / len^alpha, len = generated tokens
    incl. eot: Hugging Face's default length penalty), the live ones added at
    the last step; an input stops when its W finished beat its best live score
    (gen.c's rule; its rows still run, as in Hugging Face).
Tokens: generated tokens of all sequences, eot included.  Sampling: live rows
per step summed (N*K*G when nothing ends); beam: hypotheses alive after each
step summed over the steps of inputs not done (N*W*G).

Timing: W warm-up runs, then R timed runs (perf_counter), mean.
tok_s = tokens / seconds.  prefill_s and steps_s: time inside the model calls
(prefill; decode steps), other_s the rest (softmax, sort, draws, top-k,
cache reordering), from the timed runs.

Threads: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS set to
--threads before torch is imported, then torch.set_num_threads.
OMP_WAIT_POLICY is left as given in the environment (decode.sh runs both).
Output: a human-readable line, or with --json exactly one JSON line.
"""
import argparse
import json
import os
import sys


def parse_args(argv):
    ap = argparse.ArgumentParser(description="PyTorch KV-cache decoding baseline (CPU)")
    for k in ("layers", "heads", "dim", "vocab", "prompts", "prompt-len", "new", "threads"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--arch", choices=("gpt2", "llama"), default="gpt2")
    ap.add_argument("--kv-heads", type=int, default=0)
    ap.add_argument("--head-dim", type=int, default=0)
    ap.add_argument("--ffn", type=int, default=0)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--norm-eps", type=float, default=1e-5)
    ap.add_argument("--top-p", type=float, default=0.95)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--cache", choices=("prealloc", "cat"), default="prealloc")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    for k in ("layers", "heads", "dim", "vocab", "prompts", "prompt_len", "new", "threads", "reps"):
        if getattr(a, k) <= 0:
            ap.error("--%s must be positive" % k.replace("_", "-"))
    if a.k < 0 or a.beam < 0 or a.warmup < 0 or a.vocab < 2:
        ap.error("--k, --beam, --warmup must be >= 0, --vocab >= 2")
    if not (0 < a.top_p <= 1 and a.temperature > 0):
        ap.error("top_p in (0, 1], temperature > 0")
    if a.arch == "gpt2" and a.dim % a.heads:
        ap.error("--dim must be divisible by --heads")
    if a.arch == "llama" and (a.kv_heads <= 0 or a.heads % a.kv_heads or a.head_dim <= 0 or a.head_dim % 2
                              or a.ffn <= 0):
        ap.error("llama needs --kv-heads dividing --heads, an even --head-dim and --ffn")
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
torch.set_grad_enabled(False)


class Cache:
    """Per-layer keys and values [rows, heads, Tmax, hd]: preallocated, or concatenated."""

    def __init__(self, L, rows, heads, tmax, hd, prealloc):
        self.prealloc, self.n = prealloc, 0
        if prealloc:
            self.k = [torch.empty(rows, heads, tmax, hd) for _ in range(L)]
            self.v = [torch.empty(rows, heads, tmax, hd) for _ in range(L)]
        else:
            self.k = [None] * L
            self.v = [None] * L

    def update(self, l, k, v):
        """Appends k, v [rows, heads, T, hd] at positions n.. of layer l; returns the whole history."""
        if self.prealloc:
            T = k.shape[2]
            self.k[l][:, :, self.n:self.n + T] = k
            self.v[l][:, :, self.n:self.n + T] = v
            return self.k[l][:, :, :self.n + T], self.v[l][:, :, :self.n + T]
        if self.k[l] is not None:
            k, v = torch.cat((self.k[l], k), 2), torch.cat((self.v[l], v), 2)
        self.k[l], self.v[l] = k, v
        return k, v

    def advance(self, T):
        self.n += T

    def reorder(self, idx):
        """Row r becomes old row idx[r] (expanding a prompt, following beam parents)."""
        self.k = [t.index_select(0, idx) for t in self.k]
        self.v = [t.index_select(0, idx) for t in self.v]


def causal_mask(T, n0):
    """[T, n0+T]: query t (at position n0+t) sees keys s <= n0+t; None for one query."""
    if T == 1:
        return None
    return torch.ones(T, n0 + T, dtype=torch.bool).tril(n0).logical_not()


class GPT2Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5), nn.LayerNorm(C, eps=1e-5)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x, cache, l, mask):
        B, T, C = x.shape
        hs = C // self.NH
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, self.NH, hs).transpose(1, 2)
        k, v = cache.update(l, k.view(B, T, self.NH, hs).transpose(1, 2), v.view(B, T, self.NH, hs).transpose(1, 2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        if mask is not None:
            att = att.masked_fill(mask, float("-inf"))
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, L, NH, C, V, P):
        super().__init__()
        self.L, self.kv_heads, self.hd = L, NH, C // NH
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(P, C)
        self.h = nn.ModuleList([GPT2Block(C, NH) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * L) if n.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)
            elif n.endswith(".bias"):
                nn.init.zeros_(p)
        # eot = V-1 impossible: LayerNorm's output sums to 0, so eot's logit is -1000 * ln_f.bias[0]
        self.wte.weight[V - 1].fill_(-1000.0)
        self.ln_f.bias[0] = 1.0

    def forward(self, idx, cache):
        """idx [B, T] at positions cache.n..; logits [B, V] of the last position."""
        B, T = idx.shape
        n0 = cache.n
        x = self.wte(idx) + self.wpe.weight[n0:n0 + T]
        mask = causal_mask(T, n0)
        for l, blk in enumerate(self.h):
            x = blk(x, cache, l, mask)
        cache.advance(T)
        return F.linear(self.ln_f(x[:, -1]), self.wte.weight)


class RMSNorm(nn.Module):
    def __init__(self, C, eps):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(C))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin


class LlamaBlock(nn.Module):
    def __init__(self, C, NH, KV, hd, Fd, eps):
        super().__init__()
        self.NH, self.KV, self.hd = NH, KV, hd
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(C, eps), RMSNorm(C, eps)
        self.q_proj = nn.Linear(C, NH * hd, bias=False)
        self.k_proj = nn.Linear(C, KV * hd, bias=False)
        self.v_proj = nn.Linear(C, KV * hd, bias=False)
        self.o_proj = nn.Linear(NH * hd, C, bias=False)
        self.gate_proj, self.up_proj = nn.Linear(C, Fd, bias=False), nn.Linear(C, Fd, bias=False)
        self.down_proj = nn.Linear(Fd, C, bias=False)

    def forward(self, x, cache, l, mask, cos, sin):
        B, T, C = x.shape
        NH, KV, hd, rep = self.NH, self.KV, self.hd, self.NH // self.KV
        a = self.input_layernorm(x)
        q = rotate(self.q_proj(a).view(B, T, NH, hd).transpose(1, 2), cos, sin)
        k = rotate(self.k_proj(a).view(B, T, KV, hd).transpose(1, 2), cos, sin)
        k, v = cache.update(l, k, self.v_proj(a).view(B, T, KV, hd).transpose(1, 2))
        # grouped-query attention: the rep query heads of a KV head as rep*T rows against it
        qg = q.reshape(B, KV, rep * T, hd)
        att = (qg @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # [B, KV, rep*T, n]
        if mask is not None:
            att = att.view(B, KV, rep, T, -1).masked_fill(mask, float("-inf")).view(B, KV, rep * T, -1)
        y = (F.softmax(att, dim=-1) @ v).view(B, NH, T, hd).transpose(1, 2).reshape(B, T, NH * hd)
        x = x + self.o_proj(y)
        m = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(m)) * self.up_proj(m))


class Llama(nn.Module):
    def __init__(self, L, NH, KV, hd, C, Fd, V, P, theta, eps):
        super().__init__()
        self.L, self.kv_heads, self.hd = L, KV, hd
        self.embed_tokens = nn.Embedding(V, C)
        self.layers = nn.ModuleList([LlamaBlock(C, NH, KV, hd, Fd, eps) for _ in range(L)])
        self.norm = RMSNorm(C, eps)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, mean=0.0, std=0.02)
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(P, dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat((ang, ang), -1)
        self.cos, self.sin = ang.cos().float(), ang.sin().float()
        # eot = V-1 impossible: residual channel 0 is the constant 0.02, the head's eot row -1e4 e_0
        w = self.embed_tokens.weight
        w[:, 0] = 0.02
        for blk in self.layers:
            blk.o_proj.weight[0].zero_()
            blk.down_proj.weight[0].zero_()
        w[V - 1].zero_()
        w[V - 1, 0] = -1e4

    def forward(self, idx, cache):
        B, T = idx.shape
        n0 = cache.n
        x = self.embed_tokens(idx)
        cos, sin = self.cos[n0:n0 + T], self.sin[n0:n0 + T]
        mask = causal_mask(T, n0)
        for l, blk in enumerate(self.layers):
            x = blk(x, cache, l, mask, cos, sin)
        cache.advance(T)
        return F.linear(self.norm(x[:, -1]), self.embed_tokens.weight)


class Clock:
    """Wall time inside model calls (prefill, steps) versus everything else."""

    def __init__(self):
        self.prefill = self.steps = 0.0

    def call(self, model, idx, cache, prefill=False):
        t0 = time.perf_counter()
        out = model(idx, cache)
        dt = time.perf_counter() - t0
        if prefill:
            self.prefill += dt
        else:
            self.steps += dt
        return out


def draw(logits, temperature, top_p, gen):
    """Nucleus sampling; returns tokens and their log-probability at temperature 1."""
    logp = torch.log_softmax(logits, -1)
    probs = logp.exp() if temperature == 1.0 else torch.softmax(logits / temperature, -1)
    sp, si = torch.sort(probs, dim=-1, descending=True)
    if top_p < 1.0:
        sp = sp.masked_fill(sp.cumsum(-1) - sp >= top_p, 0.0)  # mass before a token already reaches top_p
    tok = si.gather(-1, torch.multinomial(sp, 1, generator=gen)).squeeze(1)
    return tok, logp.gather(-1, tok[:, None]).squeeze(1)


def sample_run(model, prompts, a, eot, gen, clk):
    N, T0 = prompts.shape
    K, G = a.k, a.new
    cache = Cache(model.L, N, model.kv_heads, T0 + G, model.hd, a.cache == "prealloc")
    logits = clk.call(model, prompts, cache, prefill=True)
    rows = torch.arange(N).repeat_interleave(K)
    cache.reorder(rows)
    logits = logits.index_select(0, rows)
    finished = torch.zeros(N * K, dtype=torch.bool)
    logp_sum = torch.zeros(N * K)
    ntok = torch.zeros((), dtype=torch.long)
    for s in range(G):
        tok, lp = draw(logits, a.temperature, a.top_p, gen)
        tok = tok.masked_fill(finished, eot)
        ntok += (~finished).sum()
        logp_sum += lp.masked_fill(finished, 0.0)
        finished |= tok == eot
        if s + 1 == G or bool(finished.all()):
            break
        logits = clk.call(model, tok[:, None], cache)
    return int(ntok), int(finished.sum())


def beam_run(model, prompts, a, eot, clk):
    N, T0 = prompts.shape
    W, G, V, alpha = a.beam, a.new, a.vocab, a.length_penalty
    cache = Cache(model.L, N, model.kv_heads, T0 + G, model.hd, a.cache == "prealloc")
    logp = torch.log_softmax(clk.call(model, prompts, cache, prefill=True), -1)
    nh = 1                                   # live hypotheses per input
    cum = torch.zeros(N, 1)
    hist = torch.empty(N, 0, dtype=torch.long)
    fin = [[] for _ in range(N)]             # per input: (score, cum, ids) of finished hypotheses, W best
    done = [False] * N
    ntok = n_eot = 0
    for s in range(G):
        cand = (cum.view(N * nh, 1) + logp).view(N, nh * V)
        top_s, top_i = torch.topk(cand, 2 * W, dim=1)      # sorted, best first
        parent, tok = top_i // V, top_i % V
        keep = tok != eot
        before = keep.cumsum(1) - keep.long()              # non-eot candidates ahead of each
        ended = (~keep) & (before < W)
        if bool(ended.any()):
            for i, j in ended.nonzero().tolist():
                if done[i]:
                    continue
                n_eot += 1
                ids = hist[i * nh + int(parent[i, j])].tolist()
                c = float(top_s[i, j])
                fin[i] = sorted(fin[i] + [(c / (s + 1) ** alpha, c, ids)], key=lambda f: -f[0])[:W]
        cols = (keep & (before < W)).nonzero()[:, 1].view(N, W)
        cum = top_s.gather(1, cols)
        rows = (torch.arange(N)[:, None] * nh + parent.gather(1, cols)).view(-1)
        tok = tok.gather(1, cols).view(-1)
        hist = torch.cat((hist.index_select(0, rows), tok[:, None]), 1)
        ntok += W * (N - sum(done))
        nh = W
        if s + 1 == G:                                     # the live ones join the finished
            sc = (cum / G ** alpha).tolist()
            for i in range(N):
                if not done[i]:
                    ext = [(sc[i][h], float(cum[i, h]), hist[i * W + h].tolist()) for h in range(W)]
                    fin[i] = sorted(fin[i] + ext, key=lambda f: -f[0])[:W]
            break
        for i in range(N):                                 # gen.c's stop rule
            if not done[i] and len(fin[i]) == W and float(cum[i].max()) / (s + 1) ** alpha < fin[i][-1][0]:
                done[i] = True
        if all(done):
            break
        cache.reorder(rows)
        logp = torch.log_softmax(clk.call(model, tok[:, None], cache), -1)
    return ntok, n_eot


def timed(fn, a):
    for _ in range(a.warmup):
        fn(Clock())
    clk, t0, tokens = Clock(), time.perf_counter(), None
    for _ in range(a.reps):
        n, n_eot = fn(clk)
        if n_eot:
            print("torch_decode: error: %d end-of-text tokens generated" % n_eot, file=sys.stderr)
            sys.exit(1)
        tokens = n
    sec = (time.perf_counter() - t0) / a.reps
    pre, steps = clk.prefill / a.reps, clk.steps / a.reps
    return {"tok_s": tokens / sec, "s": sec, "tokens": tokens, "prefill_s": pre, "steps_s": steps,
            "other_s": sec - pre - steps}


def main():
    a = args
    torch.manual_seed(a.seed)
    P = max(1024, a.prompt_len + a.new)
    if a.arch == "gpt2":
        model = GPT2(a.layers, a.heads, a.dim, a.vocab, P)
    else:
        model = Llama(a.layers, a.heads, a.kv_heads, a.head_dim, a.dim, a.ffn, a.vocab, a.prompt_len + a.new,
                      a.rope_theta, a.norm_eps)
    model.eval()
    nparams = sum(p.numel() for p in model.parameters())
    eot = a.vocab - 1
    g = torch.Generator().manual_seed(a.seed + 100)
    prompts = torch.randint(0, a.vocab - 1, (a.prompts, a.prompt_len), generator=g)  # never eot
    res = {}
    if a.k > 0:
        gen = torch.Generator().manual_seed(a.seed + 1)
        r = timed(lambda clk: sample_run(model, prompts, a, eot, gen, clk), a)
        res.update({"sample_" + k: v for k, v in r.items()})
        res["sample_rows"] = a.prompts * a.k
    if a.beam > 0:
        r = timed(lambda clk: beam_run(model, prompts, a, eot, clk), a)
        res.update({"beam_" + k: v for k, v in r.items()})
        res["beam_rows"] = a.prompts * a.beam
    for m, per in (("sample", a.k), ("beam", a.beam)):
        want = a.prompts * per * a.new
        if per > 0 and res[m + "_tokens"] != want:
            print("torch_decode: error: %s generated %d tokens, %d expected" % (m, res[m + "_tokens"], want),
                  file=sys.stderr)
            return 1
    info = {"arch": a.arch, "layers": a.layers, "heads": a.heads, "dim": a.dim, "vocab": a.vocab,
            "kv_heads": a.kv_heads, "head_dim": a.head_dim, "ffn": a.ffn, "params": nparams,
            "prompts": a.prompts, "prompt_len": a.prompt_len, "new": a.new, "k": a.k, "beam": a.beam,
            "top_p": a.top_p, "temperature": a.temperature, "length_penalty": a.length_penalty, "eot": eot,
            "threads": a.threads, "warmup": a.warmup, "reps": a.reps, "cache": a.cache, "torch": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if a.json:
        print(json.dumps({**info, **res}))
    else:
        print("torch_decode: %s L=%d C=%d V=%d params=%d threads=%d: sampling %s tok/s, beam %s tok/s"
              % (a.arch, a.layers, a.dim, a.vocab, nparams, a.threads,
                 "%.1f" % res["sample_tok_s"] if a.k else "-", "%.1f" % res["beam_tok_s"] if a.beam else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
