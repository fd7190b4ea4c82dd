#!/usr/bin/env python3
"""Tiny random MoE models of the published architectures, and their llama.cpp reference outputs.

Needs only the standard library and numpy (/usr/bin/python3 with python3-numpy). Two subcommands:

  model    --arch A --out DIR --gguf FILE
           Writes DIR/config.json + DIR/model.safetensors (Hugging Face names and layout, F32) and FILE, the same
           weights as an F32 GGUF laid out the way llama.cpp's convert_hf_to_gguf.py converts that model_type
           (conversion/qwen.py Qwen2MoeModel / Qwen3MoeModel, conversion/olmo.py OlmoeModel): per-expert tensors
           stacked into blk.N.ffn_{gate,up,down}_exps [E, out, in], q/k rows NOT permuted (these archs use NEOX
           RoPE, which is HF's rotate-half), the shared-expert gate [1, D] stored as [D].
  expected --logits FILE --ids JSON --prompt IDS --vocab V --out FILE
           Turns llama_run.mjs's check-mode outputs (every step's logits as float32, the greedy ids) into
           expected.safetensors: prompt [n] I32, ids [S] I32, logits [S, V] F32.

Every feature of each architecture is switched on at a tiny size:
  qwen3_moe  per-head q/k RMSNorm, head_dim != hidden/heads, GQA, softmax top-k renormalised (norm_topk_prob)
  olmoe      q/k RMSNorm over the whole projection before the head split, softmax top-k not renormalised
             (llama.cpp's olmoe needs as many kv heads as heads: its attn_k_norm is [n_embd])
  qwen2_moe  q/k/v biases, GQA, softmax top-k not renormalised, a sigmoid-gated shared expert of its own width
  deepseek_v3  multi-head latent attention with q_lora_rank set, v_head_dim != qk head dim, interleaved RoPE on the
             rotary parts, a dense first layer (first_k_dense_replace 1), sigmoid routing with e_score_correction_bias,
             n_group 4 > topk_group 2, routed_scaling_factor 2.5, two shared experts. As DeepseekV2Model converts it
             (conversion/deepseek.py): kv_b_proj split per head into attn_k_b [H, r, dn] (transposed) and attn_v_b
             [H, dv, r] for llama.cpp's MLA path, which caches [latent | k_rope] per position. YaRN (factor 4 over an
             original context of 16, so the 22 positions run past it) with mscale = mscale_all_dim = 0.707, which
             scales the softmax by (0.1·0.707·ln 4 + 1)².
  deepseek_v2  deepseek_v3's attention, dense first layer, shared experts and YaRN, with V2's router: scoring_func
             softmax, no selection bias, norm_topk_prob false, routed_scaling_factor 2. topk_method greedy (as V2-Lite,
             n_group = topk_group = 1): llama.cpp ranks expert groups by the sum of their two best scores for every
             deepseek2 file (llama-graph.cpp build_moe_ffn), where V2's group_limited_greedy ranks them by their best,
             so a grouped V2 would not be a reference. Converted with expert_gating_func 1 (softmax) and without
             expert_weights_norm, which the converter writes only when true.
  gpt_oss    q/k/v/o biases, per-head attention sinks, sliding window 4 (shorter than the 22 positions) on layers
             0 and 2 (layer_types), YaRN (factor 4, original context 64, truncate as llama.cpp does), a biased
             router with top-k-then-softmax, biased experts with the clamped SwiGLU (alpha 1.702, limit 7);
             written F32 in HF's unquantized layout (gate_up_proj [E, D, 2F], gate even / up odd columns;
             down_proj [E, F, D]) and converted as conversion/gpt_oss.py does (transpose, split even/odd).
             The expert matrices are rounded to MXFP4 first (blocks of 32 along the input, nearest code, scale
             2^ceil(log2(max/6))), so gpt_oss/mxfp4/ holds the same model as the released checkpoints store it:
             *_blocks [E, out, in/32, 16] U8 (element 2i in byte i's low nibble) and *_scales [E, out, in/32] U8,
             and DIR/model-mxfp4.gguf holds it as the converter writes that checkpoint: ffn_{gate,up,down}_exps as
             ggml MXFP4 (type 39, blocks of the scale byte then 16 bytes, element j in byte j's low nibble and j + 16
             in its high one), everything else F32
llama.cpp hard-codes norm_topk_prob per architecture (true for qwen3moe, false for olmoe and qwen2moe), so each
config uses the value its real checkpoints use. Weights are drawn from numpy's default_rng(seed) in a fixed order:
token embeddings N(0, 1) (so the continuation varies), other matrices N(0, 0.1), routers N(0, 0.5) (decisive routing, so no near-ties between implementations), biases
N(0, 0.1), norm weights 1 + N(0, 0.1).

The GGUF carries a dummy SentencePiece vocab (node-llama-cpp aborts without a tokenizer; see
shared/peer/llamacpp/README.md), which is why the vocab is at least 259; ids are fed directly.
"""
import argparse
import json
import os
import struct

