#!/usr/bin/env bash
# `make dev`: the whole service on this machine, in the foreground; Ctrl-C stops it all.
#   moto (DynamoDB, SNS, SSM) on 127.0.0.1:5055, the marketplace stub on 127.0.0.1:5056,
#   both functions under `cargo lambda watch` on 127.0.0.1:9000, and a scheduler run
#   every minute at the current time.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
mkdir -p .dev

MOTO_PORT=5055
STUB_ADDR=127.0.0.1:5056
LAMBDA_PORT=9000
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export TABLE_NAME=relances DUE_SHARDS=4
export RELANCE_DEV_AUTH=1
# As deployed, the scheduler reads the connector's token from an SSM SecureString
# parameter; the stub expects the same value.
export MARKETPLACE_API_URL=http://$STUB_ADDR
export MARKETPLACE_API_TOKEN_PARAMETER=/relances/marketplace-api-token
STUB_TOKEN=dev-token
export RUST_LOG=${RUST_LOG:-info}

trap 'echo; echo "stopping..."; stop_all' EXIT
trap 'exit 130' INT TERM

for port in $MOTO_PORT ${STUB_ADDR##*:} $LAMBDA_PORT; do
  if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
    echo "error: port $port is already in use (another make dev?)" >&2
    exit 1
  fi
done

echo "==> moto on $AWS_ENDPOINT_URL"
start_moto .dev/moto.log $MOTO_PORT

echo "==> building the local tools"
cargo build --quiet -p relance-tests --bins
EVENTS_TOPIC_ARN=$(target/debug/local-stack "$AWS_ENDPOINT_URL" "$TABLE_NAME" relance-events \
  "$MARKETPLACE_API_TOKEN_PARAMETER" "$STUB_TOKEN")
export EVENTS_TOPIC_ARN
echo "    table $TABLE_NAME, topic $EVENTS_TOPIC_ARN and parameter $MARKETPLACE_API_TOKEN_PARAMETER ready"

echo "==> marketplace stub on http://$STUB_ADDR"
MARKETPLACE_API_TOKEN=$STUB_TOKEN start .dev/marketplace.log target/debug/marketplace-stub "$STUB_ADDR"

echo "==> cargo lambda watch on 127.0.0.1:$LAMBDA_PORT (the first build takes a few minutes)"
start .dev/lambda.log cargo lambda watch -A 127.0.0.1 -P $LAMBDA_PORT
API=http://127.0.0.1:$LAMBDA_PORT/lambda-url/relance-api
wait_for "$API/settings" 900 "the API under cargo lambda watch (see .dev/lambda.log)"
# The first request builds and starts the scheduler too, so later ticks answer at once.
scripts/tick.sh "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >.dev/tick.log 2>&1 || true

start .dev/tick.log bash -c 'while sleep 60; do scripts/tick.sh "$(date -u +%Y-%m-%dT%H:%M:%SZ)"; done'

cat <<MSG

relances is running.
  API:               $API
  marketplace stub:  http://$STUB_ADDR/messages
  SMS sent (moto):   $AWS_ENDPOINT_URL/moto-api/data.json  (sns.SMS)
  scheduler:         every minute; run one at any time with  make tick AT=2026-12-09T09:00:00Z
  logs:              .dev/*.log

Try:
  curl -s -X POST $API/responses -H 'X-Tenant-Id: acme' -H 'Content-Type: application/json' \\
       -d '{"title": "Rappel", "body": "Bonjour {{customer_name}}, nous attendons votre retour."}'

Press Ctrl-C to stop everything.
MSG
wait
