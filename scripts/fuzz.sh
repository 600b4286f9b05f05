#!/usr/bin/env bash
# `make fuzz` (and, bounded, `make test`): schemathesis generates requests from
# infra/openapi.yaml, valid and invalid, against the API on the local stack.
# Every answer must be a documented 2xx or 4xx, never a 5xx, and the table must keep its
# invariants afterwards.
#   scripts/fuzz.sh [EXAMPLES_PER_OPERATION]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
mkdir -p .dev

EXAMPLES=${1:-300}
MOTO_PORT=5255
API_PORT=9200
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export TABLE_NAME=fuzz DUE_SHARDS=4 RELANCE_DEV_AUTH=1
trap stop_all EXIT

start_moto .dev/fuzz-moto.log $MOTO_PORT
cargo build --quiet -p relance-tests --bins
target/debug/local-stack "$AWS_ENDPOINT_URL" "$TABLE_NAME" fuzz-events >/dev/null

# The router served directly: the fuzzer reaches the handlers with any bytes it makes
# up, as API Gateway delivers them (the Lambda emulator rejects some bodies itself).
start .dev/fuzz-api.log target/debug/api-server 127.0.0.1:$API_PORT
API=http://127.0.0.1:$API_PORT
wait_for "$API/settings" 60 "the API (see .dev/fuzz-api.log)"

echo "==> schemathesis: $EXAMPLES examples per operation"
st run infra/openapi.yaml --url "$API" \
  --header "X-Tenant-Id: fuzz" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "$EXAMPLES" --seed 20261204 --workers 1 \
  --generation-database none --no-color --warnings off

echo "==> stored data keeps its invariants"
target/debug/check-consistency "$AWS_ENDPOINT_URL" "$TABLE_NAME"
