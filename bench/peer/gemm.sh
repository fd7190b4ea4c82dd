#!/usr/bin/env bash
# GEMM side by side: MoeSharp (bench/MoeSharp.Bench gemm) vs torch.mm (bench/peer/gemm.py), torch with OpenBLAS's
# detected AVX-512 kernels (impl=torch) and pinned to AVX2 (impl=torch-avx2), in interleaved rounds
# (bench/peer/rounds.py), printed as a markdown table of medians [min, max] with the ratio of medians and
# MoeSharp's fraction of the FMA peak.
# Run from anywhere:  bench/peer/gemm.sh [gemm.py options]      ROUNDS=5 THREADS=1,2 MOESHARP_ARGS=--small
# Raw outputs are kept in runs/peer/ (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
source bench/peer/common.sh
peer_setup gemm "$@"
threads=${THREADS:-1,2}
# printf with no arguments would still print one empty word, which the Python peer rejects
args=""; [ $# -eq 0 ] || args=$(printf ' %q' "$@")
rounds --side moesharp "$BENCH gemm --threads $threads ${MOESHARP_ARGS:-}" \
       --side torch "$PY bench/peer/gemm.py --threads $threads$args" \
       --side torch-avx2 "PEER_OPENBLAS_CORETYPE=Haswell $PY bench/peer/gemm.py --impl torch-avx2 --threads $threads$args"
echo
{ peer_header; echo; "$PY" bench/peer/join.py "$out/summary.txt"; } | tee "$out/table.md"
