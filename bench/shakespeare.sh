#!/usr/bin/env bash
# Tiny Shakespeare, char-level: each preset trained with the same tokens and steps (batch 12 x context 64,
# first 90% train / last 10% validation), one after the other on the same machine. Prints a markdown table of
# the final validation loss (50 fixed validation batches), wall time and throughput.
# Usage: bench/shakespeare.sh [steps] [presets...]      e.g. bench/shakespeare.sh 2000 dense mixtral
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-2000}
shift || true
presets=${*:-dense mixtral}
data=../shared/datasets/tinyshakespeare/input.txt
[ -f "$data" ] || { echo "tiny Shakespeare not found at $data" >&2; exit 1; }
dotnet build -c Release src/MoeSharp.Cli >/dev/null
out=runs/shakespeare-$(date +%Y%m%d-%H%M%S)
echo "| preset | parameters (active) | steps | val loss | wall time | tok/s |"
echo "|---|---|---|---|---|---|"
for preset in $presets; do
  log=$(dotnet run -c Release --no-build --project src/MoeSharp.Cli -- train --data "$data" --preset "$preset" \
        --steps "$steps" --eval-every "$steps" --eval-batches 50 --log-every 50 --out "$out/$preset")
  params=$(echo "$log" | sed -n 's/.*preset [^,]*, \([0-9,]*\) parameters (\([0-9,]*\) active).*/\1 (\2)/p')
  final=$(echo "$log" | grep "^step $steps/$steps train")
  val=$(echo "$final" | sed -n 's/.* val \([0-9.]*\) .*/\1/p')
  secs=$(echo "$final" | sed -n 's/.* \([0-9]*\)s\( load.*\)\?$/\1/p')
  tps=$(echo "$final" | sed -n 's/.* \([0-9]*\) tok\/s.*/\1/p')
  echo "| $preset | $params | $steps | $val | ${secs}s | $tps |"
done
