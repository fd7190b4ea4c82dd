"""LM peer: a plain-torch char-level Transformer LM on tiny Shakespeare, timed for training and for generation.

The model is the one of tests/MoeSharp.Tests/Golden/gen_dense_lm.py (pre-norm Llama-style decoder: RMSNorm eps
1e-5 with weights, RoPE theta 10000 rotate-half, causal softmax attention, SwiGLU MLP, untied lm_head, no
biases), made configurable:
    --preset dense    the MLP is SwiGLU of width --d-ff
    --preset mixtral  the MLP is a sparse MoE (bench/peer/moe_layer.py moe_sorted: softmax router, top-K,
                      renormalised, sort-by-expert SwiGLU experts of width --expert-ff), and the loss adds
                      0.01 * (mean over layers of the Switch balancing loss E * sum_e f_e * P_e), with f_e the
                      fraction of the T*K top-K assignments that go to e and P_e the mean router probability.
Data: --data (tiny Shakespeare), vocabulary = sorted distinct characters, first 90% train, the rest validation,
random windows of --context + 1 characters. AdamW lr 1e-3, weight decay 0.1, betas (0.9, 0.999).

Measures (one line each; tokens = batch * context per step):
    lm impl=torch preset=dense phase=train threads=2 tok_s=4700        steps after --warmup, fwd+bwd+AdamW
    lm impl=torch preset=dense phase=generate threads=2 tok_s=...      batch 1, KV cache, greedy, 200 new tokens
The generation prompt is the first 16 characters of the validation split; the cache grows to prompt + 200
positions (no sliding window), and the time covers the prompt's prefill and all 200 decode steps.
Comment lines (#) give the config, the final train loss and a validation loss over 20 batches.

Run:  /usr/bin/python3 bench/peer/lm.py --preset dense --steps 100 --threads 2
"""
import argparse
import math
import os
import time

from threads import describe, set_threads  # first: sets OMP_WAIT_POLICY before torch loads libgomp
import torch
import torch.nn as nn
import torch.nn.functional as F

from moe_layer import moe_sorted
from safetensors_io import load_file

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "tests", "MoeSharp.Tests", "Golden", "dense_lm.safetensors")


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):  # x [B,NH,T,hd], cos/sin [T,hd/2]; pairs (i, i+hd/2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, d, nh):
        super().__init__()
        self.nh, self.hd = nh, d // nh
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d, d, bias=False) for _ in range(4))

    def forward(self, x, cos, sin, cache=None, pos=0):
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.nh, self.hd).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = rope(q, cos[pos:pos + T], sin[pos:pos + T]), rope(k, cos[pos:pos + T], sin[pos:pos + T])
        if cache is not None:  # cache = (k [1,NH,maxlen,hd], v [...]); write, then attend to 0..pos+T
            cache[0][:, :, pos:pos + T] = k
            cache[1][:, :, pos:pos + T] = v
            k, v = cache[0][:, :, :pos + T], cache[1][:, :, :pos + T]
        s = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)  # [B,NH,T,pos+T]
        if T > 1:
            mask = torch.ones(T, pos + T, dtype=torch.bool).tril(diagonal=pos)
            s = s.masked_fill(~mask, float("-inf"))
        return self.o_proj((s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    def __init__(self, d, f):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False)
        self.down_proj = nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)), None


class MoE(nn.Module):
    def __init__(self, d, h, e, k):
        super().__init__()
        self.k = k
        self.gate = nn.Linear(d, e, bias=False)
        self.w1 = nn.ParameterList([nn.Parameter(torch.empty(h, d)) for _ in range(e)])
        self.w3 = nn.ParameterList([nn.Parameter(torch.empty(h, d)) for _ in range(e)])
        self.w2 = nn.ParameterList([nn.Parameter(torch.empty(d, h)) for _ in range(e)])

    def forward(self, x):
        B, T, D = x.shape
        y, probs, experts = moe_sorted(x.reshape(B * T, D), self.gate.weight, list(self.w1), list(self.w3),
                                       list(self.w2), self.k)
        e = probs.shape[-1]
        f = torch.bincount(experts.reshape(-1), minlength=e).to(probs.dtype) / experts.numel()  # [E]
        aux = e * (f * probs.mean(0)).sum()
        return y.view(B, T, D), aux


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(a.d_model), RMSNorm(a.d_model)
        self.self_attn = Attention(a.d_model, a.heads)
        self.mlp = (MLP(a.d_model, a.d_ff) if a.preset == "dense"
                    else MoE(a.d_model, a.expert_ff, a.experts, a.top_k))

    def forward(self, h, cos, sin, cache=None, pos=0):
        h = h + self.self_attn(self.input_layernorm(h), cos, sin, cache, pos)
        m, aux = self.mlp(self.post_attention_layernorm(h))
        return h + m, aux


