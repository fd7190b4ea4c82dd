#!/usr/bin/env bash
# LM side by side: MoeSharp (bench/MoeSharp.Bench lm) vs the plain-torch char-level LM (bench/peer/lm.py), dense
# and mixtral presets: training tok/s (forward, backward, AdamW) and greedy KV-cache generation, in interleaved
# rounds (bench/peer/rounds.py), printed as a markdown table of medians [min, max] with the ratio of medians.
# Run from anywhere:  bench/peer/lm.sh     ROUNDS=5 STEPS=60 THREADS=2 GEN_TOKENS=200 override the defaults.
# Both sides use the presets' sizes: d_model 128, 4 layers, context 64, batch 12; mixtral = 8 experts of 256, top-2.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source bench/peer/ensure_torch.sh
source bench/peer/common.sh
peer_setup lm "$@"
threads=${THREADS:-2}
peer=""
for preset in dense mixtral; do
  peer+="$PY bench/peer/lm.py --preset $preset --expert-ff 256 --data ../shared/datasets/tinyshakespeare/input.txt"
  peer+=" --steps ${STEPS:-60} --threads $threads --gen-tokens ${GEN_TOKENS:-200} && "
done
rounds --side moesharp "$BENCH lm --threads $threads" --side torch "${peer% && }"
echo
{ peer_header; echo; "$PY" bench/peer/join.py "$out/summary.txt"; } | tee "$out/table.md"