import numpy as np

GGML_F32, GGML_MXFP4 = 0, 39
GI32, GU32, GF32, GBOOL, GSTR, GARR = 5, 4, 6, 7, 8, 9
ALIGN = 32

ARCHS = {
    "qwen3_moe": dict(gguf="qwen3moe", hf="Qwen3MoeForCausalLM", vocab=288, hidden=32, layers=3, heads=4, kv_heads=2,
                      head_dim=16, experts=8, top_k=2, moe_inter=16, inter=48, shared_inter=0, qk_norm="head",
                      bias=False, norm_topk=True, theta=1e6, eps=1e-6),
    "olmoe": dict(gguf="olmoe", hf="OlmoeForCausalLM", vocab=288, hidden=32, layers=3, heads=4, kv_heads=4,
                  head_dim=8, experts=8, top_k=4, moe_inter=16, inter=16, shared_inter=0, qk_norm="whole",
                  bias=False, norm_topk=False, theta=10000.0, eps=1e-5),
    "qwen2_moe": dict(gguf="qwen2moe", hf="Qwen2MoeForCausalLM", vocab=288, hidden=32, layers=3, heads=4, kv_heads=2,
                      head_dim=8, experts=8, top_k=4, moe_inter=16, inter=48, shared_inter=40, qk_norm=None,
                      bias=True, norm_topk=False, theta=1e6, eps=1e-6),
    "deepseek_v3": dict(gguf="deepseek2", hf="DeepseekV3ForCausalLM", vocab=288, hidden=32, layers=3, heads=4,
                        q_lora=24, kv_lora=16, qk_nope=8, qk_rope=4, v_head=6, experts=8, top_k=3, groups=4,
                        topk_group=2, moe_inter=16, inter=48, shared=2, dense=1, scaling=2.5, norm_topk=True,
                        theta=10000.0, eps=1e-6, yarn_factor=4.0, yarn_orig=16, yarn_mscale=0.707),
    "deepseek_v2": dict(gguf="deepseek2", hf="DeepseekV2ForCausalLM", vocab=288, hidden=32, layers=3, heads=4,
                        q_lora=24, kv_lora=16, qk_nope=8, qk_rope=4, v_head=6, experts=8, top_k=3, groups=1,
                        topk_group=1, moe_inter=16, inter=48, shared=2, dense=1, scaling=2.0, norm_topk=False,
                        theta=10000.0, eps=1e-6, yarn_factor=4.0, yarn_orig=16, yarn_mscale=0.707, scoring="softmax",
                        topk_method="greedy"),
    "gpt_oss": dict(gguf="gpt-oss", hf="GptOssForCausalLM", vocab=288, hidden=32, layers=3, heads=4, kv_heads=2,
                    head_dim=16, experts=4, top_k=2, moe_inter=32, inter=32, shared_inter=0, qk_norm=None,
                    bias=True, norm_topk=False, theta=150000.0, eps=1e-5, window=4, yarn_factor=4.0, yarn_orig=64),
}


