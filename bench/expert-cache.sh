#!/usr/bin/env bash
# Expert cache under a real memory limit: decode speed with the routed experts paged through `--max-memory`
# against the same GGUF file fully resident, interleaved, on a model trained on tiny Shakespeare (so the routing
# is a trained model's routing, with its real skew, not a synthetic one).
#
#   1. trains a char-level MoE (d_model 256, 4 layers, 8 experts of 512, top-2) for STEPS steps and writes it as
#      Q8_0 GGUF with `moe quantize`;
#   2. asks `moe bench --max-memory 1000` for the resident bytes (weights beside the experts, KV cache) and one
#      expert's slot, then sets budgets for a cache holding 1/2 and 1/4 of the experts;
#   3. runs ROUNDS rounds of [resident, half, quarter] in rotated order, each a fresh `moe bench` process; the
#      paged runs start inside a memory cgroup (v1 memory.limit_in_bytes, or v2 memory.max) whose limit is the
#      runtime's own footprint (a resident run's peak charge in that cgroup) plus the budget;
#   4. prints decode tok/s per run, the paged/resident ratio per round, and the cache's hit rate and bytes read.
#
# Needs root for the cgroup. systemd-run needs systemd as PID 1 and `ulimit -v` caps address space, which .NET
# reserves far beyond its use, so neither is a fallback here; without a writable cgroup the script stops.
# Usage: bench/expert-cache.sh [steps] [rounds] [tokens]       e.g. bench/expert-cache.sh 300 3 200
#        MODEL=FILE.gguf bench/expert-cache.sh 0 3 200          reuses a GGUF file instead of training one
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
steps=${1:-300}
rounds=${2:-3}
tokens=${3:-200}
data=../shared/datasets/tinyshakespeare/input.txt
[ -f "$data" ] || { echo "tiny Shakespeare not found at $data" >&2; exit 1; }
dotnet build -c Release src/MoeSharp.Cli >/dev/null
moe() { dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll "$@"; }
work=runs/expert-cache-$(date +%Y%m%d-%H%M%S)
mkdir -p "$work"
cat > "$work/config.json" <<'EOF'
{ "preset": "cache-bench", "d_model": 256, "layers": 4, "heads": 4, "d_ff": 512, "context": 64,
  "moe": { "experts": 8, "top_k": 2, "expert_hidden": 512 } }
EOF
if [ -n "${MODEL:-}" ]; then
  gguf=$MODEL
else
  moe train --data "$data" --config "$work/config.json" --steps "$steps" --eval-every "$steps" --eval-batches 5 \
    --log-every 50 --out "$work/run" | tail -1
  moe quantize --model "$work/run" --format q8_0 --out "$work/model.gguf" | tail -1
  gguf=$work/model.gguf
fi

# The memory cgroup: a child of this shell's own, so every limit above it still holds.
own=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
if [ -n "$own" ] && [ -w "/sys/fs/cgroup/memory$own" ]; then
  cg=/sys/fs/cgroup/memory$own/moe-expert-cache; limit_file=memory.limit_in_bytes
elif [ -w "/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)" ]; then
  cg=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)/moe-expert-cache; limit_file=memory.max
else
  echo "no writable memory cgroup (v1 or v2) for this shell: run as root" >&2; exit 1
fi
mkdir -p "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT

probe=$(moe bench --model "$gguf" --max-memory 1000 --tokens 8)
resident=$(echo "$probe" | sed -n 's/.*beside \([0-9,]*\) resident bytes.*/\1/p' | tr -d ,)
slot=$(echo "$probe" | sed -n 's/.* experts, \([0-9,]*\) bytes each.*/\1/p' | tr -d ,)
experts=$(echo "$probe" | sed -n 's/.* slots for \([0-9]*\) experts.*/\1/p')
weights=$(stat -c %s "$gguf")
half=$(( resident + experts / 2 * slot )); quarter=$(( resident + experts / 4 * slot ))
gb() { awk -v b="$1" 'BEGIN { printf "%.9f", b / 1e9 }'; }
echo "model: $gguf, $weights bytes; $experts experts of $slot bytes; $resident resident bytes"

