#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the retrieval tests.
#   eval "$(bash .ci/postgres.sh start)"   initdb in a temp dir, start on 127.0.0.1, print the exports
#   bash .ci/postgres.sh stop              stop it and delete the dir (reads MOESHARP_PG_DIR)
# initdb refuses to run as root, so as root the cluster belongs to the 'postgres' user.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "error: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin)" >&2; exit 1; }
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-}" in
  start)
    dir=$(mktemp -d /tmp/moesharp-pg.XXXXXX)
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    for port in $(seq 54329 54349); do
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
           -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null 2>&1; then
        echo "export MOESHARP_PG_DIR=$dir"
        echo "export MOESHARP_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
        exit 0
      fi
    done
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    dir=${MOESHARP_PG_DIR:?MOESHARP_PG_DIR is not set}
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
