#!/usr/bin/env bash
# Expert parallelism on this machine's loopback: the routed experts of a trained char-level MoE (tiny Shakespeare,
# d_model 256, 4 layers, 8 experts of 512, top-2, context 128) on SILOS `moe silo` processes, against one process.
#
#   1. trains the model for STEPS steps (or MODEL=RUN_FOLDER reuses one), so the routing has a trained model's skew;
#   2. the planner's plan (bench `cluster --plan-out`): the routing of WINDOW tokens of the text, replicas of the hot
#      experts and the rest packed by load, with each layer's expected silo imbalance under round robin and the plan;
#   3. ROUNDS interleaved rounds (bench/peer/rounds.py) of four sides, each a fresh set of processes:
#        local        the experts in the bench process (through the same runner seam, timed the same way)
#        rr-fp32      SILOS silos, round-robin plan, rows in fp32
#        rr-bf16      the same, rows in bf16
#        plan-fp32    SILOS silos, the planner's plan, fp32
#      each printing prefill and decode tok/s, the mean time of one MoE layer's expert call (prefill and decode), bytes
#      sent + received per token per MoE layer, and the largest share of the decode's routing one expert took.
# The silos of a side start with it and stop (SIGTERM) after it, so their CPU counts as the side's own in rounds.py.
# Usage: bench/cluster.sh [steps] [silos]          e.g. ROUNDS=3 bench/cluster.sh 300 2
#        MODEL=runs/cluster-…/run ROUNDS=1 bench/cluster.sh 0 2        reuses a trained run
#        bench/cluster.sh side CONFIG IMPL           one side (what rounds.py runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
moe() { dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll "$@"; }
bench() { dotnet bench/MoeSharp.Bench/bin/Release/net10.0/MoeSharp.Bench.dll "$@"; }
data=../shared/datasets/tinyshakespeare/input.txt
threads=${THREADS:-1}

if [ "${1:-}" = side ]; then
  config=$2; impl=$3; run=$4
  pids=()
  silos=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['silos']))" "$config")
  logs=$(mktemp -d)
  # SIGTERM, not SIGINT: a non-interactive shell starts background jobs with SIGINT ignored.
  trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; rm -rf "$logs"' EXIT
  for ((i = 0; i < silos; i++)); do
    # dotnet itself, not the moe function: $! must be the silo's pid for the signal to reach it
    dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll silo --cluster "$config" --index "$i" 2>"$logs/silo$i.txt" &
    pids+=($!)
  done
  for ((i = 0; i < silos; i++)); do  # ready when it printed its "silo I of N at ..." line
    for _ in $(seq 600); do grep -q "^silo $i of" "$logs/silo$i.txt" && break; sleep 0.1; done
    grep -q "^silo $i of" "$logs/silo$i.txt" || { echo "silo $i did not start:" >&2; cat "$logs/silo$i.txt" >&2; exit 1; }
  done
  bench cluster --model "$run" --text "$data" --impl "$impl" --cluster "$config" --threads "$threads" --pp "${PP:-64}" --decode-tokens "${DECODE:-64}"
  exit 0
fi

steps=${1:-300}
silos=${2:-2}
[ -f "$data" ] || { echo "tiny Shakespeare not found at $data" >&2; exit 1; }
source bench/peer/common.sh
peer_setup cluster "$@"
dotnet build -c Release src/MoeSharp.Cli >"$out/build-cli.txt" 2>&1 || { cat "$out/build-cli.txt"; exit 1; }
if [ -n "${MODEL:-}" ]; then
  run=$(cd "$MODEL" && pwd)
else
  cat > "$out/config.json" <<'EOF'
{ "preset": "cluster-bench", "d_model": 256, "layers": 4, "heads": 4, "d_ff": 512, "context": 128,
  "moe": { "experts": 8, "top_k": 2, "expert_hidden": 512 } }
EOF
  moe train --data "$data" --config "$out/config.json" --steps "$steps" --eval-every "$steps" --eval-batches 5 \
    --log-every 50 --out "$out/run" | tail -1
  run=$root/$out/run
fi
fingerprint=$(moe silo --fingerprint "$run")
bench cluster --model "$run" --text "$data" --plan-out "$out/plan.json" --silos "$silos" --window "${WINDOW:-8192}" | tee "$out/plan.txt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
write_config() {  # NAME TRANSPORT PLAN_JSON_OR_EMPTY
  local entries=() i
  for ((i = 0; i < silos; i++)); do entries+=("{ \"host\": \"127.0.0.1\", \"port\": $(free_port), \"gateway_port\": $(free_port) }"); done
  local plan=""; [ -n "$3" ] && plan=", \"plan\": \"$3\""
  printf '{ "silos": [ %s ], "checkpoint": "%s", "fingerprint": "%s", "transport": "%s", "connect_timeout_ms": 60000, "call_timeout_ms": 60000 %s }\n' \
    "$(IFS=,; echo "${entries[*]}")" "$run" "$fingerprint" "$2" "$plan" > "$out/$1.json"
}
write_config rr-fp32 fp32 ""
write_config rr-bf16 bf16 ""
write_config plan-fp32 fp32 "$root/$out/plan.json"

side() { echo "bench/cluster.sh side $root/$out/$1.json $1 $run"; }
rounds --side local "$BENCH cluster --model $run --text $data --impl local --threads $threads --pp ${PP:-64} --decode-tokens ${DECODE:-64}" \
       --side rr-fp32 "$(side rr-fp32)" --side rr-bf16 "$(side rr-bf16)" --side plan-fp32 "$(side plan-fp32)"
echo
# One markdown row per side from rounds.py's medians [min, max]; ratios are medians over the local side's.
table() {
  python3 - "$out/summary.txt" <<'PY'
import sys
rows, layer = {}, {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 2: continue
    f = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    if parts[0] == "cluster": rows[f["impl"]] = f
    elif parts[0] == "cluster-layer": layer[(f["impl"], f["phase"])] = f
def cell(f, k): return f"{float(f[k]):.4g} [{float(f[k + '_min']):.4g}, {float(f[k + '_max']):.4g}]"
base = rows.get("local")
print("| side | transport | prefill tok/s | decode tok/s | vs local (prefill, decode) | MoE layer ms, prefill | MoE layer ms, decode | bytes/token/layer |")
print("|---|---|---|---|---|---|---|---|")
for impl, f in rows.items():
    ratio = "" if base is None else f"{float(f['pp_tok_s']) / float(base['pp_tok_s']):.2f}×, {float(f['decode_tok_s']) / float(base['decode_tok_s']):.2f}×"
    print(f"| {impl} | {f['transport']} | {cell(f, 'pp_tok_s')} | {cell(f, 'decode_tok_s')} | {ratio} | "
          f"{cell(layer[(impl, 'prefill')], 'ms')} | {cell(layer[(impl, 'decode')], 'ms')} | {f['bytes_tok_layer']} |")
PY
}
{ peer_header; echo; table; echo; sed 's/^/    /' "$out/plan.txt"; } | tee "$out/table.md"