# Runtime footprint: the cgroup's peak charge for a resident run with no limit. The file's pages are already in the
# page cache from the runs above, charged to the cgroup that first read them, so this is the process's own memory
# (heap, code, stacks) and the paged runs' limit, that plus --max-memory, binds what they allocate: the slots.
[ -f "$cg/memory.max_usage_in_bytes" ] && { echo -1 > "$cg/$limit_file"; echo 0 > "$cg/memory.max_usage_in_bytes"; } || echo max > "$cg/$limit_file"
sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
  dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll bench --model "$gguf" --quantize q8_0 --tokens "$tokens" >/dev/null
peak=$(cat "$cg/memory.max_usage_in_bytes" 2>/dev/null || cat "$cg/memory.peak")
# The runtime's peak varies by 2-3 MB from run to run (GC heap growth, JIT tiers); SLACK_MB covers that.
runtime=$(( peak + ${SLACK_MB:-4} * 1000000 ))
echo "runtime footprint (cgroup peak of a resident run, $peak bytes, + ${SLACK_MB:-4} MB slack): $runtime bytes"

run() { # name budget-bytes|"" -> one line
  local name=$1 budget=$2 out
  if [ -z "$budget" ]; then
    out=$(moe bench --model "$gguf" --quantize q8_0 --tokens "$tokens")
  else
    echo $(( runtime + budget )) > "$cg/$limit_file"
    [ -f "$cg/memory.max_usage_in_bytes" ] && echo 0 > "$cg/memory.max_usage_in_bytes"
    out=$(sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" \
      dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll bench --model "$gguf" --max-memory "$(gb "$budget")" --tokens "$tokens")
  fi
  local tps=$(echo "$out" | sed -n 's/^generate: *\([0-9.,]*\) tok\/s.*/\1/p' | tr -d ,)
  local total=$(echo "$out" | awk '$1 == "total" { print $4 "%", $6 }')
  local peak=""
  [ -n "$budget" ] && [ -f "$cg/memory.max_usage_in_bytes" ] && peak=$(awk '{ printf "%.1f", $1 / 1e6 }' "$cg/memory.max_usage_in_bytes")
  [ -n "$budget" ] && [ -f "$cg/memory.peak" ] && peak=$(awk '{ printf "%.1f", $1 / 1e6 }' "$cg/memory.peak")
  echo "$name $tps ${total:-} $peak"
}

echo "cgroup: $cg; limit = runtime footprint + --max-memory: half $(( runtime + half )) bytes, quarter $(( runtime + quarter )) bytes"
echo "| round | resident tok/s | half: tok/s (ratio, hit rate, MB read, cgroup peak MB) | quarter: tok/s (ratio, hit rate, MB read, cgroup peak MB) | weights / --max-memory (half, quarter) |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  declare -A line=()
  order=(resident half quarter)
  for k in $(seq 1 $(( (r - 1) % 3 ))); do order=("${order[@]:1}" "${order[0]}"); done
  for name in "${order[@]}"; do
    case $name in
      resident) line[$name]=$(run resident "") ;;
      half) line[$name]=$(run half "$half") ;;
      quarter) line[$name]=$(run quarter "$quarter") ;;
    esac
  done
  read -r _ base _ <<< "${line[resident]}"
  cell() { read -r _ t hr mb pk <<< "${line[$1]}"; awk -v t="$t" -v b="$base" -v hr="$hr" -v mb="$mb" -v pk="$pk" 'BEGIN { printf "%.1f (%.2f×, %s, %s, %s)", t, t / b, hr, mb, pk }'; }
  ratio() { awk -v w="$weights" -v b="$1" 'BEGIN { printf "%.2f", w / b }'; }
  echo "| $r | $base | $(cell half) | $(cell quarter) | $(ratio "$half"), $(ratio "$quarter") |"
  unset line
done
