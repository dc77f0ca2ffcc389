#!/usr/bin/env bash
# Starts a throwaway S3 service for the tests of the s3:// backend: a one-node
# Ceph (1 monitor, 1 OSD on memstore, no manager) and radosgw, Debian's
# packages, all on 127.0.0.1, with config, logs and pid files in DIR (stop with
# s3-rgw-down.sh DIR). Objects live in the OSD's memory (memstore, capped at
# 8 GiB; memory is taken as objects are written, and radosgw's own garbage
# collection gives deleted objects back within a minute). Prints the environment the tests read, as KEY=VALUE lines on stdout.
#   usage: scripts/services/s3-rgw-up.sh DIR
#   env:   FETCH_CACHE_RGW_PORT (17480), FETCH_CACHE_CEPH_MON_PORT (13300, msgr v2)
#          and FETCH_CACHE_CEPH_MON_V1_PORT (16789)
# What the configuration encodes: the monitor needs both a v2 and a v1 address;
# with auth `none`, radosgw needs ms_mon_client_mode=crc (it defaults to secure,
# which `none` cannot provide, and then hangs for 300 s); mon_data_avail_* = 1
# keeps a fuller disk from stopping the monitor; radosgw-admin must not open
# radosgw's admin socket. Needs root (as CI runs) or a user who can run ceph.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: s3-rgw-up.sh DIR}")
RGW_PORT=${FETCH_CACHE_RGW_PORT:-17480}
MON_V2=${FETCH_CACHE_CEPH_MON_PORT:-13300}
MON_V1=${FETCH_CACHE_CEPH_MON_V1_PORT:-16789}
AK=ciaccess
SK=cisecretkey
start=$(date +%s%N)
elapsed() { local ms=$((($(date +%s%N) - start) / 1000000)); printf %d.%d $((ms / 1000)) $((ms % 1000 / 100)); }
for c in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph curl; do
  command -v "$c" >/dev/null ||
    { echo "s3-rgw-up: $c is missing (apt-get install --no-install-recommends ceph-mon ceph-osd radosgw curl)" >&2; exit 1; }
done
mkdir -p "$DIR"/{mon,osd,run,log,rgw}
trap 'echo "s3-rgw-up: failed; logs in $DIR/log" >&2; "$(dirname "$0")/s3-rgw-down.sh" "$DIR" --keep >&2 || true' ERR

FSID=$(cat /proc/sys/kernel/random/uuid)
cat >"$DIR/ceph.conf" <<CONF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
auth_allow_insecure_global_id_reclaim = false
mon_data_avail_warn = 1
mon_data_avail_crit = 1
run_dir = $DIR/run
admin_socket = $DIR/run/\$name.asok
log_file = $DIR/log/\$name.log
keyring = $DIR/keyring
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
[mon]
mon_data = $DIR/mon/\$cluster-\$id
[osd]
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = 8589934592
osd_memory_target = 939524096
osd_max_object_name_len = 256
osd_max_object_namespace_len = 64
[client.rgw.ci]
ms_mon_client_mode = crc
keyring = /dev/null
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_data = $DIR/rgw
rgw_enable_usage_log = false
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 30
CONF
C=(-c "$DIR/ceph.conf")
ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --clobber --addv a "[v2:127.0.0.1:$MON_V2,v1:127.0.0.1:$MON_V1]" --fsid "$FSID" "$DIR/monmap" >/dev/null
ceph-mon "${C[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" >"$DIR/log/mon-mkfs.out" 2>&1
ceph-mon "${C[@]}" -i a -f </dev/null >"$DIR/log/mon.out" 2>&1 &
echo $! >"$DIR/run/mon.pid"
ID=$(timeout 60 ceph "${C[@]}" osd create 2>>"$DIR/log/ceph-cli.out")
mkdir -p "$DIR/osd/ceph-$ID"
ceph-osd "${C[@]}" -i "$ID" --mkfs >"$DIR/log/osd-mkfs.out" 2>&1
ceph-osd "${C[@]}" -i "$ID" -f </dev/null >"$DIR/log/osd.out" 2>&1 &
echo $! >"$DIR/run/osd.pid"
for _ in $(seq 120); do
  timeout 10 ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up' && break
  sleep 0.5
done
timeout 10 ceph "${C[@]}" osd stat 2>/dev/null | grep -q '1 up' || { echo "s3-rgw-up: the OSD did not come up" >&2; false; }
radosgw "${C[@]}" -n client.rgw.ci -f </dev/null >"$DIR/log/rgw.out" 2>&1 &
echo $! >"$DIR/run/rgw.pid"
for _ in $(seq 480); do
  curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" && break
  sleep 0.25
done
curl -s -o /dev/null "http://127.0.0.1:$RGW_PORT/" || { echo "s3-rgw-up: radosgw did not answer" >&2; false; }
radosgw-admin "${C[@]}" -n client.rgw.ci --admin-socket= user create --uid=ci --display-name=ci \
  --access-key="$AK" --secret-key="$SK" >"$DIR/log/user-create.out" 2>&1
echo "s3-rgw-up: radosgw $(radosgw --version | awk '{print $3}') on 127.0.0.1:$RGW_PORT, ready in $(elapsed) s" >&2
echo "FETCH_CACHE_TEST_S3=http://127.0.0.1:$RGW_PORT"
echo "FETCH_CACHE_TEST_S3_ACCESS_KEY=$AK"
echo "FETCH_CACHE_TEST_S3_SECRET_KEY=$SK"
echo "FETCH_CACHE_TEST_S3_REGION=us-east-1"
