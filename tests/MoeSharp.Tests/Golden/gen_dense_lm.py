"""Golden reference for MoeSharp's dense Transformer LM, from an independent plain-torch implementation.

Writes dense_lm.safetensors next to this script. Regenerate (needs Debian's python3-torch, numpy):

    /usr/bin/python3 tests/MoeSharp.Tests/Golden/gen_dense_lm.py

The output is deterministic for a given torch build (CPU, fp32, 1 thread, OpenBLAS pinned to its Haswell kernels;
with the AVX-512 kernels the bytes differ at the 1e-7 level). The script also reruns everything in
fp64 from the same initial weights and prints the largest fp32-vs-fp64 differences, which is the yardstick for the
tolerances the C# tests use.

Model (Llama-style, no biases): V=37, D=32, L=2 layers, NH=4 heads of hd=8 (as many kv heads), d_ff F=64,
RMSNorm eps 1e-5 with a weight, RoPE theta 10000 in the rotate-half (Hugging Face Llama) convention, causal
softmax attention scaled by 1/sqrt(hd), SwiGLU MLP down(silu(gate(x)) * up(x)), final RMSNorm, untied lm_head.
Loss = mean cross-entropy over all B*T positions.

RNG order after torch.manual_seed(1234): tokens [B, T+1] = randint(0, V), then the parameters in the order listed
in PARAM_SHAPES, each Linear/embedding weight ~ normal(0, 0.02), each RMSNorm weight 1 + 0.1*normal.

Contents of dense_lm.safetensors (F32 unless noted):
    every parameter by name (initial values), `input` I32 [B,T] = tokens[:, :T], `target` I32 [B,T] = tokens[:, 1:],
    `logits` [B,T,V] and `loss` [1] at init, `grad.<name>` = d loss / d parameter at init,
    `adamw_losses` [21]: loss before each of 20 AdamW steps (lr 1e-2, betas (0.9, 0.999), eps 1e-8,
    weight_decay 0.1, decoupled, on every parameter, same batch every step), then the loss after the last step.
    __metadata__ holds the config as strings.

fp32 vs fp64 from the same initial weights, as printed by this script (torch 1.13, 1 thread):
    logits 8.1e-8 max abs (2.1e-7 of max |logit|); loss 1.2e-7; gradients 2.6e-8 max abs, worst tensor
    5.4e-7 relative to its max |grad| (layers.1 q_proj); adamw_losses 5.4e-7 max over all 21.
So the fp32 rounding noise is ~1e-7 relative everywhere, including after 20 AdamW steps; tolerances of 1e-5 on
logits and losses and 1e-4 relative (to each tensor's max |grad|) on gradients leave a wide margin while still
catching convention bugs (interleaved RoPE instead of rotate-half moves the logits by 5e-3 relative and the k_proj
gradients by 130%; eps 1e-6 instead of 1e-5 moves the logits by 1.3%).
"""
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "bench", "peer"))
# Pin OpenBLAS's kernels (AVX2, run on any x86-64-v3 CPU): the fp32 rounding, and so the file's bytes, depend on them.
os.environ["PEER_OPENBLAS_CORETYPE"] = "Haswell"
from threads import set_threads  # noqa: E402  (before torch; also limits OpenBLAS's own thread pool)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from safetensors_io import load_file, save_file  # noqa: E402

CFG = dict(V=37, D=32, L=2, NH=4, F=64, eps=1e-5, theta=10000.0, B=3, T=16, seed=1234,
           lr=1e-2, beta1=0.9, beta2=0.999, adam_eps=1e-8, weight_decay=0.1, steps=20,
           init_std=0.02, norm_init_std=0.1)
CFG["hd"] = CFG["D"] // CFG["NH"]


def param_shapes(c):
    V, D, F_, NH, hd = c["V"], c["D"], c["F"], c["NH"], c["hd"]
    shapes = {"model.embed_tokens.weight": (V, D)}
    for i in range(c["L"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (D,),
            p + "self_attn.q_proj.weight": (NH * hd, D),
            p + "self_attn.k_proj.weight": (NH * hd, D),
            p + "self_attn.v_proj.weight": (NH * hd, D),
            p + "self_attn.o_proj.weight": (D, NH * hd),
            p + "post_attention_layernorm.weight": (D,),
            p + "mlp.gate_proj.weight": (F_, D),
            p + "mlp.up_proj.weight": (F_, D),
            p + "mlp.down_proj.weight": (D, F_),
        })
    shapes["model.norm.weight"] = (D,)
    shapes["lm_head.weight"] = (V, D)
    return shapes


PARAM_SHAPES = param_shapes(CFG)


def init_params(c):
    params = {}
    for name, shape in PARAM_SHAPES.items():
        if "norm" in name:
            params[name] = 1.0 + c["norm_init_std"] * torch.randn(shape)
        else:
            params[name] = c["init_std"] * torch.randn(shape)
    return params


def rms_norm(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(T, hd, theta, dtype):
    inv_freq = theta ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)  # [hd/2]
    angle = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]  # [T, hd/2]
    return angle.cos().to(dtype), angle.sin().to(dtype)


