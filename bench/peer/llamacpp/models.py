"""A random Mixtral-shaped model, the same weights twice: a Hugging Face folder (MoeSharp) and GGUF (llama.cpp).

    models.py --out DIR [--small] [--formats f32,f16,bf16,q8_0]
      DIR/hf/config.json + model.safetensors   F32, HF Mixtral names and rotate-half q/k rows
      DIR/model-FORMAT.gguf                     arch "llama", q/k rows in llama.cpp's interleaved order, experts
                                                stacked [E, out, in]; FORMAT (f32, f16, bf16 or q8_0) on every
                                                matrix but the router, norms F32
The default shape is issue 10's: hidden 1024, 8 layers, 16 heads / 4 KV heads, 8 experts of 3584, top-2, vocab
32000 (791 M parameters). --small: hidden 256, 2 layers, 4/2 heads, 4 experts of 256 (every row whole 256-wide
K-quant super-blocks, so Q4_K and Q6_K files can be written from it too), vocab 320 (llama.cpp needs the 256 byte
tokens in its dummy SentencePiece vocab, so not less). Weights N(0, 0.02) from a seeded numpy generator;
norms are 1. Standard library and numpy only.
"""
import argparse
import json
import os
import struct

import numpy as np

F32, F16, Q8_0, BF16 = 0, 1, 8, 30          # ggml tensor types
TYPES = {"f32": F32, "f16": F16, "bf16": BF16, "q8_0": Q8_0}
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}   # llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16
U32, I32, F32V, STR, ARR = 4, 5, 6, 8, 9   # gguf value types
ALIGN = 32


def to_interleaved(w, heads):
    """HF's rotate-half row order to llama.cpp's interleaved pairs (convert_hf_to_gguf's LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def q8_0(x):
    """ggml's quantize_row_q8_0_ref: blocks of 32, scale amax/127 stored as f16, round half away from zero."""
    b = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)  # [blocks, 32]
    d = (np.abs(b).max(axis=1) / np.float32(127)).astype(np.float32)  # [blocks]
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    v = b * inv[:, None]
    out = np.empty(b.shape[0], dtype=[("d", "<f2"), ("qs", "i1", (32,))])
    out["d"] = d.astype(np.float16)
    out["qs"] = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int8)
    return out.tobytes()