def deepseek_config(arch, a):
    c = {"architectures": [a["hf"]], "model_type": arch, "vocab_size": a["vocab"],
            "hidden_size": a["hidden"], "intermediate_size": a["inter"], "moe_intermediate_size": a["moe_inter"],
            "num_hidden_layers": a["layers"], "num_attention_heads": a["heads"], "num_key_value_heads": a["heads"],
            "n_shared_experts": a["shared"], "n_routed_experts": a["experts"], "routed_scaling_factor": a["scaling"],
            "kv_lora_rank": a["kv_lora"], "q_lora_rank": a["q_lora"], "qk_rope_head_dim": a["qk_rope"],
            "v_head_dim": a["v_head"], "qk_nope_head_dim": a["qk_nope"], "n_group": a["groups"],
            "topk_group": a["topk_group"], "num_experts_per_tok": a["top_k"], "first_k_dense_replace": a["dense"],
            "norm_topk_prob": a["norm_topk"], "hidden_act": "silu",
            # HF recomputes YaRN's factor as max_position_embeddings / original_max_position_embeddings while
            # llama.cpp reads factor; the released configs keep the two equal, and so does this one.
            "max_position_embeddings": int(a["yarn_factor"] * a["yarn_orig"]),
            "initializer_range": 0.02, "rms_norm_eps": a["eps"], "tie_word_embeddings": False,
            # mscale equal to mscale_all_dim, as DeepSeek's configs have it: llama.cpp's deepseek2 assumes so.
            "rope_theta": a["theta"], "rope_interleave": True, "attention_bias": False,
            "rope_scaling": {"type": "yarn", "factor": a["yarn_factor"], "beta_fast": 32.0, "beta_slow": 1.0,
                             "original_max_position_embeddings": a["yarn_orig"], "mscale": a["yarn_mscale"],
                             "mscale_all_dim": a["yarn_mscale"]},
            "attention_dropout": 0.0, "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 1}
    if "scoring" in a:  # DeepSeek-V2's router: softmax scores, no selection bias, greedy or group-limited top-k
        c.update(scoring_func=a["scoring"], topk_method=a["topk_method"])
    return c


def deepseek_tensors(a):
    D, V, E, F, H = a["hidden"], a["vocab"], a["experts"], a["moe_inter"], a["heads"]
    qk, r, dr = a["qk_nope"] + a["qk_rope"], a["kv_lora"], a["qk_rope"]
    out = [("model.embed_tokens.weight", "token_embd.weight", (V, D), "embed")]
    for l in range(a["layers"]):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        out += [(p + "input_layernorm.weight", g + "attn_norm.weight", (D,), "norm"),
                (p + "self_attn.q_a_proj.weight", g + "attn_q_a.weight", (a["q_lora"], D), "matrix"),
                (p + "self_attn.q_a_layernorm.weight", g + "attn_q_a_norm.weight", (a["q_lora"],), "norm"),
                (p + "self_attn.q_b_proj.weight", g + "attn_q_b.weight", (H * qk, a["q_lora"]), "matrix"),
                (p + "self_attn.kv_a_proj_with_mqa.weight", g + "attn_kv_a_mqa.weight", (r + dr, D), "matrix"),
                (p + "self_attn.kv_a_layernorm.weight", g + "attn_kv_a_norm.weight", (r,), "norm"),
                (p + "self_attn.kv_b_proj.weight", g + "attn_kv_b.weight", (H * (a["qk_nope"] + a["v_head"]), r), "matrix"),
                (p + "self_attn.o_proj.weight", g + "attn_output.weight", (D, H * a["v_head"]), "matrix"),
                (p + "post_attention_layernorm.weight", g + "ffn_norm.weight", (D,), "norm")]
        if l < a["dense"]:
            I = a["inter"]
            out += [(p + "mlp.gate_proj.weight", g + "ffn_gate.weight", (I, D), "matrix"),
                    (p + "mlp.up_proj.weight", g + "ffn_up.weight", (I, D), "matrix"),
                    (p + "mlp.down_proj.weight", g + "ffn_down.weight", (D, I), "matrix")]
            continue
        out.append((p + "mlp.gate.weight", g + "ffn_gate_inp.weight", (E, D), "router"))
        if a.get("scoring", "sigmoid") == "sigmoid":
            out.append((p + "mlp.gate.e_score_correction_bias", g + "exp_probs_b.bias", (E,), "bias"))
        for w, gg, shape in (("gate_proj", "ffn_gate_exps", (E, F, D)), ("up_proj", "ffn_up_exps", (E, F, D)),
                             ("down_proj", "ffn_down_exps", (E, D, F))):
            out.append(([p + f"mlp.experts.{e}.{w}.weight" for e in range(E)], g + gg + ".weight", shape, "matrix"))
        S = a["shared"] * F
        out += [(p + "mlp.shared_experts.gate_proj.weight", g + "ffn_gate_shexp.weight", (S, D), "matrix"),
                (p + "mlp.shared_experts.up_proj.weight", g + "ffn_up_shexp.weight", (S, D), "matrix"),
                (p + "mlp.shared_experts.down_proj.weight", g + "ffn_down_shexp.weight", (D, S), "matrix")]
    out += [("model.norm.weight", "output_norm.weight", (D,), "norm"),
            ("lm_head.weight", "output.weight", (V, D), "matrix")]
    return out


def to_gguf(gguf_name, x, a):
    """The GGUF tensors for one drawn HF tensor, as convert_hf_to_gguf.py reshapes or splits it."""
    if gguf_name.endswith("ffn_gate_inp_shexp.weight"):
        return [(gguf_name, x.reshape(-1))]
    if gguf_name.endswith("attn_kv_b.weight"):  # DeepseekV2Model.modify_tensors
        kv_b = x.reshape(a["heads"], a["qk_nope"] + a["v_head"], x.shape[-1])
        k_b, v_b = kv_b[:, :a["qk_nope"], :], kv_b[:, a["qk_nope"]:, :]
        return [(gguf_name.replace("attn_kv_b", "attn_k_b"), np.ascontiguousarray(k_b.transpose(0, 2, 1))),
                (gguf_name.replace("attn_kv_b", "attn_v_b"), np.ascontiguousarray(v_b))]
    return [(gguf_name, x)]


def hf_config(arch, a):
    if arch.startswith("deepseek"):
        return deepseek_config(arch, a)
    if arch == "gpt_oss":
        return {"architectures": [a["hf"]], "model_type": arch, "vocab_size": a["vocab"], "hidden_size": a["hidden"],
                "num_hidden_layers": a["layers"], "num_attention_heads": a["heads"],
                "num_key_value_heads": a["kv_heads"], "head_dim": a["head_dim"], "intermediate_size": a["inter"],
                "num_local_experts": a["experts"], "num_experts_per_tok": a["top_k"], "experts_per_token": a["top_k"],
                "max_position_embeddings": 4096, "rms_norm_eps": a["eps"], "rope_theta": a["theta"],
                "rope_scaling": {"rope_type": "yarn", "factor": a["yarn_factor"], "beta_fast": 32.0, "beta_slow": 1.0,
                                 "truncate": True, "original_max_position_embeddings": a["yarn_orig"]},
                "sliding_window": a["window"],
                "layer_types": ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(a["layers"])],
                "attention_bias": True, "swiglu_limit": 7.0, "tie_word_embeddings": False, "hidden_act": "silu",
                "torch_dtype": "float32", "initializer_range": 0.02, "attention_dropout": 0.0,
                "output_router_logits": False, "router_aux_loss_coef": 0.9, "pad_token_id": 0, "eos_token_id": 2}
    c = {"architectures": [a["hf"]], "model_type": arch, "vocab_size": a["vocab"], "hidden_size": a["hidden"],
         "num_hidden_layers": a["layers"], "num_attention_heads": a["heads"], "num_key_value_heads": a["kv_heads"],
         "max_position_embeddings": 4096, "rms_norm_eps": a["eps"], "rope_theta": a["theta"],
         "tie_word_embeddings": False, "hidden_act": "silu", "torch_dtype": "float32", "initializer_range": 0.02,
         "attention_dropout": 0.0, "output_router_logits": False, "router_aux_loss_coef": 0.001,
         "norm_topk_prob": a["norm_topk"], "intermediate_size": a["inter"]}
    if arch == "olmoe":
        c.update(num_experts=a["experts"], num_experts_per_tok=a["top_k"], clip_qkv=None, attention_bias=False,
                 pad_token_id=1, bos_token_id=None, eos_token_id=50279)
    else:
        c.update(num_experts=a["experts"], num_experts_per_tok=a["top_k"], moe_intermediate_size=a["moe_inter"],
                 decoder_sparse_step=1, mlp_only_layers=[], use_sliding_window=False, sliding_window=None,
                 max_window_layers=a["layers"], bos_token_id=151643, eos_token_id=151645)
    if arch == "qwen3_moe":
        c.update(head_dim=a["head_dim"], attention_bias=False)
    if arch == "qwen2_moe":
        c.update(shared_expert_intermediate_size=a["shared_inter"])
    return c


