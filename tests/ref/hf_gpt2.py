#!/usr/bin/python3
"""Independent reference for GPT-2 weights in the Hugging Face safetensors layout (hdistill import/export tests).

Usage:
    hf_gpt2.py make OUT.safetensors REF.h5 --layers L --heads H --embd C --vocab V --positions P
               [--seed S] [--dtype F32|F16|BF16|F64] [--prefix transformer.] [--buffers] [--lm-head] [--tokens N]
    hf_gpt2.py check FILE.safetensors REF.h5 [--config config.json]
    hf_gpt2.py --selftest

make   Random GPT-2 weights (numpy default_rng(S), default S=1234): matrices/embeddings N(0,0.02) (wpe N(0,0.2)),
       biases N(0,0.02), LN weights 1+N(0,0.1), LN biases N(0,0.05).  Written to OUT in the GPT2LMHeadModel layout
       (Conv1D weights [in,out]) with the given dtype (default F32; BF16 = float32 rounded to nearest even), names
       prefixed with --prefix, __metadata__ {"format":"pt"}.  JSON keys are sorted; data is contiguous in model order,
       grouped by element size (largest first) so every tensor is naturally aligned; header padded to 8 bytes.
       --buffers adds h.l.attn.bias (F32 [1,1,P,P] lower-triangular ones) and h.l.attn.masked_bias (F32 [] -1e4);
       --lm-head adds lm_head.weight (= wte).  REF.h5 gets root attrs n_layer, n_head, d_model, vocab_size,
       max_seq_len; /tokens int32 [N] (default N=min(P,24), ids in [0,V)); /logits float64 [N,V] = float64 GPT-2
       forward (gelu_new, LN eps 1e-5, tied head) of exactly the values stored in OUT, positions 0..N-1;
       /hf/<name without prefix> float32 of every stored weight (no buffers, no lm_head).
check  Reads FILE with its own safetensors reader (validates header, dtypes, sizes, contiguous in-bounds offsets),
       strips an optional "transformer." prefix, ignores attn.bias / attn.masked_bias / lm_head.weight, and requires
       the remaining names to equal REF's /hf names, with equal shapes and bitwise-equal float32 values.  --config
       also checks an HF config.json (model_type gpt2, sizes equal to REF, gelu_new, layer_norm_epsilon 1e-5).
       Prints "check: N tensors equal".
--selftest  Tiny model (L=2 H=2 C=16 V=50 P=12) for every dtype, with and without prefix/buffers/lm_head: make, check,
       numpy forward vs an independent torch float64 forward (skipped if torch is missing), corrupted/truncated files
       and wrong configs must fail.  Prints "selftest ok".
Exit status: 0 ok; 1 FILE or config is wrong; 2 bad arguments or unreadable REF.  Errors: one line
"hf_gpt2: error: ..." on stderr (naming the tensor where there is one).  Only numpy + h5py are needed.
"""
import os
import pathlib

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}  # BF16 stored as raw uint16
IGNORED = re.compile(r"^(h\.\d+\.attn\.(bias|masked_bias)|lm_head\.weight)$")
PREFIX = "transformer."


class Fail(Exception):  # the file under test is wrong -> exit 1
    pass


class BadInput(Exception):  # bad arguments / reference -> exit 2
    pass


def param_specs(L, C, V, P):
    """(name, shape, kind) in model order; kind selects the init distribution."""
    specs = [("wte.weight", (V, C), "mat"), ("wpe.weight", (P, C), "wpe")]
    for i in range(L):
        p = "h.%d." % i
        specs += [(p + "ln_1.weight", (C,), "lnw"), (p + "ln_1.bias", (C,), "lnb"),
                  (p + "attn.c_attn.weight", (C, 3 * C), "mat"), (p + "attn.c_attn.bias", (3 * C,), "bias"),
                  (p + "attn.c_proj.weight", (C, C), "mat"), (p + "attn.c_proj.bias", (C,), "bias"),
                  (p + "ln_2.weight", (C,), "lnw"), (p + "ln_2.bias", (C,), "lnb"),
                  (p + "mlp.c_fc.weight", (C, 4 * C), "mat"), (p + "mlp.c_fc.bias", (4 * C,), "bias"),
                  (p + "mlp.c_proj.weight", (4 * C, C), "mat"), (p + "mlp.c_proj.bias", (C,), "bias")]
    return specs + [("ln_f.weight", (C,), "lnw"), ("ln_f.bias", (C,), "lnb")]


