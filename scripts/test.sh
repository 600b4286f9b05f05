#!/usr/bin/env bash
# `make test`: everything CI checks. Starts its own stand-in on ports that do not collide
# with a running `make dev`, and stops it on the way out.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
mkdir -p .dev

MOTO_PORT=5155
export RELANCE_TEST_ENDPOINT=http://127.0.0.1:$MOTO_PORT
trap stop_all EXIT

echo "==> format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cfn-lint infra/template.yaml
SAM_CLI_TELEMETRY=0 sam validate --lint --template-file infra/template.yaml

echo "==> moto on $RELANCE_TEST_ENDPOINT"
start_moto .dev/test-moto.log $MOTO_PORT

echo "==> unit and integration tests"
# The functions' binaries first: the cargo-lambda test starts them and should not wait
# for their build.
cargo build --workspace --bins --locked
cargo test --workspace --locked

echo "==> fuzzing the API from its OpenAPI document (bounded; make fuzz runs longer)"
stop_all
scripts/fuzz.sh 20
