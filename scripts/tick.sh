#!/usr/bin/env bash
# `make tick AT=<RFC 3339 time>`: one scheduler run at that time, through the running
# `make dev`; prints the run's summary.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
at=${1:-}
if [[ -z "$at" || "$at" == now ]]; then at=$(date -u +%Y-%m-%dT%H:%M:%SZ); fi
if ! date -d "$at" >/dev/null 2>&1; then
  echo "error: AT must be an RFC 3339 time such as 2026-12-09T09:00:00Z (got '$at')" >&2
  exit 2
fi
mkdir -p .dev
event=$(mktemp .dev/tick-XXXXXX.json)
trap 'rm -f "$event"' EXIT
scheduled_event "$at" "$event"
echo "scheduler run at $at:"
cargo lambda invoke relance-scheduler --invoke-address 127.0.0.1 --invoke-port "${LAMBDA_PORT:-9000}" --data-file "$event"
echo
