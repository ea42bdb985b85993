#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it: installs Bun (from npm), the locked dependencies and
# Debian's Chromium if missing, starts PostgreSQL and Redis if they are not running, the project's Kafka broker, then type-checks, lints and runs
# `bun test` against the real Kafka, PostgreSQL, Redis and Mosquitto. Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/services.sh
ensure_bun
{ ensure_postgres && ensure_redis && ensure_command mosquitto mosquitto; } || { echo "0 passed, 1 failed"; exit 1; }
bun install --frozen-lockfile >/dev/null || { echo "bun install failed"; echo "0 passed, 1 failed"; exit 1; }
bash scripts/kafka.sh start || { echo "0 passed, 1 failed"; exit 1; }
# The dashboard is tested in Debian's Chromium (headless).
ensure_command chromium chromium || echo "without Chromium the dashboard and /docs tests fail"

passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then passed=$((passed + 1)); echo "ok: $name"; else failed=$((failed + 1)); echo "FAILED: $name"; fi
}
check "typecheck (tsc --noEmit)" bunx tsc --noEmit
check "lint and format (biome)" bunx biome check .

log=$(mktemp)
bun test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -E '^ *[0-9]+ pass$' "$log" | tail -1 | awk '{print $1}')
fail=$(grep -E '^ *[0-9]+ fail$' "$log" | tail -1 | awk '{print $1}')
passed=$((passed + ${pass:-0}))
failed=$((failed + ${fail:-0}))
# A crash or an empty run is a failure even when no test said "fail".
if [ "$status" -ne 0 ] && [ "${fail:-0}" -eq 0 ]; then failed=$((failed + 1)); fi
if [ -z "$pass" ]; then failed=$((failed + 1)); fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
