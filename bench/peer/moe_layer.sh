#!/usr/bin/env bash
# MoE layer side by side: MoeSharp (bench/MoeSharp.Bench moe) vs the PyTorch peers of bench/peer/moe_layer.py
# (Hugging Face loop, sort-by-expert, dense reference), T=2048 D=512 H=1024 E=8 K=2 at 1 and 2 threads plus the
# E sweep, printed as markdown ratio tables. Takes a few minutes.
# Run from anywhere:  bench/peer/moe_layer.sh [moe_layer.py options]     Raw outputs: runs/peer/ (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
out=runs/peer/moe-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
dotnet build -c Release bench/MoeSharp.Bench >"$out/build.txt" 2>&1 || { cat "$out/build.txt"; exit 1; }
dotnet run -c Release --no-build --project bench/MoeSharp.Bench -- moe | tee "$out/moesharp.txt"
"$PY" bench/peer/moe_layer.py "$@" | tee "$out/torch.txt"
echo
"$PY" bench/peer/join.py "$out/moesharp.txt" "$out/torch.txt" | tee "$out/table.md"