class LM(nn.Module):
    def __init__(self, a, vocab, max_pos):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, a.d_model)
        self.layers = nn.ModuleList([Block(a) for _ in range(a.layers)])
        self.norm = RMSNorm(a.d_model)
        self.lm_head = nn.Linear(a.d_model, vocab, bias=False)
        hd = a.d_model // a.heads
        inv_freq = 10000.0 ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
        ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv_freq
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)
        for n, p in self.named_parameters():
            if "norm" not in n:
                nn.init.normal_(p, 0.0, 0.02)

    def forward(self, tokens, caches=None, pos=0):
        h = self.embed_tokens(tokens)
        auxes = []
        for i, layer in enumerate(self.layers):
            h, aux = layer(h, self.cos, self.sin, None if caches is None else caches[i], pos)
            if aux is not None:
                auxes.append(aux)
        aux = torch.stack(auxes).mean() if auxes else None
        return self.lm_head(self.norm(h)), aux


def loss_of(model, x, y, aux_coef=0.01):
    logits, aux = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return loss, (loss + aux_coef * aux if aux is not None else loss)


@torch.inference_mode()
def generate(model, prompt, n_new, a):
    hd = a.d_model // a.heads
    maxlen = len(prompt) + n_new
    caches = [(torch.zeros(1, a.heads, maxlen, hd), torch.zeros(1, a.heads, maxlen, hd)) for _ in range(a.layers)]
    logits, _ = model(prompt[None], caches, 0)
    out, pos = [], len(prompt)
    for _ in range(n_new):
        nxt = logits[0, -1].argmax()
        out.append(nxt.item())
        if len(out) == n_new:
            break
        logits, _ = model(nxt.view(1, 1), caches, pos)
        pos += 1
    return out


def self_check(a):
    """The dense model reproduces the golden logits; the KV-cache path reproduces full recompute."""
    msg = []
    if os.path.exists(GOLDEN):
        g, meta = load_file(GOLDEN)
        cfg = argparse.Namespace(preset="dense", layers=int(meta["L"]), d_model=int(meta["D"]),
                                 heads=int(meta["NH"]), d_ff=int(meta["F"]))
        m = LM(cfg, int(meta["V"]), int(meta["T"]))
        m.load_state_dict({n: torch.from_numpy(g[n if n == "lm_head.weight" else "model." + n])
                           for n in m.state_dict()})
        with torch.no_grad():
            err = (m(torch.from_numpy(g["input"]).long())[0] - torch.from_numpy(g["logits"])).abs().max().item()
        assert err < 1e-5, err
        msg.append(f"dense model matches golden logits (max diff {err:.1e})")
    m = LM(a, 11, 24).eval()
    seq = torch.randint(0, 11, (20,))
    hd = a.d_model // a.heads
    caches = [(torch.zeros(1, a.heads, 20, hd), torch.zeros(1, a.heads, 20, hd)) for _ in range(a.layers)]
    with torch.no_grad():
        full = m(seq[None])[0][0]  # [20, V]
        step = [m(seq[None, :5], caches, 0)[0][0]] + [m(seq[None, p:p + 1], caches, p)[0][0] for p in range(5, 20)]
    err = (torch.cat(step) - full).abs().max().item()
    assert err < 1e-5, err
    msg.append(f"KV cache == recompute (max diff {err:.1e})")
    return "; ".join(msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=["dense", "mixtral"], default="dense")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--expert-ff", type=int, default=512)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--data", default="/work/shared/datasets/tinyshakespeare/input.txt")
    a = ap.parse_args()
    set_threads(a.threads)
    torch.manual_seed(a.seed)

    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]

    def batch(split):
        ix = torch.randint(len(split) - a.context - 1, (a.batch,))
        w = torch.stack([split[i:i + a.context + 1] for i in ix.tolist()])
        return w[:, :-1], w[:, 1:]

    prompt = val[:16]
    model = LM(a, len(chars), max(a.context, len(prompt) + a.gen_tokens))
    nparams = sum(p.numel() for p in model.parameters())
    print(describe(), flush=True)
    print("# check: " + self_check(a), flush=True)
    torch.manual_seed(a.seed)
    print(f"# preset={a.preset} layers={a.layers} d_model={a.d_model} heads={a.heads} d_ff={a.d_ff} "
          f"context={a.context} batch={a.batch} experts={a.experts} top_k={a.top_k} expert_ff={a.expert_ff} "
          f"vocab={len(chars)} params={nparams} steps={a.steps} warmup={a.warmup}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.1)

    t0 = None
    for step in range(a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        x, y = batch(train)
        ce, total = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    timed = a.steps - a.warmup
    if t0 is not None and timed > 0:
        tok_s = timed * a.batch * a.context / (time.perf_counter() - t0)
        print(f"lm impl=torch preset={a.preset} phase=train threads={a.threads} tok_s={tok_s:.0f}", flush=True)

    model.eval()
    with torch.no_grad():
        val_loss = sum(loss_of(model, *batch(val))[0].item() for _ in range(20)) / 20
    print(f"# after {a.steps} steps: last train loss {ce.item():.4f}, val loss (20 batches) {val_loss:.4f}")

    generate(model, prompt, 8, a)  # warm-up
    t0 = time.perf_counter()
    out = generate(model, prompt, a.gen_tokens, a)
    tok_s = a.gen_tokens / (time.perf_counter() - t0)
    print(f"lm impl=torch preset={a.preset} phase=generate threads={a.threads} tok_s={tok_s:.0f}", flush=True)
    print("# sample: " + repr("".join(chars[i] for i in prompt.tolist()) + "|" + "".join(chars[i] for i in out))[:120])


if __name__ == "__main__":
    main()
