#!/usr/bin/env bash
# Stops what s3-swift-up.sh DIR started (by the pids it recorded; SIGKILL after
# 5 s) and removes DIR (with --keep, leaves DIR and its logs in place).
#   usage: scripts/services/s3-swift-down.sh DIR [--keep]
set -u
DIR=$(realpath -m "${1:?usage: s3-swift-down.sh DIR [--keep]}")
names="proxy object container account memcached"
for n in $names; do
  f="$DIR/run/$n.pid"
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
done
for n in $names; do
  f="$DIR/run/$n.pid"
  [ -f "$f" ] || continue
  p=$(cat "$f")
  for _ in $(seq 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$p" 2>/dev/null
  rm -f "$f"
done
[ "${2:-}" = --keep ] || rm -rf "$DIR"
