"""MoE layer peer: a Mixtral-style sparse MoE FFN in PyTorch, timed forward and forward+backward.

Math (T tokens, D model width, H expert width, E experts, K experts per token):
    router logits = x . G^T (G [E,D]); p = softmax; top-K of p; the K weights renormalised to sum 1;
    expert e: y_e = w2_e(silu(w1_e x) * w3_e x), w1/w3 [H,D], w2 [D,H];  y = sum_k weight_k * y_{e_k}.

Implementations:
    torch-hf-loop  the Hugging Face MixtralSparseMoeBlock way: one-hot expert mask, torch.where per expert,
                   gather, expert MLP, index_add_ back.
    torch-sort     sort-by-expert: stable sort of the flattened [T*K] expert ids, split by bincount, one
                   contiguous matmul chain per expert, weighted, scattered back with index_add_.
    torch-dense    reference point, not MoE: one SwiGLU FFN of width K*H (the same active parameters, no router).

Before timing, the two MoE versions are checked to agree (output and every gradient) on a small case, and against
/work/shared/golden/moe-layer/moe_layer.safetensors when it exists.

Timing: fwd under torch.no_grad; fwdbwd = forward, then backward of (y*dy).sum() to x and every weight.
Median of a few repeats after one warm-up. Active FLOPs: fwd = 2*T*K*3*D*H + 2*T*D*E, fwdbwd = 3 * fwd
(torch-dense: no router term). One line per case:
    moe impl=torch-sort pass=fwd T=2048 D=512 H=1024 E=8 K=2 threads=2 tok_s=13100 gflops=83.2
Then the E sweep (E = 8, 16, 32, 64 at K=2, H fixed, so active parameters fixed), fwdbwd, 2 threads, torch-sort.

Run:  /usr/bin/python3 bench/peer/moe_layer.py [--threads 1,2] [--repeats 5] [--quick]
"""
import argparse
import os
import statistics
import time

from threads import describe, set_threads  # first: sets OMP_WAIT_POLICY before torch loads libgomp
import torch
import torch.nn.functional as F

from safetensors_io import load_file

GOLDEN = "/work/shared/golden/moe-layer/moe_layer.safetensors"


def route(x, gate, k):
    """-> probs [T,E] (all experts), weights [T,K] (renormalised top-K), experts [T,K]."""
    probs = F.softmax(x @ gate.t(), dim=-1)  # [T,E]
    top_p, top_e = probs.topk(k, dim=-1)  # [T,K]
    return probs, top_p / top_p.sum(-1, keepdim=True), top_e


def expert_mlp(x, w1, w3, w2):
    return (F.silu(x @ w1.t()) * (x @ w3.t())) @ w2.t()


def moe_hf_loop(x, gate, w1, w3, w2, k):
    """Loop over experts with a one-hot mask, as Hugging Face's MixtralSparseMoeBlock does."""
    probs, weights, experts = route(x, gate, k)
    y = torch.zeros_like(x)  # [T,D]
    mask = F.one_hot(experts, num_classes=len(w1)).permute(2, 1, 0)  # [E,K,T]
    for e in range(len(w1)):
        slot, tok = torch.where(mask[e])  # slot in [0,K), token in [0,T)
        if tok.numel() == 0:
            continue
        ye = expert_mlp(x[tok], w1[e], w3[e], w2[e]) * weights[tok, slot, None]
        y.index_add_(0, tok, ye)
    return y, probs, experts


def moe_sorted(x, gate, w1, w3, w2, k):
    """Sort the T*K (token, slot) assignments by expert, run each expert on one contiguous block."""
    probs, weights, experts = route(x, gate, k)
    flat = experts.reshape(-1)  # [T*K], entry t*K + slot
    order = torch.sort(flat, stable=True).indices  # [T*K], grouped by expert
    tok = order // k  # [T*K] token of each sorted assignment
    counts = torch.bincount(flat, minlength=len(w1)).tolist()  # [E]
    blocks = x.index_select(0, tok).split(counts)  # E blocks of [count_e, D]
    ys = torch.cat([expert_mlp(b, w1[e], w3[e], w2[e]) for e, b in enumerate(blocks)])  # [T*K, D]
    ys = ys * weights.reshape(-1)[order, None]
    return torch.zeros_like(x).index_add_(0, tok, ys), probs, experts


def dense_ffn(x, w1, w3, w2):
    return expert_mlp(x, w1, w3, w2), None, None


def make_weights(d, h, e, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g, dtype=dtype) * s[-1] ** -0.5).requires_grad_(True)  # noqa: E731
    return r(e, d), [r(h, d) for _ in range(e)], [r(h, d) for _ in range(e)], [r(d, h) for _ in range(e)]


