#!/usr/bin/env bash
# `make bench`: release builds (x86_64, and arm64 through cargo-lambda and zig), then
# relance-bench measures every figure against dynalite and writes docs/benchmarks.md.
#   BENCH_ARM64=0 skips the arm64 build; DUE, IDLE and RUNS change the sizes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
mkdir -p .dev .bench
started=$(date +%s)

pip install --quiet --disable-pip-version-check -r requirements-bench.txt
if [[ ! -x .bench/node_modules/.bin/dynalite ]]; then
  echo "==> installing dynalite (npm)"
  npm install --prefix .bench --no-audit --no-fund --silent dynalite@4.0.0
fi

echo "==> release build (x86_64)"
cargo build --release --locked -p relance-api -p relance-scheduler -p relance-tests --bin relance-api \
  --bin relance-scheduler --bin relance-bench
arm64=()
if [[ "${BENCH_ARM64:-1}" != 0 ]]; then
  echo "==> release build (arm64, cargo lambda + zig)"
  cargo lambda build --release --arm64 --bin relance-api --bin relance-scheduler
  arm64=(--arm64-dir target/lambda)
fi

DYNALITE_PORT=5455
trap stop_all EXIT
start .dev/bench-dynalite.log .bench/node_modules/.bin/dynalite --port $DYNALITE_PORT \
  --createTableMs 0 --deleteTableMs 0 --updateTableMs 0
wait_for "http://127.0.0.1:$DYNALITE_PORT/" 60 dynalite

echo "==> measuring"
target/release/relance-bench --dynamo "http://127.0.0.1:$DYNALITE_PORT" \
  --api-bin target/release/relance-api --scheduler-bin target/release/relance-scheduler \
  --dynalite-pid "$(pgrep -f "dynalite --port $DYNALITE_PORT" | head -1)" \
  --due "${DUE:-10000}" --idle "${IDLE:-100000}" --runs "${RUNS:-20}" "${arm64[@]}" --out docs/benchmarks.md
echo "make bench took $(( $(date +%s) - started )) s"
