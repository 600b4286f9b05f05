# Shared by the scripts: the local AWS stand-in's environment and process helpers.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$PATH"

# Dummy credentials and a fixed region: the SDK then needs no network to configure itself.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=eu-west-3
unset AWS_PROFILE AWS_SESSION_TOKEN

PIDS=()

# Starts a command in its own process group, so that stopping it stops its children too.
start() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 &
  PIDS+=($!)
}

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

# start_moto LOG PORT: moto (DynamoDB, SNS, SSM) on 127.0.0.1:PORT, one request at a time
# so that conditional writes are atomic as on DynamoDB (see scripts/moto_server.py).
start_moto() {
  start "$1" python "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$2"
  wait_for "http://127.0.0.1:$2/moto-api/" 60 moto
}

# wait_for URL SECONDS WHAT: polls until URL answers.
wait_for() {
  local url=$1 seconds=$2 what=$3 i
  for ((i = 0; i < seconds * 2; i++)); do
    if curl -s -o /dev/null "$url"; then return 0; fi
    sleep 0.5
  done
  echo "error: $what did not start (waited ${seconds}s for $url)" >&2
  return 1
}

# A scheduled EventBridge event at time $1 (RFC 3339), written to $2.
scheduled_event() {
  sed "s/\"time\": \"[^\"]*\"/\"time\": \"$1\"/" "$ROOT/events/scheduled.json" >"$2"
}
