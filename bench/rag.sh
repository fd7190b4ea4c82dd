#!/usr/bin/env bash
# Hybrid retrieval on WordNet 3.0 nouns: index, train the gates and evaluate on SQLite and on PostgreSQL.
#   bench/rag.sh [SYNSETS] [QUERIES_PER_KIND]     (PostgreSQL from $MOESHARP_POSTGRES, else a throw-away cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
synsets=${1:-4000}
per_kind=${2:-300}
wordnet=../shared/datasets/wordnet
out=$(mktemp -d)
dotnet build -c Release src/MoeSharp.Cli >/dev/null
moe() { dotnet src/MoeSharp.Cli/bin/Release/net10.0/moe.dll "$@"; }
started=
if [ -z "${MOESHARP_POSTGRES:-}" ]; then eval "$(bash .ci/postgres.sh start)"; started=1; fi
trap '[ -n "$started" ] && bash .ci/postgres.sh stop; rm -rf "$out"' EXIT
for db in "$out/wordnet.sqlite" "$MOESHARP_POSTGRES"; do
  echo "## $([ "$db" = "$MOESHARP_POSTGRES" ] && echo PostgreSQL || echo SQLite)"
  moe rag index --wordnet "$wordnet" --limit "$synsets" --queries-per-kind "$per_kind" --db "$db"
  moe rag train --db "$db"
  moe rag eval --db "$db"
done
