#!/usr/bin/python3
"""Tiny random Hugging Face directories of the Llama-style families, for hdistill's io/hfmodel.c tests.

Usage:
    hf_llama.py suite OUTDIR          write every case below into OUTDIR
    hf_llama.py check DIR REF.h5      check an export (DIR/config.json + DIR/model.safetensors) against REF.h5
    hf_llama.py student DIR FAMILY VOCAB TOKENIZER_DIR
                                      a tiny random student of FAMILY (llama|qwen2|qwen3) with VOCAB token rows,
                                      weights N(0, 0.02) (norms 1) in BF16, 2 shards + index, plus the
                                      tokenizer files of TOKENIZER_DIR (tokenizer.json, tokenizer_config.json)
    hf_llama.py --selftest

suite writes, for each good case, OUTDIR/<case>/ (config.json as transformers writes it, weights in the
Hugging Face layout) and OUTDIR/<case>.ref.h5: root attributes family (llama|qwen2|qwen3) and every config
field under hdistill's names (n_layer, n_head, d_model, vocab_size, max_seq_len, n_kv_head, head_dim, d_ff,
qkv_bias, qk_norm, tie_embeddings, rope_llama3, rope_original_max_pos, norm_eps, rope_theta, rope_factor,
rope_low_freq_factor, rope_high_freq_factor); /tokens, /pos, /doc int32 [T] (one sequence: two packed documents,
positions restarting at 0); /logits float64 [T,V] = tests/ref/torch_llama.py's float64 forward of exactly the
values stored; /hf/<name> float32 of every weight the model has (no lm_head when tied, no buffers).
    llama_f32        LlamaForCausalLM, F32, one file, untied, 4 heads / 2 kv (SmolLM2-style config keys)
    llama3_bf16      LlamaForCausalLM, BF16, 3 shards + index, llama3 rope_scaling (positions beyond the
                     original context), tied, a rotary_emb.inv_freq buffer per layer (ignored)
    qwen2_f16        Qwen2ForCausalLM, F16, one file, q/k/v biases, tied, sliding window present but disabled
    qwen3_bf16       Qwen3ForCausalLM, BF16, 2 shards + index, q/k norms, head_dim 12 != 32/4, untied,
                     transformers 5 rope_parameters
    llama_params_f16 LlamaForCausalLM, F16, one file, llama3 scaling given as rope_parameters, MHA (kv = heads)
and broken directories (weights only; config.json of llama_f32 unless said):
    bad_missing (no model.layers.0.mlp.up_proj.weight), bad_unexpected (an extra model.layers.0.mlp.extra.weight),
    bad_shape (k_proj of 24 rows), bad_dtype (input_layernorm as I32), bad_layers (3 layers, config 2),
    bad_shard_missing (shard 2 of 3 deleted), bad_shard_truncated (shard 1 cut by 100 bytes),
    bad_index (the index puts model.norm.weight in the wrong shard).
check: DIR/config.json names the REF's family (architectures, model_type), equals every REF field, torch_dtype
float32; DIR/model.safetensors (read with this file's own reader) holds exactly REF's /hf tensors, F32,
bitwise equal.  Prints "check: N tensors equal".
Exit 0 ok, 1 DIR is wrong, 2 bad arguments; errors one line "hf_llama: error: ..." on stderr.
Needs numpy, h5py; suite also torch (through torch_llama.py).
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json  # noqa: E402
import shutil  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I32": "<i4"}
ARCH = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


class Fail(Exception):
    pass


def encode(values, dtype):
    if dtype == "BF16":
        b = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype("<u2")
    return values.astype(DTYPES[dtype])


def decode(stored, dtype):
    if dtype == "BF16":
        return (stored.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return stored.astype(np.float64)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, storage array), written in order."""
    header, chunks, pos = {"__metadata__": {"format": "pt"}}, [], 0
    for name, dtype, arr in tensors:
        data = np.ascontiguousarray(arr, dtype=np.dtype(DTYPES[dtype])).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [pos, pos + len(data)]}
        chunks.append(data)
        pos += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(chunks))


