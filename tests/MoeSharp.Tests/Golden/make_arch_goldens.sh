#!/bin/sh
# Regenerates Golden/<arch>/ for the given architectures (default: all) against llama.cpp.
#   NLC_DIR=/tmp/nlc sh make_arch_goldens.sh [qwen3_moe olmoe qwen2_moe deepseek_v2 deepseek_v3 gpt_oss]
# NLC_DIR is a scratch folder (never the repository) where node-llama-cpp's prebuilt CPU binary is installed:
#   cd $NLC_DIR && npm init -y && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --ignore-scripts node-llama-cpp@3.22.1
# llama.cpp runs with an F32 KV cache and flash attention off, the settings that reproduce exact F32 logits
# (shared/peer/llamacpp/README.md). Needs /usr/bin/python3 with numpy, node, and shared/peer/llamacpp/llama_run.mjs.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${LLAMA_RUN:-$HERE/../../../../shared/peer/llamacpp/llama_run.mjs}
PY=${PYTHON:-/usr/bin/python3}
PROMPT=1,17,42,99,5,260
: "${NLC_DIR:?set NLC_DIR to the folder holding node_modules/node-llama-cpp}"
[ $# -gt 0 ] || set -- qwen3_moe olmoe qwen2_moe deepseek_v2 deepseek_v3 gpt_oss
for arch in "$@"; do
  tmp=$(mktemp -d)
  $PY "$HERE/gen_moe_arch.py" model --arch "$arch" --out "$HERE/$arch" --gguf "$tmp/model-f32.gguf"
  (cd "$NLC_DIR" && node "$RUN" --model "$tmp/model-f32.gguf" --threads 1 --mode check --prompt-ids $PROMPT \
      --max-tokens 16 --kv F32 --fa off --logits-out "$tmp/llama.logits") | tail -n 1 > "$tmp/llama.json"
  vocab=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$HERE/$arch/config.json")
  $PY "$HERE/gen_moe_arch.py" expected --logits "$tmp/llama.logits" --ids "$tmp/llama.json" --prompt $PROMPT \
      --vocab "$vocab" --out "$HERE/$arch/expected.safetensors"
  # The GGUF llama.cpp ran is kept where ModelStore.OpenGguf has its own reading of it (a converter split or an MXFP4
  # file, gen_moe_arch.py writes gpt_oss/model-mxfp4.gguf itself), and not for the others, to keep the repository small.
  case $arch in qwen2_moe|deepseek_v2|deepseek_v3) cp "$tmp/model-f32.gguf" "$HERE/$arch/model-f32.gguf" ;; esac
  cat "$tmp/llama.json"; echo
  rm -r "$tmp"
done