def check_agree():
    t, d, h, e, k = 64, 16, 24, 5, 2
    gate, w1, w3, w2 = make_weights(d, h, e, torch.float64, seed=1)
    x = torch.randn(t, d, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(t, d, dtype=torch.float64)
    leaves = [x, gate] + w1 + w3 + w2
    res = []
    for fn in (moe_hf_loop, moe_sorted):
        y = fn(x, gate, w1, w3, w2, k)[0]
        res.append([y] + list(torch.autograd.grad((y * dy).sum(), leaves)))
    for a, b in zip(*res):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), (a - b).abs().max()
    if not os.path.exists(GOLDEN):
        return "hf-loop == sort (fp64); golden file absent"
    g, meta = load_file(GOLDEN)
    tt = lambda n: torch.from_numpy(g[n]).requires_grad_(True)  # noqa: E731
    e, k = int(meta["E"]), int(meta["K"])
    x, gate = tt("x"), tt("gate.weight")
    w = {n: [tt(f"experts.{j}.{n}.weight") for j in range(e)] for n in ("w1", "w3", "w2")}
    leaves = [x, gate] + w["w1"] + w["w3"] + w["w2"]
    names = ["dx", "grad.gate.weight"] + [f"grad.experts.{j}.{n}.weight" for n in ("w1", "w3", "w2") for j in range(e)]
    worst = 0.0
    for fn in (moe_hf_loop, moe_sorted):
        y = fn(x, gate, w["w1"], w["w3"], w["w2"], k)[0]
        grads = torch.autograd.grad((y * torch.from_numpy(g["dy"])).sum(), leaves)
        assert (y - torch.from_numpy(g["y"])).abs().max() < 1e-5
        for n, gr in zip(names, grads):
            ref = torch.from_numpy(g[n])
            rel = ((gr - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
            assert rel < 1e-4, (fn.__name__, n, rel)
            worst = max(worst, rel)
    return f"hf-loop == sort (fp64); both match the golden moe-layer file (worst grad rel {worst:.1e})"


def bench(impl, pass_, t, d, h, e, k, threads, repeats):
    set_threads(threads)
    torch.manual_seed(0)
    x = torch.randn(t, d, requires_grad=pass_ == "fwdbwd")
    dy = torch.randn(t, d)
    if impl == "torch-dense":
        _, w1, w3, w2 = make_weights(d, k * h, 1)
        leaves, call = [x] + w1 + w3 + w2, lambda: dense_ffn(x, w1[0], w3[0], w2[0])
        flops = 2 * t * 3 * d * k * h
    else:
        gate, w1, w3, w2 = make_weights(d, h, e)
        fn = moe_hf_loop if impl == "torch-hf-loop" else moe_sorted
        leaves, call = [x, gate] + w1 + w3 + w2, lambda: fn(x, gate, w1, w3, w2, k)
        flops = 2 * t * k * 3 * d * h + 2 * t * d * e

    def once():
        if pass_ == "fwd":
            with torch.no_grad():
                call()
        else:
            y = call()[0]
            torch.autograd.grad((y * dy).sum(), leaves)

    once()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    if pass_ == "fwdbwd":
        flops *= 3
    print(f"moe impl={impl} pass={pass_} T={t} D={d} H={h} E={e} K={k} threads={threads} "
          f"tok_s={t / sec:.0f} gflops={flops / sec / 1e9:.1f}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--quick", action="store_true", help="T=256, 1 repeat: a smoke test of the script")
    ap.add_argument("--no-dense", action="store_true", help="skip the torch-dense reference point")
    ap.add_argument("--no-sweep", action="store_true", help="skip the E sweep")
    args = ap.parse_args()
    t, reps = (256, 1) if args.quick else (args.T, args.repeats)
    d, h, k = 512, 1024, 2
    print(describe(), flush=True)
    set_threads(1)
    print("# check: " + check_agree(), flush=True)
    impls = ["torch-hf-loop", "torch-sort"] + ([] if args.no_dense else ["torch-dense"])
    threads_list = [int(s) for s in args.threads.split(",")]
    for threads in threads_list:
        for pass_ in ("fwd", "fwdbwd"):
            for impl in impls:
                bench(impl, pass_, t, d, h, 8, k, threads, reps)
    if not args.no_sweep:
        for e in (8, 16, 32, 64):
            if e == 8 and 2 in threads_list:
                continue  # measured above
            bench("torch-sort", "fwdbwd", t, d, h, e, k, 2, reps)


if __name__ == "__main__":
    main()
