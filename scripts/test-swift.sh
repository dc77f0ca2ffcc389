#!/usr/bin/env bash
# Runs the S3 test files (the client's suite and the pack store's) against
# OpenStack Swift's s3api, a stricter S3 dialect than radosgw (Content-MD5 on
# DeleteObjects, no conditional PUT): starts Swift in DIR, runs them, stops it.
# CI runs the same files against radosgw; Swift is this separate run.
#   usage: scripts/test-swift.sh [DIR]   (npm run test:swift)
#   env:   the ports of scripts/services/s3-swift-up.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath -m "${1:-${TMPDIR:-/tmp}/fetch-cache-swift-$$}")
trap 'scripts/services/s3-swift-down.sh "$DIR" >/dev/null 2>&1 || true' EXIT
lines=$(scripts/services/s3-swift-up.sh "$DIR")
while IFS= read -r line; do
  [[ $line == FETCH_CACHE_TEST_SWIFT*=* ]] && export "${line?}"
done <<<"$lines"
[[ -n ${FETCH_CACHE_TEST_SWIFT:-} ]] || { echo "test-swift: s3-swift-up.sh printed no FETCH_CACHE_TEST_SWIFT" >&2; exit 1; }
npx vitest run test/storage/s3-swift.test.ts test/blob/s3-packs-swift.test.ts
