#!/usr/bin/env bash
# Stops the PostgreSQL that pg-up.sh DIR started and removes DIR (with
# --keep, leaves DIR and its logs in place).
#   usage: scripts/services/pg-down.sh DIR [--keep]
set -u
DIR=$(realpath -m "${1:?usage: pg-down.sh DIR [--keep]}")
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -f "$DIR/data/postmaster.pid" ]; then
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "'$BIN/pg_ctl' -D '$DIR/data' -m immediate -w -t 30 stop" >/dev/null 2>&1
  else
    "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi
  # pg_ctl failed (or timed out): the postmaster's pid is the first line of postmaster.pid.
  if [ -f "$DIR/data/postmaster.pid" ]; then
    pid=$(head -1 "$DIR/data/postmaster.pid")
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  fi
fi
[ "${2:-}" = --keep ] || rm -rf "$DIR"