def tensors(a):
    """(hf name or list of per-expert hf names, gguf name, shape, kind) in draw order."""
    if "kv_lora" in a:
        return deepseek_tensors(a)
    D, V, E, F, hd = a["hidden"], a["vocab"], a["experts"], a["moe_inter"], a["head_dim"]
    q, kv = a["heads"] * hd, a["kv_heads"] * hd
    out = [("model.embed_tokens.weight", "token_embd.weight", (V, D), "embed")]
    for l in range(a["layers"]):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        out += [(p + "input_layernorm.weight", g + "attn_norm.weight", (D,), "norm"),
                (p + "self_attn.q_proj.weight", g + "attn_q.weight", (q, D), "matrix"),
                (p + "self_attn.k_proj.weight", g + "attn_k.weight", (kv, D), "matrix"),
                (p + "self_attn.v_proj.weight", g + "attn_v.weight", (kv, D), "matrix")]
        if a["bias"]:
            out += [(p + "self_attn.q_proj.bias", g + "attn_q.bias", (q,), "bias"),
                    (p + "self_attn.k_proj.bias", g + "attn_k.bias", (kv,), "bias"),
                    (p + "self_attn.v_proj.bias", g + "attn_v.bias", (kv,), "bias")]
        if a["qk_norm"] == "head":
            out += [(p + "self_attn.q_norm.weight", g + "attn_q_norm.weight", (hd,), "norm"),
                    (p + "self_attn.k_norm.weight", g + "attn_k_norm.weight", (hd,), "norm")]
        elif a["qk_norm"] == "whole":
            out += [(p + "self_attn.q_norm.weight", g + "attn_q_norm.weight", (q,), "norm"),
                    (p + "self_attn.k_norm.weight", g + "attn_k_norm.weight", (kv,), "norm")]
        out += [(p + "self_attn.o_proj.weight", g + "attn_output.weight", (D, q), "matrix"),
                (p + "post_attention_layernorm.weight", g + "ffn_norm.weight", (D,), "norm"),
                (p + "mlp.gate.weight", g + "ffn_gate_inp.weight", (E, D), "router")]
        for w, gg, shape in (("gate_proj", "ffn_gate_exps", (E, F, D)), ("up_proj", "ffn_up_exps", (E, F, D)),
                             ("down_proj", "ffn_down_exps", (E, D, F))):
            out.append(([p + f"mlp.experts.{e}.{w}.weight" for e in range(E)], g + gg + ".weight", shape, "matrix"))
        if a["shared_inter"]:
            S = a["shared_inter"]
            out += [(p + "mlp.shared_expert.gate_proj.weight", g + "ffn_gate_shexp.weight", (S, D), "matrix"),
                    (p + "mlp.shared_expert.up_proj.weight", g + "ffn_up_shexp.weight", (S, D), "matrix"),
                    (p + "mlp.shared_expert.down_proj.weight", g + "ffn_down_shexp.weight", (D, S), "matrix"),
                    (p + "mlp.shared_expert_gate.weight", g + "ffn_gate_inp_shexp.weight", (1, D), "matrix")]
    out += [("model.norm.weight", "output_norm.weight", (D,), "norm"),
            ("lm_head.weight", "output.weight", (V, D), "matrix")]
    return out


