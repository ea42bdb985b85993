#!/usr/bin/env bash
# The whole pipeline on this machine: installs what is missing (Bun from npm, the locked dependencies,
# Kafka's jars), starts the project's Kafka broker and Sluice. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_bun
bun install --frozen-lockfile
bash scripts/kafka.sh start

export PORT=${PORT:-8080}
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash scripts/kafka.sh stop
}
trap cleanup INT TERM EXIT

bun run src/main.ts start &
pids+=($!)
for _ in $(seq 1 60); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.5; done
cat <<MSG

Sluice is running.
  API reference  http://127.0.0.1:$PORT/docs   (spec: /openapi.json)
  Readiness      curl -s http://127.0.0.1:$PORT/readyz
  Post a reading curl -s -X POST http://127.0.0.1:$PORT/v1/sensors/readings -H 'content-type: application/json' \\
                   -d '{"deviceId":"casa-1","ts":'\$(date +%s%3N)',"temperature":21.5,"humidity":48}'
Ctrl-C stops it all.
MSG
wait
