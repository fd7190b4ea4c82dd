#!/usr/bin/env bash
# The quality of each weight format against fp32 (issue 10, item 6), as a markdown table: perplexity on held-out
# tokens, mean KL(p_fp32 ‖ p_format) per token, top-1 agreement per token, and where 8 greedy continuations of 64
# tokens first differ from fp32's (`moe eval --against fp32 --quantize F`, Diagnostics/FormatQuality.cs).
# Two models:
#   - tiny Shakespeare, char-level: a Mixtral-style MoE with d_model 256 (bench/quality/shakespeare-d256.json: every
#     row is whole 256-wide K-quant super-blocks), trained STEPS steps; held-out tokens are its validation split.
#   - the Mixtral-shaped random model of bench/peer/llamacpp/models.py (--small unless SMALL=0, issue 10's 791 M
#     shape); held-out tokens are pseudo-random ids (it has no text), so its perplexity only says the formats agree.
# Usage: bench/quality.sh        STEPS=600 SMALL=1 THREADS=2 MAX_TOKENS=8192 WORK=scratch-dir FORMATS="bf16 f16 ..."
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PY:-/usr/bin/python3}
steps=${STEPS:-600}; small=${SMALL:-1}; threads=${THREADS:-2}; max_tokens=${MAX_TOKENS:-8192}
formats=${FORMATS:-bf16 f16 q8_0 q6_k q4_k mxfp4}
W=${WORK:-runs/quality}
mkdir -p "$W"
data=../shared/datasets/tinyshakespeare/input.txt
[ -f "$data" ] || { echo "tiny Shakespeare not found at $data" >&2; exit 1; }
dotnet build -c Release src/MoeSharp.Cli >"$W/build.txt" 2>&1 || { cat "$W/build.txt"; exit 1; }
moe="dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll"

run=$W/shakespeare-d256-$steps
[ -f "$run/checkpoint.json" ] ||
  $moe train --data "$data" --config bench/quality/shakespeare-d256.json --steps "$steps" --eval-every "$steps" \
       --log-every 50 --threads "$threads" --out "$run" >"$W/train.txt"
mix=$W/mixtral-$([ "$small" = 1 ] && echo small || echo full)
[ -f "$mix/hf/model.safetensors" ] || "$PY" bench/peer/llamacpp/models.py --out "$mix" --formats f32 \
    $([ "$small" = 1 ] && echo --small) >"$W/model.txt"
vocab=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$mix/hf/config.json")
"$PY" -c "import sys; v, n = int(sys.argv[1]), int(sys.argv[2]); print(','.join(str(3 + (i * 7919 + 17) % (v - 3)) for i in range(n)))" \
    "$vocab" "$((max_tokens + 1))" >"$W/mixtral-ids.txt"

: >"$W/quality.txt"
for f in $formats; do
  $moe eval --model "$run" --against fp32 --quantize "$f" --max-tokens "$max_tokens" --threads "$threads" |
    sed "s|^quality |quality model=shakespeare-d256 |" | tee -a "$W/quality.txt"
  $moe eval --model "$mix/hf" --against fp32 --quantize "$f" --ids "$W/mixtral-ids.txt" --max-tokens "$max_tokens" \
       --threads "$threads" | sed "s|^quality |quality model=$(basename "$mix") |" | tee -a "$W/quality.txt"
done
echo
echo "Measured $(date +%F) with \`$0\` (STEPS=$steps SMALL=$small MAX_TOKENS=$max_tokens);" \
     "the Shakespeare model: $(grep -m1 '^run ' "$W/train.txt" 2>/dev/null | sed 's/^run [^:]*: //' || echo "$run"), $(tr '\r' '\n' <"$W/train.txt" 2>/dev/null | grep "^step $steps/$steps train" | sed 's/ lr.*//' || true)."
echo
"$PY" - "$W/quality.txt" <<'PYEOF'
import sys
print("| model | format | tokens | perplexity fp32 → format | mean KL (nats/token) | top-1 agreement | greedy: first difference, mean (min) of 64 | greedy identical |")
print("|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
    f = dict(x.split("=", 1) for x in line.split()[1:])
    fmt = f["format"] + (" (experts only)" if f["format"] == "MXFP4" else "")
    print(f"| {f['model']} | {fmt} | {f['tokens']} | {f['ppl_fp32']} → {f['ppl']} | {float(f['kl']):.2e} | "
          f"{100 * float(f['top1']):.2f}% | {f['greedy_first_diff_mean']} ({f['greedy_first_diff_min']}) | {f['greedy_identical']} |")
PYEOF
