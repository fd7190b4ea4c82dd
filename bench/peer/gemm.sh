#!/usr/bin/env bash
# GEMM side by side: MoeSharp (bench/MoeSharp.Bench gemm) vs torch.mm (bench/peer/gemm.py), 1 and 2 threads,
# torch with OpenBLAS's detected AVX-512 kernels (impl=torch) and pinned to AVX2 (impl=torch-avx2),
# printed as a markdown table with the MoeSharp/torch ratio and MoeSharp's fraction of the FMA peak.
# Run from anywhere:  bench/peer/gemm.sh        Raw outputs are kept in runs/peer/ (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
out=runs/peer/gemm-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
dotnet build -c Release bench/MoeSharp.Bench >"$out/build.txt" 2>&1 || { cat "$out/build.txt"; exit 1; }
dotnet run -c Release --no-build --project bench/MoeSharp.Bench -- gemm | tee "$out/moesharp.txt"
"$PY" bench/peer/gemm.py "$@" | tee "$out/torch.txt"
# The same with OpenBLAS pinned to its AVX2 kernels, as this machine's environment does by default.
PEER_OPENBLAS_CORETYPE=Haswell "$PY" bench/peer/gemm.py --impl torch-avx2 "$@" | tee -a "$out/torch.txt"
echo
"$PY" bench/peer/join.py "$out/moesharp.txt" "$out/torch.txt" | tee "$out/table.md"