def bf16(x):
    """ggml_compute_fp32_to_bf16 for finite values: round to nearest, ties to even, keep the high 16 bits."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + (np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1)))) >> 16).astype("<u2").tobytes()


def encode(x, ty):
    """The bytes of matrix x in ggml type ty."""
    if ty == Q8_0:
        return q8_0(x)
    if ty == F16:
        return x.astype("<f2").tobytes()
    if ty == BF16:
        return bf16(x)
    return x.astype("<f4").tobytes()


def nbytes(n, ty):
    return n // 32 * 34 if ty == Q8_0 else n * (4 if ty == F32 else 2)


def s(text):
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def kv(key, vtype, value):
    body = {U32: lambda: struct.pack("<I", value), F32V: lambda: struct.pack("<f", value), STR: lambda: s(value)}
    return s(key) + struct.pack("<I", vtype) + body[vtype]()


def kv_array(key, etype, values):
    head = s(key) + struct.pack("<IIQ", ARR, etype, len(values))
    if etype == STR:
        return head + b"".join(s(v) for v in values)
    return head + struct.pack(f"<{len(values)}{'i' if etype == I32 else 'f'}", *values)


def tensors(a, hd):
    """(gguf name, hf names (one, or one per expert), shape, ones?, heads to re-order or 0, quantizable?)"""
    H, F, E, V = a.hidden, a.inter, a.experts, a.vocab
    out = [("token_embd.weight", ["model.embed_tokens.weight"], (V, H), False, 0, True)]
    for l in range(a.layers):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        x = p + "block_sparse_moe."
        out += [(g + "attn_norm.weight", [p + "input_layernorm.weight"], (H,), True, 0, False),
                (g + "attn_q.weight", [p + "self_attn.q_proj.weight"], (a.heads * hd, H), False, a.heads, True),
                (g + "attn_k.weight", [p + "self_attn.k_proj.weight"], (a.kv_heads * hd, H), False, a.kv_heads, True),
                (g + "attn_v.weight", [p + "self_attn.v_proj.weight"], (a.kv_heads * hd, H), False, 0, True),
                (g + "attn_output.weight", [p + "self_attn.o_proj.weight"], (H, a.heads * hd), False, 0, True),
                (g + "ffn_norm.weight", [p + "post_attention_layernorm.weight"], (H,), True, 0, False),
                (g + "ffn_gate_inp.weight", [x + "gate.weight"], (E, H), False, 0, False),
                (g + "ffn_gate_exps.weight", [x + f"experts.{e}.w1.weight" for e in range(E)], (E, F, H), False, 0, True),
                (g + "ffn_down_exps.weight", [x + f"experts.{e}.w2.weight" for e in range(E)], (E, H, F), False, 0, True),
                (g + "ffn_up_exps.weight", [x + f"experts.{e}.w3.weight" for e in range(E)], (E, F, H), False, 0, True)]
    return out + [("output_norm.weight", ["model.norm.weight"], (H,), True, 0, False),
                  ("output.weight", ["lm_head.weight"], (V, H), False, 0, True)]


def gguf_head(a, hd, ts, fmt):
    vocab = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    vocab += [f"t{i:05d}" for i in range(len(vocab), a.vocab)]
    types = [2, 3, 3] + [6] * 256 + [1] * (a.vocab - 259)   # unknown, control, byte, normal
    u = lambda k, v: kv("llama." + k, U32, v)  # noqa: E731
    kvs = [kv("general.architecture", STR, "llama"), kv("general.alignment", U32, ALIGN),
           kv("general.file_type", U32, FILE_TYPES[fmt]), u("vocab_size", a.vocab),
           u("context_length", 4096), u("embedding_length", a.hidden), u("block_count", a.layers),
           u("feed_forward_length", a.inter), u("attention.head_count", a.heads),
           u("attention.head_count_kv", a.kv_heads), u("rope.dimension_count", hd),
           kv("llama.rope.freq_base", F32V, 1e6), kv("llama.attention.layer_norm_rms_epsilon", F32V, 1e-5),
           u("expert_count", a.experts), u("expert_used_count", 2),
           kv("tokenizer.ggml.model", STR, "llama"), kv_array("tokenizer.ggml.tokens", STR, vocab),
           kv_array("tokenizer.ggml.scores", F32V, [-float(i) for i in range(a.vocab)]),
           kv_array("tokenizer.ggml.token_type", I32, types), kv("tokenizer.ggml.bos_token_id", U32, 1),
           kv("tokenizer.ggml.eos_token_id", U32, 2), kv("tokenizer.ggml.unknown_token_id", U32, 0)]
    infos, offsets, off = [], [], 0
    for name, _, shape, _, _, quant in ts:
        ty = TYPES[fmt] if quant else F32
        n = int(np.prod(shape))
        infos.append(s(name) + struct.pack(f"<I{len(shape)}Q", len(shape), *reversed(shape)) + struct.pack("<IQ", ty, off))
        offsets.append(off)
        off += nbytes(n, ty)
        off += -off % ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(kvs)) + b"".join(kvs) + b"".join(infos)
    return head + b"\0" * (-len(head) % ALIGN), offsets


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--formats", default="f32,q8_0")
    a = ap.parse_args()
    for k, big, small in [("hidden", 1024, 256), ("layers", 8, 2), ("heads", 16, 4), ("kv_heads", 4, 2),
                          ("experts", 8, 4), ("inter", 3584, 256), ("vocab", 32000, 320)]:
        setattr(a, k, small if a.small else big)
    hd = a.hidden // a.heads
    ts = tensors(a, hd)
    os.makedirs(os.path.join(a.out, "hf"), exist_ok=True)
    with open(os.path.join(a.out, "hf", "config.json"), "w") as f:
        json.dump({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": a.hidden,
                   "intermediate_size": a.inter, "num_hidden_layers": a.layers, "num_attention_heads": a.heads,
                   "num_key_value_heads": a.kv_heads, "head_dim": hd, "num_local_experts": a.experts,
                   "num_experts_per_tok": 2, "vocab_size": a.vocab, "rope_theta": 1e6, "rms_norm_eps": 1e-5,
                   "max_position_embeddings": 4096, "tie_word_embeddings": False, "sliding_window": None,
                   "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}, f, indent=1)
    header, off = {}, 0
    for _, hf, shape, _, _, _ in ts:
        one = shape[1:] if len(hf) > 1 else shape
        for name in hf:
            n = int(np.prod(one)) * 4
            header[name] = {"dtype": "F32", "shape": list(one), "data_offsets": [off, off + n]}
            off += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    st = open(os.path.join(a.out, "hf", "model.safetensors"), "wb")
    st.write(struct.pack("<Q", len(raw)) + raw)
    ggufs = []
    for fmt in a.formats.split(","):
        head, offsets = gguf_head(a, hd, ts, fmt)
        f = open(os.path.join(a.out, f"model-{fmt}.gguf"), "wb")
        f.write(head)
        ggufs.append((f, fmt, len(head), offsets))
    rng = np.random.default_rng(1234)
    for i, (_, _, shape, ones, heads, quant) in enumerate(ts):
        x = np.ones(shape, np.float32) if ones else rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        st.write(x.astype("<f4").tobytes())
        if heads:
            x = to_interleaved(x, heads)
        for f, fmt, base, offsets in ggufs:
            f.seek(base + offsets[i])
            for part in (x if x.ndim == 3 else [x]):  # one expert at a time bounds the memory
                f.write(encode(part, TYPES[fmt] if quant else F32))
    st.close()
    for f, _, _, _ in ggufs:
        f.close()
    print(f"# model: {sum(int(np.prod(t[2])) for t in ts):,} parameters in {a.out}")


if __name__ == "__main__":
    main()
