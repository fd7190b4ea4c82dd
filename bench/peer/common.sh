# Sourced by the bench/peer/*.sh scripts after `cd "$root"`: the knobs of the measurement method (bench/peer/rounds.py)
# and the built MoeSharp bench. Usage inside a script:  peer_setup NAME "$@"; then rounds ... ; peer_report
ROUNDS=${ROUNDS:-5}; export ROUNDS
BENCH_DLL=bench/MoeSharp.Bench/bin/Release/net10.0/MoeSharp.Bench.dll

peer_setup() {  # NAME [args...]: makes $out, builds the MoeSharp bench, remembers the command for the report
  out=runs/peer/$1-$(date +%Y%m%d-%H%M%S)
  shift
  peer_command="$0${*:+ $*}"
  mkdir -p "$out"
  dotnet build -c Release bench/MoeSharp.Bench >"$out/build.txt" 2>&1 || { cat "$out/build.txt"; exit 1; }
  BENCH="dotnet $BENCH_DLL"
}

rounds() {  # --side NAME 'command' ...: interleaved rounds; aggregated bench lines to $out/summary.txt
  "${PY:-python3}" bench/peer/rounds.py --out "$out" "$@"
}

peer_header() {  # the line that heads every table in the README: date, command, method
  echo "Measured $(date +%F) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')):" \
       "\`ROUNDS=$ROUNDS $peer_command\`; medians of $ROUNDS interleaved rounds [min, max], rounds with more than" \
       "${FOREIGN_MAX:-0.10} cores of foreign CPU rejected and repeated (runs.jsonl in $out)."
}