def apply_rope(x, cos, sin):
    """x [B,NH,T,hd]; pairs (x_i, x_{i+hd/2}) rotated by angle pos*inv_freq_i."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(params, tokens, c):
    B, T = tokens.shape
    NH, hd = c["NH"], c["hd"]
    h = params["model.embed_tokens.weight"][tokens]  # [B,T,D]
    cos, sin = rope_cos_sin(T, hd, c["theta"], h.dtype)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(c["L"]):
        p = lambda n: params[f"model.layers.{i}.{n}"]  # noqa: E731
        a = rms_norm(h, p("input_layernorm.weight"), c["eps"])
        q, k, v = (
            (a @ p(f"self_attn.{n}_proj.weight").t()).view(B, T, NH, hd).transpose(1, 2) for n in "qkv")
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)  # [B,NH,T,T]
        scores = scores.masked_fill(~causal, float("-inf"))
        att = scores.softmax(-1) @ v  # [B,NH,T,hd]
        att = att.transpose(1, 2).reshape(B, T, NH * hd)
        h = h + att @ p("self_attn.o_proj.weight").t()
        b = rms_norm(h, p("post_attention_layernorm.weight"), c["eps"])
        g = b @ p("mlp.gate_proj.weight").t()
        u = b @ p("mlp.up_proj.weight").t()
        h = h + (F.silu(g) * u) @ p("mlp.down_proj.weight").t()
    h = rms_norm(h, params["model.norm.weight"], c["eps"])
    return h @ params["lm_head.weight"].t()


def loss_fn(logits, target):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def run(init, inp, target, c, dtype):
    """Logits, loss and grads at init, then the AdamW loss curve, all in `dtype`."""
    params = {n: t.detach().to(dtype).clone().requires_grad_(True) for n, t in init.items()}
    logits = forward(params, inp, c)
    loss = loss_fn(logits, target)
    loss.backward()
    grads = {n: t.grad.detach().clone() for n, t in params.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=c["lr"], betas=(c["beta1"], c["beta2"]),
                            eps=c["adam_eps"], weight_decay=c["weight_decay"])
    losses = []
    for _ in range(c["steps"]):
        opt.zero_grad()
        step_loss = loss_fn(forward(params, inp, c), target)
        losses.append(step_loss.item())
        step_loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(loss_fn(forward(params, inp, c), target).item())
    return logits.detach(), loss.detach(), grads, torch.tensor(losses, dtype=dtype)


def self_checks(init, inp, c):
    """Cheap checks of this implementation itself, in fp64."""
    p64 = {n: t.double() for n, t in init.items()}
    # RoPE against the per-pair formula written out literally.
    T, hd = 5, c["hd"]
    x = torch.randn(1, 1, T, hd, dtype=torch.float64)
    cos, sin = rope_cos_sin(T, hd, c["theta"], torch.float64)
    y = apply_rope(x, cos, sin)
    for pos in range(T):
        for i in range(hd // 2):
            ang = pos * c["theta"] ** (-2.0 * i / hd)
            a, b = x[0, 0, pos, i].item(), x[0, 0, pos, i + hd // 2].item()
            assert abs(y[0, 0, pos, i].item() - (a * math.cos(ang) - b * math.sin(ang))) < 1e-12
            assert abs(y[0, 0, pos, i + hd // 2].item() - (b * math.cos(ang) + a * math.sin(ang))) < 1e-12
    # Causality: changing the last token must not change any earlier position's logits.
    changed = inp.clone()
    changed[:, -1] = (changed[:, -1] + 1) % c["V"]
    l0, l1 = forward(p64, inp, c), forward(p64, changed, c)
    assert torch.equal(l0[:, :-1], l1[:, :-1]) and not torch.equal(l0[:, -1], l1[:, -1])


def main():
    c = CFG
    set_threads(1)
    torch.manual_seed(c["seed"])
    tokens = torch.randint(0, c["V"], (c["B"], c["T"] + 1))
    inp, target = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
    init = init_params(c)  # fp32
    self_checks(init, inp, c)

    logits, loss, grads, losses = run(init, inp, target, c, torch.float32)
    logits64, loss64, grads64, losses64 = run(init, inp, target, c, torch.float64)

    def diff(a, b):
        a64 = a.double()
        return (a64 - b).abs().max().item(), ((a64 - b).abs().max() / b.abs().max()).item()

    print(f"loss fp32 {loss.item():.7f}  fp64 {loss64.item():.7f}  (ln V = {math.log(c['V']):.7f})")
    print(f"adamw losses fp32: {' '.join(f'{x:.4f}' for x in losses.tolist())}")
    print("fp32 vs fp64, max |diff| (and relative to max |fp64|):")
    print(f"  logits        {diff(logits, logits64)[0]:.3e} ({diff(logits, logits64)[1]:.1e})")
    print(f"  loss          {diff(loss, loss64)[0]:.3e}")
    worst = max(((n,) + diff(grads[n], grads64[n]) for n in grads), key=lambda x: x[2])
    print(f"  grads (all)   {max(diff(grads[n], grads64[n])[0] for n in grads):.3e}  "
          f"worst relative {worst[2]:.1e} in {worst[0]}")
    dl = (losses.double() - losses64).abs()
    print(f"  adamw_losses  {dl.max().item():.3e} (step 0: {dl[0].item():.1e}, last: {dl[-1].item():.1e})")

    out = dict(init)
    out["input"] = inp.to(torch.int32)
    out["target"] = target.to(torch.int32)
    out["logits"] = logits
    out["loss"] = loss.reshape(1)
    for n, g in grads.items():
        out["grad." + n] = g
    out["adamw_losses"] = losses.float()
    meta = {k: repr(v) if isinstance(v, float) else str(v) for k, v in c.items()}
    meta.update(kv_heads=str(c["NH"]), rope="rotate_half", tied_embeddings="false", bias="false",
                adamw_steps_on="every parameter, same batch", torch=torch.__version__,
                generator="tests/MoeSharp.Tests/Golden/gen_dense_lm.py")
    path = os.path.join(HERE, "dense_lm.safetensors")
    save_file(out, path, metadata=meta)
    back, _ = load_file(path)
    assert all(back[n].shape == tuple(out[n].shape) for n in out)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(out)} tensors)")


if __name__ == "__main__":
    main()