def encode(values, dtype):
    """float64 array -> storage array for dtype."""
    if dtype == "BF16":
        b = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype("<u2")
    return values.astype(DTYPES[dtype])


def decode(stored, dtype):
    """storage array -> float64 values."""
    if dtype == "BF16":
        return (stored.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return stored.astype(np.float64)


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype, storage array); data grouped by element size, otherwise in list order."""
    order = sorted(range(len(tensors)), key=lambda i: (-tensors[i][2].dtype.itemsize, i))
    header, chunks, pos = {"__metadata__": metadata}, [], 0
    for i in order:
        name, dtype, arr = tensors[i]
        data = np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [pos, pos + len(data)]}
        chunks.append(data)
        pos += len(data)
    hj = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(chunks))


def read_safetensors(path):
    """-> (metadata, {name: (dtype, float64 array)}); raises Fail on any format violation."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise Fail("cannot read %s: %s" % (path, e.strerror))
    n = struct.unpack("<Q", blob[:8])[0] if len(blob) >= 8 else -1
    if n < 2 or n > len(blob) - 8 or n > 100 << 20:
        raise Fail("%s: bad header length %d (file size %d)" % (path, n, len(blob)))
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Fail("%s: bad JSON header: %s" % (path, e))
    if not isinstance(header, dict):
        raise Fail("%s: JSON header is not an object" % path)
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise Fail("%s: __metadata__ must map strings to strings" % path)
    buf, out, spans = memoryview(blob)[8 + n:], {}, []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise Fail("tensor %s: bad header entry %r" % (name, e))
        dt, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if dt not in DTYPES or not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise Fail("tensor %s: unknown dtype %r or bad shape %r" % (name, dt, shape))
        if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs) \
                or not 0 <= offs[0] <= offs[1] <= len(buf):
            raise Fail("tensor %s: data_offsets %r outside buffer of %d bytes" % (name, offs, len(buf)))
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dt]).itemsize
        if offs[1] - offs[0] != size:
            raise Fail("tensor %s: %d bytes but %s %s needs %d" % (name, offs[1] - offs[0], dt, shape, size))
        out[name] = (dt, decode(np.frombuffer(buf[offs[0]:offs[1]], dtype=DTYPES[dt]).reshape(shape), dt))
        spans.append((offs[0], offs[1], name))
    pos = 0
    for b, e, name in sorted(spans):
        if b != pos:
            raise Fail("tensor %s: data starts at %d, expected %d (gap or overlap)" % (name, b, pos))
        pos = e
    if pos != len(buf):
        raise Fail("%s: %d trailing bytes after the last tensor" % (path, len(buf) - pos))
    return meta, out