def read_safetensors(path):
    """-> {name: (dtype, float64 array)}; Fail on any format violation."""
    try:
        blob = open(path, "rb").read()
    except OSError as e:
        raise Fail("cannot read %s: %s" % (path, e.strerror))
    n = struct.unpack("<Q", blob[:8])[0] if len(blob) >= 8 else -1
    if n < 2 or n > len(blob) - 8:
        raise Fail("%s: bad header length" % path)
    header = json.loads(blob[8:8 + n].decode())
    header.pop("__metadata__", None)
    buf, out, spans = memoryview(blob)[8 + n:], {}, []
    for name, e in header.items():
        dt, shape, (b, end) = e["dtype"], e["shape"], e["data_offsets"]
        if dt not in DTYPES or end - b != int(np.prod(shape, dtype=np.int64)) * np.dtype(DTYPES[dt]).itemsize:
            raise Fail("%s: tensor %s: bad dtype/shape/offsets" % (path, name))
        out[name] = (dt, decode(np.frombuffer(buf[b:end], dtype=DTYPES[dt]).reshape(shape), dt))
        spans.append((b, end))
    at = 0
    for b, end in sorted(spans):
        if b != at:
            raise Fail("%s: tensors do not tile the data" % path)
        at = end
    if at != len(buf):
        raise Fail("%s: trailing bytes" % path)
    return out


# --------------------------------------------------------------------------
def spec(family, **over):
    s = dict(family=family, n_layer=2, n_head=4, d_model=32, vocab_size=61, max_seq_len=64, n_kv_head=2, head_dim=8,
             d_ff=48, qkv_bias=int(family == "qwen2"), qk_norm=int(family == "qwen3"), tie_embeddings=0, rope_llama3=0,
             rope_original_max_pos=0, norm_eps=1e-5, rope_theta=10000.0, rope_factor=0.0, rope_low_freq_factor=0.0,
             rope_high_freq_factor=0.0)
    s.update(over)
    return s


def with_llama3(s):
    s.update(rope_llama3=1, rope_theta=10.0, rope_factor=4.0, rope_low_freq_factor=0.5, rope_high_freq_factor=1.0,
             rope_original_max_pos=8)
    return s


def config_json(s, rope_parameters=False):
    c = {"architectures": [ARCH[s["family"]]], "model_type": s["family"], "vocab_size": s["vocab_size"],
         "hidden_size": s["d_model"], "intermediate_size": s["d_ff"], "num_hidden_layers": s["n_layer"],
         "num_attention_heads": s["n_head"], "num_key_value_heads": s["n_kv_head"], "hidden_act": "silu",
         "max_position_embeddings": s["max_seq_len"], "rms_norm_eps": s["norm_eps"],
         "tie_word_embeddings": bool(s["tie_embeddings"]), "initializer_range": 0.02, "attention_dropout": 0.0,
         "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16", "use_cache": True,
         "transformers_version": "4.45.0"}
    if s["head_dim"] != s["d_model"] // s["n_head"] or s["family"] == "qwen3":
        c["head_dim"] = s["head_dim"]
    if s["family"] == "llama":
        c.update(attention_bias=False, mlp_bias=False, pretraining_tp=1, rope_interleaved=False, is_llama_config=True)
    if s["family"] == "qwen2":
        c.update(use_sliding_window=False, sliding_window=4096, max_window_layers=s["n_layer"], use_mrope=False)
    if s["family"] == "qwen3":
        c.update(attention_bias=False, use_sliding_window=False, sliding_window=None, max_window_layers=s["n_layer"])
    scaling = None
    if s["rope_llama3"]:
        scaling = {"rope_type": "llama3", "factor": s["rope_factor"], "low_freq_factor": s["rope_low_freq_factor"],
                   "high_freq_factor": s["rope_high_freq_factor"],
                   "original_max_position_embeddings": s["rope_original_max_pos"]}
    if rope_parameters:
        c["rope_parameters"] = dict(scaling or {"rope_type": "default"}, rope_theta=s["rope_theta"])
    else:
        c.update(rope_theta=s["rope_theta"], rope_scaling=scaling)
    return c


