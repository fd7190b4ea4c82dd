#!/usr/bin/env bash
# LM peer: trains the plain-torch char-level LM (bench/peer/lm.py) for a few steps with each preset (dense,
# mixtral) at 2 threads, then times greedy KV-cache generation. Prints the bench lines; when a file with
# MoeSharp's `lm impl=moesharp ...` lines is given, also prints the ratio table.
# Run from anywhere:  bench/peer/lm.sh [moesharp-lm-lines.txt]     STEPS=60 THREADS=2 override the defaults.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
out=runs/peer/lm-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
for preset in dense mixtral; do
  "$PY" bench/peer/lm.py --preset "$preset" --steps "${STEPS:-60}" --threads "${THREADS:-2}" | tee -a "$out/torch.txt"
done
if [ $# -gt 0 ]; then
  echo
  "$PY" bench/peer/join.py "$1" "$out/torch.txt" | tee "$out/table.md"
fi