def layer_norm(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def forward(W, tokens, L, H):
    """float64 GPT-2 logits [T, V] for one sequence at positions 0..T-1; W maps unprefixed names to arrays."""
    T = len(tokens)
    x = W["wte.weight"][tokens] + W["wpe.weight"][:T]
    C = x.shape[1]
    D = C // H
    mask = np.tril(np.ones((T, T), dtype=bool))
    for i in range(L):
        p = "h.%d." % i
        a = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"])
        qkv = a @ W[p + "attn.c_attn.weight"] + W[p + "attn.c_attn.bias"]
        q, k, v = (qkv[:, j * C:(j + 1) * C].reshape(T, H, D).transpose(1, 0, 2) for j in range(3))
        s = np.where(mask, q @ k.transpose(0, 2, 1) / math.sqrt(D), -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        y = ((e / e.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ W[p + "attn.c_proj.weight"] + W[p + "attn.c_proj.bias"]
        m = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
        u = m @ W[p + "mlp.c_fc.weight"] + W[p + "mlp.c_fc.bias"]
        g = 0.5 * u * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))
        x = x + g @ W[p + "mlp.c_proj.weight"] + W[p + "mlp.c_proj.bias"]
    return layer_norm(x, W["ln_f.weight"], W["ln_f.bias"]) @ W["wte.weight"].T


def cmd_make(a):
    L, H, C, V, P = a.layers, a.heads, a.embd, a.vocab, a.positions
    if min(L, H, C, V, P) < 1 or C % H:
        raise BadInput("need positive sizes and embd divisible by heads")
    N = min(P, 24) if a.tokens is None else a.tokens
    if not 1 <= N <= P:
        raise BadInput("--tokens must be in 1..%d" % P)
    rng = np.random.default_rng(a.seed)
    sd = {"mat": (0.0, 0.02), "wpe": (0.0, 0.2), "bias": (0.0, 0.02), "lnw": (1.0, 0.1), "lnb": (0.0, 0.05)}
    tensors, W = [], {}
    for name, shape, kind in param_specs(L, C, V, P):
        stored = encode(sd[kind][0] + rng.normal(0.0, sd[kind][1], size=shape), a.dtype)
        W[name] = decode(stored, a.dtype)
        tensors.append((a.prefix + name, a.dtype, stored))
    tokens = rng.integers(0, V, size=N).astype(np.int32)
    if a.buffers:
        for i in range(L):
            tensors.append((a.prefix + "h.%d.attn.bias" % i, "F32", np.tril(np.ones((1, 1, P, P), "<f4"))))
            tensors.append((a.prefix + "h.%d.attn.masked_bias" % i, "F32", np.array(-1e4, "<f4")))
    if a.lm_head:
        tensors.append(("lm_head.weight", a.dtype, tensors[0][2]))
    write_safetensors(a.out, tensors, {"format": "pt"})
    with h5py.File(a.ref, "w") as f:
        for k, v in (("n_layer", L), ("n_head", H), ("d_model", C), ("vocab_size", V), ("max_seq_len", P)):
            f.attrs[k] = np.int64(v)
        f["tokens"] = tokens
        f["logits"] = forward(W, tokens, L, H)
        for name, _, _ in param_specs(L, C, V, P):
            f["hf/" + name] = W[name].astype(np.float32)
    print("make: %s L=%d H=%d C=%d V=%d P=%d dtype=%s %d tensors, %d tokens -> %s"
          % (a.out, L, H, C, V, P, a.dtype, len(tensors), N, a.ref))


def cmd_check(a):
    try:
        with h5py.File(a.ref, "r") as f:
            attrs = {k: int(f.attrs[k]) for k in ("n_layer", "n_head", "d_model", "vocab_size", "max_seq_len")}
            ref = {k: np.asarray(v[()], np.float32) for k, v in f["hf"].items()}
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise BadInput("cannot read reference %s: %s" % (a.ref, e))
    _, got = read_safetensors(a.file)
    short = {}  # unprefixed name -> name in FILE
    for name in got:
        k = name[len(PREFIX):] if name.startswith(PREFIX) else name
        if k in short:
            raise Fail("tensor %s: present both as %s and %s" % (k, short[k], name))
        if not IGNORED.match(k):
            short[k] = name
    extra, missing = sorted(set(short) - set(ref)), sorted(set(ref) - set(short))
    if extra or missing:
        what = "%s: unexpected" % short[extra[0]] if extra else "%s: missing" % missing[0]
        raise Fail("tensor %s (%d unexpected, %d missing)" % (what, len(extra), len(missing)))
    for k in sorted(short):  # all shapes first: a wrong size is a clearer message than wrong values
        shape = got[short[k]][1].shape
        if shape != ref[k].shape:
            raise Fail("tensor %s: shape %s, expected %s" % (short[k], list(shape), list(ref[k].shape)))
    for k in sorted(short):
        name, want, v32 = short[k], ref[k], got[short[k]][1].astype(np.float32)
        diff = np.flatnonzero(v32.view(np.uint32).ravel() != want.view(np.uint32).ravel())
        if diff.size:
            i = diff[0]
            raise Fail("tensor %s: %d values differ (first at flat index %d: %r vs %r)"
                       % (name, diff.size, i, float(v32.ravel()[i]), float(want.ravel()[i])))
    if a.config:
        try:
            with open(a.config, encoding="utf-8") as f:
                cfg = json.load(f)
        except (OSError, ValueError) as e:
            raise Fail("cannot read config %s: %s" % (a.config, e))
        want = {"model_type": "gpt2", "n_layer": attrs["n_layer"], "n_head": attrs["n_head"],
                "n_embd": attrs["d_model"], "vocab_size": attrs["vocab_size"], "n_positions": attrs["max_seq_len"],
                "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
        for k, v in want.items():
            got_v = cfg.get(k) if isinstance(cfg, dict) else None
            if type(got_v) is not type(v) or not (got_v == v or k == "layer_norm_epsilon" and math.isclose(got_v, v)):
                raise Fail("config %s: %s is %r, expected %r" % (a.config, k, got_v, v))
    print("check: %d tensors equal" % len(short))


def torch_forward(W, tokens, L, H):
    """Second, independent forward (torch float64, per-head loop, library LN/GELU) used only by --selftest."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in W.items()}
    T = len(tokens)
    x = t["wte.weight"][torch.tensor(tokens, dtype=torch.long)] + t["wpe.weight"][:T]
    C = x.shape[1]
    D = C // H
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(L):
        p = "h.%d." % i
        a = F.layer_norm(x, (C,), t[p + "ln_1.weight"], t[p + "ln_1.bias"], 1e-5)
        q, k, v = torch.addmm(t[p + "attn.c_attn.bias"], a, t[p + "attn.c_attn.weight"]).split(C, dim=1)
        heads = []
        for h in range(H):
            sl = slice(h * D, (h + 1) * D)
            s = (q[:, sl] @ k[:, sl].T / math.sqrt(D)).masked_fill(~causal, float("-inf"))
            heads.append(torch.softmax(s, dim=-1) @ v[:, sl])
        x = x + torch.addmm(t[p + "attn.c_proj.bias"], torch.cat(heads, 1), t[p + "attn.c_proj.weight"])
        m = F.layer_norm(x, (C,), t[p + "ln_2.weight"], t[p + "ln_2.bias"], 1e-5)
        u = F.gelu(torch.addmm(t[p + "mlp.c_fc.bias"], m, t[p + "mlp.c_fc.weight"]), approximate="tanh")
        x = x + torch.addmm(t[p + "mlp.c_proj.bias"], u, t[p + "mlp.c_proj.weight"])
    x = F.layer_norm(x, (C,), t["ln_f.weight"], t["ln_f.bias"], 1e-5)
    return (x @ t["wte.weight"].T).numpy()


def selftest():
    def expect(want, *argv):
        text = io.StringIO()
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            code = main(list(argv))
        assert code == want, "%s -> %d (want %d): %s" % (argv, code, want, text.getvalue())
        return text.getvalue()

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:  # BF16 rounding must agree with torch's float32 -> bfloat16 conversion
        bits = np.random.default_rng(1).normal(size=4096).astype(np.float32)
        bits = np.concatenate([bits, np.array([0x3F808000, 0x3F818000, 0x3F80C000], np.uint32).view(np.float32)])
        tb = torch.tensor(bits).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        assert np.array_equal(encode(bits.astype(np.float64), "BF16"), tb), "BF16 rounding differs from torch"
    size = ["--layers", "2", "--heads", "2", "--embd", "16", "--vocab", "50", "--positions", "12"]
    with tempfile.TemporaryDirectory() as d:
        st, ref, bad, cfg = (os.path.join(d, n) for n in ("m.safetensors", "m.h5", "bad.safetensors", "config.json"))
        for n, dt in enumerate(DTYPES):
            for extra in ([], ["--prefix", PREFIX, "--buffers", "--lm-head", "--tokens", "7"]):
                expect(0, "make", st, ref, *size, "--seed", str(n), "--dtype", dt, *extra)
                assert expect(0, "check", st, ref).strip() == "check: 28 tensors equal"
                meta, got = read_safetensors(st)
                assert meta == {"format": "pt"}
                assert all(v[0] == dt for k, v in got.items() if not k.endswith((".attn.bias", "masked_bias")))
                W = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v[1] for k, v in got.items()}
                with h5py.File(ref, "r") as f:
                    tokens, logits = f["tokens"][()], f["logits"][()]
                assert logits.shape == (7 if extra else 12, 50) and np.abs(logits).max() > 0.1
                assert np.allclose(forward(W, tokens, 2, 2), logits, rtol=0, atol=1e-12)
                if torch is not None:
                    diff = np.abs(torch_forward(W, tokens, 2, 2) - logits).max()
                    assert diff < 1e-12, "torch forward differs by %g (%s)" % (diff, dt)
                blob = pathlib.Path(st).read_bytes()
                hlen, isz = struct.unpack("<Q", blob[:8])[0], np.dtype(DTYPES[dt]).itemsize
                name = (PREFIX if extra else "") + "h.1.mlp.c_fc.weight"
                flip = 8 + hlen + json.loads(blob[8:8 + hlen])[name]["data_offsets"][0] + 6 * isz - 1  # elem 5, top
                assert hlen % 8 == 0
                for corrupt, data in ((name, blob[:flip] + bytes([blob[flip] ^ 1]) + blob[flip + 1:]), ("", blob[:-1])):
                    pathlib.Path(bad).write_bytes(data)
                    msg = expect(1, "check", bad, ref)
                    assert msg.startswith("hf_gpt2: error:") and corrupt in msg, msg
        good = {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 16, "vocab_size": 50, "n_positions": 12,
                "n_ctx": 12, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
        for key, val, want in ((None, None, 0), ("activation_function", "gelu", 1), ("n_head", 4, 1)):
            pathlib.Path(cfg).write_text(json.dumps(dict(good, **({key: val} if key else {}))))
            expect(want, "check", st, ref, "--config", cfg)
        expect(2, "check", st, os.path.join(d, "missing.h5"))
        expect(2, "make", st, ref, *size[:-2], "--positions", "4", "--tokens", "5")
    print("selftest ok" + ("" if torch is not None else " (torch unavailable: torch comparison skipped)"))


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise BadInput(message)


def main(argv=None):
    ap = Parser(prog="hf_gpt2", description="GPT-2 Hugging Face safetensors reference (see module docstring).")
    ap.add_argument("--selftest", action="store_true", help="run the built-in self test")
    sub = ap.add_subparsers(dest="cmd")
    mk = sub.add_parser("make", help="write random weights + reference logits")
    ck = sub.add_parser("check", help="compare a safetensors file with a reference")
    for p, names in ((mk, ("out", "ref")), (ck, ("file", "ref"))):
        for n in names:
            p.add_argument(n)
    for opt in ("--layers", "--heads", "--embd", "--vocab", "--positions"):
        mk.add_argument(opt, type=int, required=True)
    mk.add_argument("--seed", type=int, default=1234)
    mk.add_argument("--dtype", choices=list(DTYPES), default="F32")
    mk.add_argument("--prefix", default="")
    mk.add_argument("--buffers", action="store_true")
    mk.add_argument("--lm-head", action="store_true")
    mk.add_argument("--tokens", type=int)
    ck.add_argument("--config")
    try:
        a = ap.parse_args(argv)
        if a.selftest:
            selftest()
        elif a.cmd == "make":
            cmd_make(a)
        elif a.cmd == "check":
            cmd_check(a)
        else:
            raise BadInput("need a subcommand (make, check) or --selftest")
    except (Fail, BadInput, OSError) as e:
        msg = "%s: %s" % (e.filename, e.strerror) if isinstance(e, OSError) and e.filename else e
        print("hf_gpt2: error: %s" % msg, file=sys.stderr)
        return 1 if isinstance(e, Fail) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