def gpt_oss_tensors(a):
    """As tensors(), in HF's layout: (hf name, gguf names or None, shape, kind); the experts are fused."""
    D, V, E, F, hd = a["hidden"], a["vocab"], a["experts"], a["moe_inter"], a["head_dim"]
    q, kv = a["heads"] * hd, a["kv_heads"] * hd
    out = [("model.embed_tokens.weight", "token_embd.weight", (V, D), "embed")]
    for l in range(a["layers"]):
        p, g = f"model.layers.{l}.", f"blk.{l}."
        out += [(p + "input_layernorm.weight", g + "attn_norm.weight", (D,), "norm")]
        for w, gg, shape in (("q_proj", "attn_q", (q, D)), ("k_proj", "attn_k", (kv, D)), ("v_proj", "attn_v", (kv, D)),
                             ("o_proj", "attn_output", (D, q))):
            out += [(p + f"self_attn.{w}.weight", g + gg + ".weight", shape, "matrix"),
                    (p + f"self_attn.{w}.bias", g + gg + ".bias", shape[:1], "bias")]
        out += [(p + "self_attn.sinks", g + "attn_sinks.weight", (a["heads"],), "sink"),
                (p + "post_attention_layernorm.weight", g + "post_attention_norm.weight", (D,), "norm"),
                (p + "mlp.router.weight", g + "ffn_gate_inp.weight", (E, D), "router"),
                (p + "mlp.router.bias", g + "ffn_gate_inp.bias", (E,), "router"),
                (p + "mlp.experts.gate_up_proj", "gate_up", (E, D, 2 * F), "expert"),
                (p + "mlp.experts.gate_up_proj_bias", "gate_up_bias", (E, 2 * F), "bias"),
                (p + "mlp.experts.down_proj", g + "ffn_down_exps.weight", (E, F, D), "expert"),
                (p + "mlp.experts.down_proj_bias", g + "ffn_down_exps.bias", (E, D), "bias")]
    out += [("model.norm.weight", "output_norm.weight", (D,), "norm"),
            ("lm_head.weight", "output.weight", (V, D), "matrix")]
    return out


FP4 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)


