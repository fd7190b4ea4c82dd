#!/usr/bin/env bash
# MoE layer side by side: MoeSharp (bench/MoeSharp.Bench moe) vs the PyTorch peers of bench/peer/moe_layer.py
# (Hugging Face loop, sort-by-expert, dense reference), T=2048 D=512 H=1024 E=8 K=2 at 1 and 2 threads plus the
# E sweep, in interleaved rounds (bench/peer/rounds.py), printed as markdown tables of medians [min, max] with the
# ratio of medians. Takes ROUNDS times a few minutes.
# Run from anywhere:  bench/peer/moe_layer.sh [moe_layer.py options]     ROUNDS=5 THREADS=1,2 MOESHARP_ARGS=--no-sweep
# Raw outputs: runs/peer/ (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
source bench/peer/common.sh
peer_setup moe "$@"
threads=${THREADS:-1,2}
# printf with no arguments would still print one empty word, which the Python peer rejects
args=""; [ $# -eq 0 ] || args=$(printf ' %q' "$@")
rounds --side moesharp "$BENCH moe --threads $threads ${MOESHARP_ARGS:-}" \
       --side torch "$PY bench/peer/moe_layer.py --threads $threads$args"
echo
{ peer_header; echo; "$PY" bench/peer/join.py "$out/summary.txt"; } | tee "$out/table.md"