def shapes(s):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import torch_llama
    return torch_llama.param_shapes(s)


def make(out, ref, s, dtype, shards=1, seed=1, rope_parameters=False, buffers=False, mutate=None):
    """writes out/ (config.json + weights) and, if ref, ref (see the docstring)."""
    rng = np.random.default_rng(seed)
    tensors, values = [], {}
    for name, shape in shapes(s).items():
        v = (1.0 + 0.3 * rng.standard_normal(shape)) if name.endswith("norm.weight") else 0.3 * rng.standard_normal(shape)
        stored = encode(v, dtype)
        values[name] = decode(stored, dtype)
        tensors.append((name, dtype, stored))
    if buffers:
        for l in range(s["n_layer"]):
            tensors.append(("model.layers.%d.self_attn.rotary_emb.inv_freq" % l, "F32",
                            np.arange(s["head_dim"] // 2, dtype="<f4")))
    if mutate:
        tensors = mutate(tensors)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json(s, rope_parameters), f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    else:
        weight_map, per = {}, -(-len(tensors) // shards)
        for k in range(shards):
            fname = "model-%05d-of-%05d.safetensors" % (k + 1, shards)
            part = tensors[k * per:(k + 1) * per]
            write_safetensors(os.path.join(out, fname), part)
            weight_map.update({n: fname for n, _, _ in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(a.nbytes for _, _, a in tensors)}, "weight_map": weight_map}, f,
                      indent=2)
    if ref:
        import torch_llama
        T = 16
        tokens = rng.integers(0, s["vocab_size"], T).astype(np.int32)
        doc = (np.arange(T) >= 6).astype(np.int32)
        pos = np.where(doc == 0, np.arange(T), np.arange(T) - 6).astype(np.int32) + (3 if s["rope_llama3"] else 0)
        logits = torch_llama.logits_of(s, values, tokens[None], pos[None], doc[None])[0]
        with h5py.File(ref, "w") as f:
            for k, v in s.items():
                f.attrs[k] = v if isinstance(v, str) else (np.float64(v) if isinstance(v, float) else np.int64(v))
            f["tokens"], f["pos"], f["doc"], f["logits"] = tokens, pos, doc, logits
            for n, v in values.items():
                f["hf/" + n] = v.astype(np.float32)


def cmd_student(out, family, vocab, tok_dir):
    if family not in ARCH:
        raise Fail("family %s: one of %s" % (family, ", ".join(ARCH)))
    s = spec(family, vocab_size=int(vocab), max_seq_len=256, tie_embeddings=int(family != "qwen3"))
    rng = np.random.default_rng(7)
    tensors = []
    for name, shape in shapes(s).items():
        v = np.ones(shape) if name.endswith("norm.weight") else 0.02 * rng.standard_normal(shape)
        if name.endswith(".bias"):
            v = np.zeros(shape)
        tensors.append((name, "BF16", encode(v, "BF16")))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config_json(s), f, indent=2)
    weight_map, per = {}, -(-len(tensors) // 2)
    for k in range(2):
        fname = "model-%05d-of-00002.safetensors" % (k + 1)
        part = tensors[k * per:(k + 1) * per]
        write_safetensors(os.path.join(out, fname), part)
        weight_map.update({n: fname for n, _, _ in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(a.nbytes for _, _, a in tensors)}, "weight_map": weight_map}, f)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(tok_dir, name)):
            shutil.copy(os.path.join(tok_dir, name), os.path.join(out, name))
    print("student: %s %s, %d tensors" % (out, ARCH[family], len(tensors)))


def cmd_suite(outdir):
    os.makedirs(outdir, exist_ok=True)
    j = os.path.join
    for case in os.listdir(outdir):
        if os.path.isdir(j(outdir, case)):
            shutil.rmtree(j(outdir, case))
    base = spec("llama")
    make(j(outdir, "llama_f32"), j(outdir, "llama_f32.ref.h5"), base, "F32", seed=1)
    make(j(outdir, "llama3_bf16"), j(outdir, "llama3_bf16.ref.h5"), with_llama3(spec("llama", tie_embeddings=1)),
         "BF16", shards=3, seed=2, buffers=True)
    make(j(outdir, "qwen2_f16"), j(outdir, "qwen2_f16.ref.h5"), spec("qwen2", tie_embeddings=1), "F16", seed=3)
    make(j(outdir, "qwen3_bf16"), j(outdir, "qwen3_bf16.ref.h5"), spec("qwen3", head_dim=12, rope_theta=1e6), "BF16",
         shards=2, seed=4, rope_parameters=True)
    make(j(outdir, "llama_params_f16"), j(outdir, "llama_params_f16.ref.h5"), with_llama3(spec("llama", n_kv_head=4)),
         "F16", seed=5, rope_parameters=True)

    def drop(ts):
        return [t for t in ts if t[0] != "model.layers.0.mlp.up_proj.weight"]

    def extra(ts):
        return ts + [("model.layers.0.mlp.extra.weight", "F32", np.zeros((2, 2), "<f4"))]

    def reshape(ts):
        return [(n, d, np.zeros((24, 32), "<f4")) if n.endswith("0.self_attn.k_proj.weight") else (n, d, a)
                for n, d, a in ts]

    def as_int(ts):
        return [(n, "I32", np.ones(a.shape, "<i4")) if n == "model.layers.0.input_layernorm.weight" else (n, d, a)
                for n, d, a in ts]

    for name, mut in (("bad_missing", drop), ("bad_unexpected", extra), ("bad_shape", reshape), ("bad_dtype", as_int)):
        make(j(outdir, name), None, base, "F32", mutate=mut)
    make(j(outdir, "bad_layers"), None, spec("llama", n_layer=3), "F32")
    with open(j(outdir, "bad_layers", "config.json"), "w") as f:
        json.dump(config_json(base), f)
    for name in ("bad_shard_missing", "bad_shard_truncated", "bad_index"):
        make(j(outdir, name), None, base, "F32", shards=3)
    os.remove(j(outdir, "bad_shard_missing", "model-00002-of-00003.safetensors"))
    p = j(outdir, "bad_shard_truncated", "model-00001-of-00003.safetensors")
    blob = open(p, "rb").read()
    open(p, "wb").write(blob[:-100])
    p = j(outdir, "bad_index", "model.safetensors.index.json")
    idx = json.load(open(p))
    idx["weight_map"]["model.norm.weight"] = "model-00001-of-00003.safetensors"
    json.dump(idx, open(p, "w"))
    print("suite: %s" % outdir)


def cmd_check(d, ref):
    try:
        with h5py.File(ref, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            want = {n: np.asarray(v[()], np.float32) for n, v in f["hf"].items()}
    except (OSError, KeyError) as e:
        raise ValueError("cannot read reference %s: %s" % (ref, e))
    try:
        cfg = json.load(open(os.path.join(d, "config.json")))
    except (OSError, ValueError) as e:
        raise Fail("config.json: %s" % e)
    fam = attrs["family"]
    scaling = cfg.get("rope_scaling") or {}
    got = {"architectures": cfg.get("architectures"), "model_type": cfg.get("model_type"),
           "torch_dtype": cfg.get("torch_dtype"), "hidden_act": cfg.get("hidden_act"),
           "n_layer": cfg.get("num_hidden_layers"), "n_head": cfg.get("num_attention_heads"),
           "d_model": cfg.get("hidden_size"), "vocab_size": cfg.get("vocab_size"),
           "max_seq_len": cfg.get("max_position_embeddings"), "n_kv_head": cfg.get("num_key_value_heads"),
           "head_dim": cfg.get("head_dim"), "d_ff": cfg.get("intermediate_size"),
           "tie_embeddings": int(cfg.get("tie_word_embeddings", False)), "norm_eps": cfg.get("rms_norm_eps"),
           "rope_theta": cfg.get("rope_theta"), "rope_llama3": int(scaling.get("rope_type") == "llama3")}
    exp = {"architectures": [ARCH[fam]], "model_type": fam, "torch_dtype": "float32", "hidden_act": "silu"}
    exp.update({k: attrs[k] for k in got if k in attrs})
    if attrs["rope_llama3"]:
        for k, ck in (("rope_factor", "factor"), ("rope_low_freq_factor", "low_freq_factor"),
                      ("rope_high_freq_factor", "high_freq_factor"),
                      ("rope_original_max_pos", "original_max_position_embeddings")):
            got[k], exp[k] = scaling.get(ck), attrs[k]
    for k in exp:
        g, w = got[k], exp[k]
        if isinstance(w, (float, np.floating)) and isinstance(g, (int, float)) and not isinstance(g, bool):
            ok = float(g) == float(w)
        else:
            ok = g == (w.tolist() if hasattr(w, "tolist") else w)
        if not ok:
            raise Fail("config.json: %s is %r, expected %r" % (k, g, w))
    if fam != "qwen2" and cfg.get("attention_bias") is not False:
        raise Fail("config.json: attention_bias must be false")
    tensors = read_safetensors(os.path.join(d, "model.safetensors"))
    if set(tensors) != set(want):
        extra, missing = sorted(set(tensors) - set(want)), sorted(set(want) - set(tensors))
        raise Fail("model.safetensors: %s" % ("unexpected tensor %s" % extra[0] if extra else "no tensor %s" % missing[0]))
    for n, (dt, v) in tensors.items():
        v32 = v.astype(np.float32)
        if dt != "F32" or v32.shape != want[n].shape or not np.array_equal(v32.view(np.uint32), want[n].view(np.uint32)):
            raise Fail("model.safetensors: tensor %s differs (dtype %s, shape %s)" % (n, dt, list(v32.shape)))
    print("check: %d tensors equal" % len(tensors))


def selftest():
    with tempfile.TemporaryDirectory() as d:
        cmd_suite(d)
        for case in ("llama_f32", "llama3_bf16", "qwen2_f16", "qwen3_bf16", "llama_params_f16"):
            with h5py.File(os.path.join(d, case + ".ref.h5"), "r") as f:
                assert np.abs(f["logits"][()]).max() > 0.1 and np.all(np.isfinite(f["logits"][()]))
        t = read_safetensors(os.path.join(d, "qwen3_bf16", "model-00001-of-00002.safetensors"))
        assert all(v[0] == "BF16" for v in t.values())
        # an export-like directory: the reference's own values as F32 must check, a flipped bit must not
        with h5py.File(os.path.join(d, "qwen2_f16.ref.h5"), "r") as f:
            s = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            hf = [(n, "F32", np.asarray(v[()], "<f4")) for n, v in f["hf"].items()]
        s = {k: (v.item() if hasattr(v, "item") else v) for k, v in s.items()}
        os.makedirs(os.path.join(d, "exp"))
        cfg = config_json(s)
        cfg.update(torch_dtype="float32", head_dim=s["head_dim"])
        json.dump(cfg, open(os.path.join(d, "exp", "config.json"), "w"))
        write_safetensors(os.path.join(d, "exp", "model.safetensors"), hf)
        cmd_check(os.path.join(d, "exp"), os.path.join(d, "qwen2_f16.ref.h5"))
        hf[3][2].reshape(-1)[0] += 1.0
        write_safetensors(os.path.join(d, "exp", "model.safetensors"), hf)
        try:
            cmd_check(os.path.join(d, "exp"), os.path.join(d, "qwen2_f16.ref.h5"))
            raise AssertionError("a changed value passed the check")
        except Fail:
            pass
    print("selftest ok")


def main(argv):
    try:
        if argv[1:] == ["--selftest"]:
            selftest()
        elif len(argv) == 3 and argv[1] == "suite":
            cmd_suite(argv[2])
        elif len(argv) == 4 and argv[1] == "check":
            cmd_check(argv[2], argv[3])
        elif len(argv) == 6 and argv[1] == "student":
            cmd_student(argv[2], argv[3], argv[4], argv[5])
        else:
            print("usage: hf_llama.py suite OUTDIR | check DIR REF.h5 | student DIR FAMILY VOCAB TOKENIZER_DIR | "
                  "--selftest", file=sys.stderr)
            return 2
    except Fail as e:
        print("hf_llama: error: %s" % e, file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError) as e:
        print("hf_llama: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