def mxfp4(t):
    """t [..., K] (K % 32 == 0) -> HF blocks [..., K/32, 16] U8, scales [..., K/32] U8, the exact dequantized t, and
    the same values as ggml's MXFP4 rows [..., K/32·17] U8 (the block_mxfp4 that repack_mxfp4 in conversion/gpt_oss.py
    makes: the scale byte, then element j in the low nibble of byte j and element j + 16 in its high nibble)."""
    g = t.reshape(*t.shape[:-1], t.shape[-1] // 32, 32).astype(np.float64)
    e = np.ceil(np.log2(np.maximum(np.abs(g).max(-1), 1e-30) / 6)).astype(np.int64)
    d = np.exp2(e)[..., None]
    codes = np.abs(FP4[None, :] * d[..., None] - g[..., None]).argmin(-1).astype(np.uint8)  # [..., G, 32]
    blocks = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    deq = (FP4[codes] * d).astype(np.float32).reshape(t.shape)
    scales = (e + 127).astype(np.uint8)
    ggml = np.concatenate([scales[..., None], codes[..., :16] | (codes[..., 16:] << 4)], axis=-1).astype(np.uint8)
    return blocks, scales, deq, ggml.reshape(*t.shape[:-1], -1)


def gpt_oss_gguf(gguf_name, hf_name, x):
    """conversion/gpt_oss.py's modify_tensors on unquantized experts: transpose, gate = even, up = odd."""
    blk = hf_name.split(".")[2] if hf_name.startswith("model.layers.") else None
    if gguf_name == "gate_up":
        t = np.ascontiguousarray(x.transpose(0, 2, 1))  # [E, 2F, D]
        return [(f"blk.{blk}.ffn_gate_exps.weight", t[:, ::2, :]), (f"blk.{blk}.ffn_up_exps.weight", t[:, 1::2, :])]
    if gguf_name == "gate_up_bias":
        return [(f"blk.{blk}.ffn_gate_exps.bias", x[..., ::2]), (f"blk.{blk}.ffn_up_exps.bias", x[..., 1::2])]
    if gguf_name.endswith("ffn_down_exps.weight"):
        return [(gguf_name, np.ascontiguousarray(x.transpose(0, 2, 1)))]  # [E, D, F]
    return [(gguf_name, x)]


def draw(rng, shape, kind):
    x = rng.standard_normal(shape, dtype=np.float32)
    if kind == "norm":
        return np.float32(1) + np.float32(0.1) * x
    return x * np.float32({"embed": 1.0, "matrix": 0.1, "bias": 0.1, "router": 0.5, "sink": 1.0, "expert": 1.0}[kind])


def write_safetensors(path, named):
    """named: list of (name, array) with dtype float32 or int32, written in order."""
    header, off = {}, 0
    for name, x in named:
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}[x.dtype]
        header[name] = {"dtype": dt, "shape": list(x.shape), "data_offsets": [off, off + x.nbytes]}
        off += x.nbytes
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _, x in named:
            f.write(np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tobytes())


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gkv(key, vtype, value):
    out = gstr(key) + struct.pack("<I", vtype)
    if vtype == GU32:
        return out + struct.pack("<I", value)
    if vtype == GF32:
        return out + struct.pack("<f", value)
    if vtype == GBOOL:
        return out + struct.pack("<B", 1 if value else 0)
    return out + gstr(value)


def garr(key, etype, values):
    out = gstr(key) + struct.pack("<IIQ", GARR, etype, len(values))
    if etype == GSTR:
        return out + b"".join(gstr(v) for v in values)
    return out + struct.pack(f"<{len(values)}{ {GI32: 'i', GF32: 'f'}[etype]}", *values)


def dummy_vocab(n):
    """The SentencePiece-style vocab of shared/peer/llamacpp/make_models.py: <unk> <s> </s>, 256 bytes, fillers."""
    tokens, types = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)], [2, 3, 3] + [6] * 256
    while len(tokens) < n:
        tokens.append(f"t{len(tokens):05d}")
        types.append(1)
    scores = [0.0 if t != 1 else -float(i) for i, t in enumerate(types)]
    return tokens[:n], scores[:n], types[:n]


