#!/usr/bin/env bash
# Starts a throwaway OpenStack Swift (Debian's 2.30) with its S3 layer (s3api
# and tempauth middlewares), one replica, on 127.0.0.1: a stricter second S3
# dialect for the S3 client's suite (no conditional PUT; DeleteObjects needs
# Content-MD5). Config, data, logs and pid files live in DIR (stop with
# s3-swift-down.sh DIR), which must be on a file system with user xattrs
# (ext4, xfs, tmpfs). Prints the environment the tests read, as KEY=VALUE lines.
#   usage: scripts/services/s3-swift-up.sh DIR
#   env:   FETCH_CACHE_SWIFT_PORT (18080, the S3 endpoint),
#          FETCH_CACHE_SWIFT_BACKEND_PORT (16200: object, +1 container, +2 account),
#          FETCH_CACHE_MEMCACHED_PORT (21211)
# Packages: swift-proxy swift-account swift-container swift-object memcached.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: s3-swift-up.sh DIR}")
PORT=${FETCH_CACHE_SWIFT_PORT:-18080}
BASE=${FETCH_CACHE_SWIFT_BACKEND_PORT:-16200}
MC=${FETCH_CACHE_MEMCACHED_PORT:-21211}
start=$(date +%s%N)
elapsed() { local ms=$((($(date +%s%N) - start) / 1000000)); printf %d.%d $((ms / 1000)) $((ms % 1000 / 100)); }
for c in swift-proxy-server swift-object-server swift-container-server swift-account-server swift-ring-builder memcached curl; do
  command -v "$c" >/dev/null || {
    echo "s3-swift-up: $c is missing (apt-get install --no-install-recommends swift-proxy swift-account swift-container swift-object memcached curl)" >&2
    exit 1
  }
done
mkdir -p "$DIR"/{etc,srv/d1,run,log}
trap 'echo "s3-swift-up: failed; logs in $DIR/log" >&2; "$(dirname "$0")/s3-swift-down.sh" "$DIR" --keep >&2 || true' ERR
USER_NAME=$(id -un)

printf '[swift-hash]\nswift_hash_path_suffix = ci\nswift_hash_path_prefix = ci\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' \
  >"$DIR/etc/swift.conf"
i=0
for n in object container account; do
  p=$((BASE + i))
  i=$((i + 1))
  cat >"$DIR/etc/$n-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $p
workers = 1
user = $USER_NAME
swift_dir = $DIR/etc
devices = $DIR/srv
mount_check = false
disable_fallocate = true
log_level = WARNING
[pipeline:main]
pipeline = $n-server
[app:$n-server]
use = egg:swift#$n
CONF
  (
    cd "$DIR/etc"
    swift-ring-builder "$n.builder" create 6 1 1 >/dev/null
    swift-ring-builder "$n.builder" add "r1z1-127.0.0.1:$p/d1" 100 >/dev/null
    swift-ring-builder "$n.builder" rebalance >/dev/null
  )
done
cat >"$DIR/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PORT
workers = 1
user = $USER_NAME
swift_dir = $DIR/etc
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MC
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
CONF
memcached -l 127.0.0.1 -p "$MC" -U 0 -m 64 -u "$USER_NAME" </dev/null >"$DIR/log/memcached.log" 2>&1 &
echo $! >"$DIR/run/memcached.pid"
for n in object container account proxy; do
  /usr/bin/python3 "/usr/bin/swift-$n-server" "$DIR/etc/$n-server.conf" -v </dev/null >"$DIR/log/$n.log" 2>&1 &
  echo $! >"$DIR/run/$n.pid"
done
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$PORT/healthcheck" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$PORT/healthcheck" >/dev/null || { echo "s3-swift-up: the Swift proxy did not answer" >&2; false; }
echo "s3-swift-up: Swift with s3api on 127.0.0.1:$PORT, ready in $(elapsed) s" >&2
echo "FETCH_CACHE_TEST_SWIFT=http://127.0.0.1:$PORT"
echo "FETCH_CACHE_TEST_SWIFT_ACCESS_KEY=test:tester"
echo "FETCH_CACHE_TEST_SWIFT_SECRET_KEY=testing"
echo "FETCH_CACHE_TEST_SWIFT_REGION=us-east-1"
