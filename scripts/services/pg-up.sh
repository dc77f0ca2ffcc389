#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (Debian's package) on 127.0.0.1 for the tests of
# the postgres:// backend, with its data, socket and log in DIR (created; stop
# with pg-down.sh DIR). Prints the environment the tests read, as KEY=VALUE
# lines on stdout; everything else goes to stderr or to DIR.
#   usage: scripts/services/pg-up.sh DIR
#   env:   FETCH_CACHE_PG_PORT (15432)
# The server runs with fsync off (test data only) and trust authentication on
# loopback. As root it runs as the `postgres` user (PostgreSQL refuses root), so
# DIR's parent must be searchable by that user.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: pg-up.sh DIR}")
PORT=${FETCH_CACHE_PG_PORT:-15432}
start=$(date +%s%N)
elapsed() { local ms=$((($(date +%s%N) - start) / 1000000)); printf %d.%d $((ms / 1000)) $((ms % 1000 / 100)); }
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$BIN/initdb" ] || { echo "pg-up: PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi
}
mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then
  chown postgres:postgres "$DIR"
  as_pg "test -w '$DIR'" ||
    { echo "pg-up: user postgres cannot reach $DIR (make its parents searchable, e.g. chmod 755)" >&2; exit 1; }
fi
trap 'echo "pg-up: failed; logs in $DIR" >&2; "$(dirname "$0")/pg-down.sh" "$DIR" --keep >&2 || true' ERR

as_pg "'$BIN/initdb' -D '$DIR/data' -U ci --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >'$DIR/initdb.log' 2>&1"
opts="-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$DIR' -c fsync=off"
opts="$opts -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
as_pg "'$BIN/pg_ctl' -D '$DIR/data' -l '$DIR/pg.log' -w -t 60 -o \"$opts\" start >/dev/null"
"$BIN/psql" -h 127.0.0.1 -p "$PORT" -U ci -d postgres -qAtc 'create database fc' >/dev/null
echo "pg-up: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, ready in $(elapsed) s" >&2
echo "FETCH_CACHE_TEST_POSTGRES=postgres://ci@127.0.0.1:$PORT/fc"