def write_gguf(path, arch, a, cfg, gg_tensors):
    """gg_tensors: list of (gguf name, float32 array, or (MXFP4 rows U8, logical shape)). Metadata as
    convert_hf_to_gguf.py writes it."""
    n = a["gguf"]
    kvs = [gkv("general.architecture", GSTR, n), gkv("general.name", GSTR, f"tiny-random-{arch}"),
           gkv("general.alignment", GU32, ALIGN), # LLAMA_FTYPE_ALL_F32 0, MOSTLY_MXFP4_MOE 38
           gkv("general.file_type", GU32, 38 if any(isinstance(x, tuple) for _, x in gg_tensors) else 0),
           gkv(f"{n}.block_count", GU32, cfg["num_hidden_layers"]),
           gkv(f"{n}.context_length", GU32, cfg["max_position_embeddings"]),
           gkv(f"{n}.embedding_length", GU32, cfg["hidden_size"]),
           gkv(f"{n}.feed_forward_length", GU32, cfg["intermediate_size"]),
           gkv(f"{n}.attention.head_count", GU32, cfg["num_attention_heads"]),
           gkv(f"{n}.attention.head_count_kv", GU32, cfg["num_key_value_heads"]),
           gkv(f"{n}.rope.freq_base", GF32, cfg["rope_theta"]),
           # OlmoeModel.set_gguf_parameters overwrites the epsilon with 1e-5; the olmoe config uses 1e-5 too
           gkv(f"{n}.attention.layer_norm_rms_epsilon", GF32, 1e-5 if arch == "olmoe" else cfg["rms_norm_eps"]),
           gkv(f"{n}.expert_count", GU32, cfg.get("num_experts", cfg.get("n_routed_experts", cfg.get("num_local_experts")))),
           gkv(f"{n}.expert_used_count", GU32, cfg["num_experts_per_tok"])]
    if arch.startswith("deepseek"):  # DeepseekV2Model.set_gguf_parameters, TextModel's expert group and gating keys
        r, dr = cfg["kv_lora_rank"], cfg["qk_rope_head_dim"]
        kvs = [kv for kv in kvs if not kv.startswith(gstr(f"{n}.attention.head_count_kv"))]
        kvs += [gkv(f"{n}.attention.head_count_kv", GU32, 1), gkv(f"{n}.vocab_size", GU32, cfg["vocab_size"]),
                gkv(f"{n}.leading_dense_block_count", GU32, cfg["first_k_dense_replace"]),
                gkv(f"{n}.attention.q_lora_rank", GU32, cfg["q_lora_rank"]),
                gkv(f"{n}.attention.kv_lora_rank", GU32, r),
                gkv(f"{n}.attention.key_length", GU32, r + dr), gkv(f"{n}.attention.value_length", GU32, r),
                gkv(f"{n}.attention.key_length_mla", GU32, cfg["qk_nope_head_dim"] + dr),
                gkv(f"{n}.attention.value_length_mla", GU32, cfg["v_head_dim"]),
                gkv(f"{n}.expert_feed_forward_length", GU32, cfg["moe_intermediate_size"]),
                gkv(f"{n}.expert_shared_count", GU32, cfg["n_shared_experts"]),
                gkv(f"{n}.expert_weights_scale", GF32, cfg["routed_scaling_factor"]),
                gkv(f"{n}.expert_group_count", GU32, cfg["n_group"]),
                gkv(f"{n}.expert_group_used_count", GU32, cfg["topk_group"]),
                # ExpertGatingFuncType: SOFTMAX 1, SIGMOID 2 (scoring_func; sigmoid is DeepseekV3Config's default)
                gkv(f"{n}.expert_gating_func", GU32, {"softmax": 1, "sigmoid": 2}[cfg.get("scoring_func", "sigmoid")]),
                gkv(f"{n}.rope.dimension_count", GU32, dr),
                # TextModel's rope_scaling keys; DeepseekV2Model adds 0.1·mscale_all_dim as yarn_log_multiplier
                gkv(f"{n}.rope.scaling.yarn_log_multiplier", GF32, 0.1 * cfg["rope_scaling"]["mscale_all_dim"])]
        if cfg["norm_topk_prob"]:  # written only when true
            kvs.append(gkv(f"{n}.expert_weights_norm", GBOOL, True))
    if "head_dim" in cfg:
        kvs += [gkv(f"{n}.attention.key_length", GU32, cfg["head_dim"]),
                gkv(f"{n}.attention.value_length", GU32, cfg["head_dim"])]
    if "moe_intermediate_size" in cfg and not arch.startswith("deepseek"):
        kvs.append(gkv(f"{n}.expert_feed_forward_length", GU32, cfg["moe_intermediate_size"]))
    if "shared_expert_intermediate_size" in cfg:
        kvs.append(gkv(f"{n}.expert_shared_feed_forward_length", GU32, cfg["shared_expert_intermediate_size"]))
    if arch == "gpt_oss":
        kvs += [gkv(f"{n}.expert_feed_forward_length", GU32, cfg["intermediate_size"]),
                gkv(f"{n}.attention.sliding_window", GU32, cfg["sliding_window"])]
    if arch in ("gpt_oss", "deepseek_v2", "deepseek_v3"):
        rs = cfg["rope_scaling"]
        kvs += [gkv(f"{n}.rope.scaling.type", GSTR, "yarn"),
                gkv(f"{n}.rope.scaling.factor", GF32, rs["factor"]),
                gkv(f"{n}.rope.scaling.original_context_length", GU32, rs["original_max_position_embeddings"]),
                gkv(f"{n}.rope.scaling.yarn_beta_fast", GF32, rs["beta_fast"]),
                gkv(f"{n}.rope.scaling.yarn_beta_slow", GF32, rs["beta_slow"])]
    tokens, scores, types = dummy_vocab(cfg["vocab_size"])
    kvs += [gkv("tokenizer.ggml.model", GSTR, "llama"), gkv("tokenizer.ggml.pre", GSTR, "default"),
            garr("tokenizer.ggml.tokens", GSTR, tokens), garr("tokenizer.ggml.scores", GF32, scores),
            garr("tokenizer.ggml.token_type", GI32, types), gkv("tokenizer.ggml.bos_token_id", GU32, 1),
            gkv("tokenizer.ggml.eos_token_id", GU32, 2), gkv("tokenizer.ggml.unknown_token_id", GU32, 0)]
    infos, off, blobs = [], 0, []
    for name, x in gg_tensors:
        raw, shape, gtype = (x[0], x[1], GGML_MXFP4) if isinstance(x, tuple) else (None, x.shape, GGML_F32)
        ne = list(reversed(shape))  # GGUF lists ne0 (innermost) first
        infos.append(gstr(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
                     + struct.pack("<IQ", gtype, off))
        b = np.ascontiguousarray(raw).tobytes() if raw is not None else np.ascontiguousarray(x, dtype="<f4").tobytes()
        blobs.append((off, b))
        off += len(b) + (-len(b)) % ALIGN
    head = b"GGUF" + struct.pack("<IQQ", 3, len(gg_tensors), len(kvs)) + b"".join(kvs) + b"".join(infos)
    head += b"\0" * ((-len(head)) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        for o, b in blobs:
            f.seek(len(head) + o)
            f.write(b)


def model(args):
    a = ARCHS[args.arch]
    cfg = hf_config(args.arch, a)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    rng = np.random.default_rng(args.seed)
    hf, gg = [], []
    if args.arch == "gpt_oss":
        quantized, gg_mxfp4 = [], []
        for hf_name, gguf_name, shape, kind in gpt_oss_tensors(a):
            x = draw(rng, shape, kind)
            converted = None
            if kind == "expert":  # HF [E, in, out] -> MXFP4 rows [E, out, in]
                blocks, scales, deq, rows = mxfp4(np.ascontiguousarray(x.transpose(0, 2, 1)))
                x = np.ascontiguousarray(deq.transpose(0, 2, 1))
                quantized += [(hf_name + "_blocks", blocks), (hf_name + "_scales", scales)]
                E, out_rows, n_in = deq.shape
                if gguf_name == "gate_up":  # generate_extra_tensors: gate the even rows, up the odd ones
                    blk = hf_name.split(".")[2]
                    converted = [(f"blk.{blk}.ffn_gate_exps.weight", (rows[:, ::2], (E, out_rows // 2, n_in))),
                                 (f"blk.{blk}.ffn_up_exps.weight", (rows[:, 1::2], (E, out_rows // 2, n_in)))]
                else:
                    converted = [(gguf_name, (rows, (E, out_rows, n_in)))]
            else:
                quantized.append((hf_name, x))
            hf.append((hf_name, x))
            gg += gpt_oss_gguf(gguf_name, hf_name, x)
            gg_mxfp4 += converted or gpt_oss_gguf(gguf_name, hf_name, x)
        write_safetensors(os.path.join(args.out, "model.safetensors"), hf)
        write_gguf(args.gguf, args.arch, a, cfg, gg)
        # The released checkpoint's form converted: experts stay MXFP4, repacked to ggml's block_mxfp4 (ArchitectureGoldenTests).
        write_gguf(os.path.join(args.out, "model-mxfp4.gguf"), args.arch, a, cfg, gg_mxfp4)
        os.makedirs(os.path.join(args.out, "mxfp4"), exist_ok=True)
        with open(os.path.join(args.out, "mxfp4", "config.json"), "w") as f:
            json.dump(dict(cfg, quantization_config={"quant_method": "mxfp4", "modules_to_not_convert": [
                "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}), f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(args.out, "mxfp4", "model.safetensors"), quantized)
        return
    for hf_name, gguf_name, shape, kind in tensors(a):
        x = draw(rng, shape, kind)
        if isinstance(hf_name, list):
            hf += [(name, x[e]) for e, name in enumerate(hf_name)]
        else:
            hf.append((hf_name, x))
        gg += to_gguf(gguf_name, x, a)
    write_safetensors(os.path.join(args.out, "model.safetensors"), hf)
    write_gguf(args.gguf, args.arch, a, cfg, gg)


def expected(args):
    ids = json.loads(open(args.ids).read())["ids"]
    logits = np.fromfile(args.logits, dtype="<f4").reshape(len(ids), -1)[:, :args.vocab]
    assert np.isfinite(logits).all() and (logits.argmax(axis=1) == ids).all()
    top2 = np.sort(logits, axis=1)[:, -2:]
    print(f"smallest top-1/top-2 gap over {len(ids)} steps: {float((top2[:, 1] - top2[:, 0]).min()):.4g}")
    prompt = np.array([int(t) for t in args.prompt.split(",")], dtype=np.int32)
    write_safetensors(args.out, [("prompt", prompt), ("ids", np.array(ids, dtype=np.int32)),
                                 ("logits", np.ascontiguousarray(logits, dtype=np.float32))])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("model")
    m.add_argument("--arch", choices=sorted(ARCHS), required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--gguf", required=True)
    m.add_argument("--seed", type=int, default=13)
    e = sub.add_parser("expected")
    e.add_argument("--logits", required=True)
    e.add_argument("--ids", required=True)
    e.add_argument("--prompt", required=True)
    e.add_argument("--vocab", type=int, required=True)
    e.add_argument("--out", required=True)
    args = ap.parse_args()
    model(args) if args.cmd == "model" else expected(args)


if __name__ == "__main__":
    main()
