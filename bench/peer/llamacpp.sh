#!/usr/bin/env bash
# MoeSharp against llama.cpp on the same random Mixtral-shaped weights (issue 10's shape; SMALL=1: a tiny one for
# a quick check): load, prompt (PP tokens) and decode (DECODE tokens) speed at 1 and 2 threads, in interleaved
# rounds (bench/peer/rounds.py), with the machine's read bandwidth as a side of its own, after checking that both
# engines give the same greedy continuation of the F32 model.
#   MoeSharp: MoeSharp.Bench `infer` (ModelStore.Open + Generator.Stream, as `moe generate`) on the HF folder and
#             on the GGUF files, computing with the stored weights in place (ModelLoadOptions.InPlace).
#   Formats (FORMATS): F32, F16, BF16 and Q8_0 written by llamacpp/models.py; Q6_K and Q4_K written from the HF
#             folder by `moe quantize` (llama.cpp's own quantizer is a C tool the npm package does not ship), so both
#             engines time the same bytes in every format.
#   llama.cpp: node-llama-cpp 3.22.1's prebuilt CPU library, installed from npm into a scratch folder (never into
#             the repository), driven by llamacpp/driver.c with a persistent threadpool.
# Run from anywhere:  bench/peer/llamacpp.sh     ROUNDS=5 SMALL=0 THREADS="1 2" PP=512 DECODE=128 WORK=scratch-dir
#                                               FORMATS="f32 f16 bf16 q8_0 q6_k q4_k"
# Needs node/npm, gcc, git and python3 with numpy. The full model takes about 9 GB of disk in WORK.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
PY=${PY:-/usr/bin/python3}
source bench/peer/common.sh
peer_setup llamacpp "$@"
W=${WORK:-$(mktemp -d)}
mkdir -p "$W"
here=bench/peer/llamacpp
small=${SMALL:-0}; threads=${THREADS:-1 2}; pp=${PP:-512}; decode=${DECODE:-128}
formats=${FORMATS:-f32 f16 bf16 q8_0 q6_k q4_k}
echo "# scratch folder: $W"

[ -f "$W/model/model-q8_0.gguf" ] && [ -f "$W/model/model-bf16.gguf" ] ||
  "$PY" $here/models.py --out "$W/model" --formats f32,f16,bf16,q8_0 $([ "$small" = 1 ] && echo --small) | tee "$W/model.txt"
dotnet build -c Release src/MoeSharp.Cli >"$out/build-cli.txt" 2>&1 || { cat "$out/build-cli.txt"; exit 1; }
for f in q6_k q4_k; do
  [ -f "$W/model/model-$f.gguf" ] ||
    dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll quantize --model "$W/model/hf" --format $f --out "$W/model/model-$f.gguf"
done
if [ ! -d "$W/node_modules/node-llama-cpp" ]; then
  (cd "$W" && npm init -y >/dev/null && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
     npm install --ignore-scripts --no-audit --no-fund node-llama-cpp@3.22.1 >"$W/npm.txt" 2>&1) ||
    { cat "$W/npm.txt"; exit 1; }
fi
# headers of the exact llama.cpp source the prebuilt library was built from, shipped inside the package
[ -d "$W/llama.cpp-src" ] || git -c advice.detachedHead=false clone -q "$W/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$W/llama.cpp-src"
B=$W/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
gcc -O2 -o "$W/driver" $here/driver.c -I"$W/llama.cpp-src/include" -I"$W/llama.cpp-src/ggml/include" \
    -L"$B" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so -Wl,-rpath,"$B"
gcc -O3 -march=native -pthread -o "$W/membw" $here/membw.c

vocab=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$W/model/hf/config.json")
# the same deterministic prompt for both engines
"$PY" -c "import sys; v, n = int(sys.argv[1]), int(sys.argv[2]); print(','.join(str(3 + (i * 7919 + 17) % (v - 3)) for i in range(n)))" \
    "$vocab" "$pp" > "$out/pp_ids.txt"
dec=1,17,42,99,5

echo "# equality: greedy 16 tokens of the F32 model from $dec"
{ "$W/driver" "$B" "$W/model/model-f32.gguf" f32 2 check $dec 16
  $BENCH infer --model "$W/model/hf" --weights hf-f32 --threads 2 --check $dec --max-tokens 16
  $BENCH infer --model "$W/model/model-f32.gguf" --weights gguf-f32 --threads 2 --check $dec --max-tokens 16
} | tee "$out/equality.txt"
if [ "$(cut -d' ' -f4 "$out/equality.txt" | sort -u | wc -l)" != 1 ]; then
  echo "the engines' greedy continuations differ (see $out/equality.txt)" >&2; exit 1
fi
echo "# equal"

sides=()
for t in $threads; do
  sides+=(--side "membw-t$t" "$W/membw $t")
  for f in $formats; do
    sides+=(--side "llama.cpp-$f-t$t" "'$W/driver' '$B' '$W/model/model-$f.gguf' $f $t time $out/pp_ids.txt $dec $decode")
    sides+=(--side "moesharp-gguf-$f-t$t" "$BENCH infer --model '$W/model/model-$f.gguf' --weights gguf-$f --threads $t --pp-ids $out/pp_ids.txt --decode-ids $dec --decode-tokens $decode")
  done
  sides+=(--side "moesharp-hf-t$t" "$BENCH infer --model '$W/model/hf' --weights hf-f32 --threads $t --pp-ids $out/pp_ids.txt --decode-ids $dec --decode-tokens $decode")
done
rounds "${sides[@]}"
echo
{ peer_header
  echo "Model ($([ "$small" = 1 ] && echo "SMALL=1" || echo "issue 10's shape")): $(sed 's/^# model: //' "$W/model.txt");" \
       "greedy continuation of the F32 model, equal in both engines: $(cut -d' ' -f4 "$out/equality.txt" | head -1)."
  echo
  "$PY" - "$out/summary.txt" <<'PYEOF'
import sys
bw, rows = {}, []
for line in open(sys.argv[1]):
    p = line.split()
    if not p:
        continue
    f = dict(x.split("=", 1) for x in p[1:])
    if p[0] == "membw":
        bw[f["threads"]] = f"{f['read_gbs']} [{f['read_gbs_min']}, {f['read_gbs_max']}]"
    elif p[0] == "llm":
        rows.append(f)
print("| engine | weights | threads | decode tok/s | prompt tok/s | load s | read GB/s (same rounds) |")
print("|---|---|---|---|---|---|---|")
m = lambda f, k: f"{f[k]} [{f[k + '_min']}, {f[k + '_max']}]"
for f in sorted(rows, key=lambda f: (f["threads"], f["weights"].split("-")[-1], f["impl"])):
    print(f"| {f['impl']} | {f['weights']} | {f['threads']} | {m(f, 'decode_tok_s')} | {m(f, 'pp_tok_s')} | "
          f"{m(f, 'load_s')} | {bw.get(f['threads'], '–')} |")
PYEOF
} | tee "$out/table.md"
