"""GEMM peer: fp32 torch.mm throughput at 1 and 2 threads, in the same layouts as the MoeSharp GEMM bench.

torch.set_num_threads alone does not limit Debian torch's OpenBLAS pool; threads.set_threads does both.

Layouts (all operands row-major, flops = 2*m*n*k):
    NN  C[m,n] = A[m,k] . B[k,n]                   torch.mm(a, b)
    NT  C[m,n] = A[m,k] . B^T, B stored [n,k]      torch.mm(a, b.t())
    TN  C[m,n] = A^T . B,     A stored [k,m]       torch.mm(a.t(), b)

Each case: warm-up, then `--repeats` timed samples (each sample runs enough calls to last >= --min-time
seconds), and the median is reported, one line per case:
    gemm impl={args.impl} layout=NN m=1024 n=1024 k=1024 threads=1 gflops=74.1

OpenBLAS detects the CPU (AVX-512 kernels here) unless PEER_OPENBLAS_CORETYPE pins a core, see threads.py.

Run:  /usr/bin/python3 bench/peer/gemm.py [--threads 1,2] [--repeats 5] [--min-time 0.2]
      PEER_OPENBLAS_CORETYPE=Haswell /usr/bin/python3 bench/peer/gemm.py --impl torch-avx2
"""
import argparse
import statistics
import time

from threads import describe, set_threads  # first: sets OMP_WAIT_POLICY before torch loads libgomp
import torch


CASES = [  # (layout, m, n, k)
    ("NN", 512, 512, 512),
    ("NN", 1024, 1024, 1024),
    ("NN", 2048, 2048, 2048),
    ("NN", 2048, 1024, 512),
    ("NT", 2048, 512, 1024),
    ("TN", 512, 1024, 2048),
]


def operands(layout, m, n, k):
    g = torch.Generator().manual_seed(0)
    a_shape = (k, m) if layout[0] == "T" else (m, k)
    b_shape = (n, k) if layout[1] == "T" else (k, n)
    a = torch.randn(a_shape, generator=g, dtype=torch.float32)
    b = torch.randn(b_shape, generator=g, dtype=torch.float32)
    a_op = a.t() if layout[0] == "T" else a
    b_op = b.t() if layout[1] == "T" else b
    return a_op, b_op, torch.empty(m, n, dtype=torch.float32)


def time_case(layout, m, n, k, repeats, min_time):
    a, b, c = operands(layout, m, n, k)
    torch.mm(a, b, out=c)
    # Warm-up and calibrate the number of calls per sample.
    calls, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=c)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            break
        calls *= 2
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b, out=c)
        samples.append((time.perf_counter() - t0) / calls)
    return 2.0 * m * n * k / statistics.median(samples) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per timed sample")
    ap.add_argument("--impl", default="torch", help="name printed as impl= (e.g. torch-avx2 for a pinned core)")
    args = ap.parse_args()
    print(describe(), flush=True)
    for t in [int(x) for x in args.threads.split(",")]:
        set_threads(t)
        for layout, m, n, k in CASES:
            gf = time_case(layout, m, n, k, args.repeats, args.min_time)
            print(f"gemm impl={args.impl} layout={layout} m={m} n={n} k={k} threads={t} gflops={gf:.1f}", flush=True)


if __name__ == "__main__":
    main()
