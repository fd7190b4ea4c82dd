#!/usr/bin/env bash
# LM peer: trains the plain-torch char-level LM (bench/peer/lm.py) for a few steps with each preset (dense,
# mixtral) at 2 threads, then times greedy KV-cache generation. Prints the bench lines; when a file with
# MoeSharp's `lm impl=moesharp ...` lines is given, also prints the ratio table.
# Run from anywhere:  bench/peer/lm.sh     STEPS=60 THREADS=2 override the defaults.
# Both sides use the presets' sizes: d_model 128, 4 layers, context 64, batch 12; mixtral = 8 experts of 256, top-2.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
out=runs/peer/lm-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
dotnet build -c Release bench/MoeSharp.Bench >"$out/build.txt" 2>&1 || { cat "$out/build.txt"; exit 1; }
dotnet run -c Release --no-build --project bench/MoeSharp.Bench -- lm --threads "${THREADS:-2}" | tee "$out/moesharp.txt"
for preset in dense mixtral; do
  "$PY" bench/peer/lm.py --preset "$preset" --expert-ff 256 --data ../shared/datasets/tinyshakespeare/input.txt \
    --steps "${STEPS:-60}" --threads "${THREADS:-2}" | tee -a "$out/torch.txt"
done
echo
"$PY" bench/peer/join.py "$out/moesharp.txt" "$out/torch.txt" | tee "$out/table.md"
