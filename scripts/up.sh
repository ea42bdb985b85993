#!/usr/bin/env bash
# The whole pipeline on this machine, fed by simulators of every kind. Installs what is missing (Bun from
# npm, the locked dependencies, Kafka's jars), starts Kafka and Mosquitto, then Sluice (migrations, gateway
# and sink), then the simulators. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_bun
bun install --frozen-lockfile
# Stop on exit only what this script started.
kafka_was_running=$( (bash scripts/kafka.sh status >/dev/null 2>&1 || (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null) && echo yes || true)
bash scripts/kafka.sh start
random() { head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9'; }
export MQTT_GATEWAY_PASSWORD=${MQTT_GATEWAY_PASSWORD:-$(random)} MQTT_SIMULATOR_PASSWORD=${MQTT_SIMULATOR_PASSWORD:-$(random)}
bash scripts/mosquitto.sh start

export PORT=${PORT:-8080}
# A key for this run (full access), unless you bring your own; the simulators use it too.
export API_KEYS=${API_KEYS:-sk_local_$(random)}
export API_KEY=${API_KEY:-${API_KEYS%%,*}}
export MQTT_URL=${MQTT_URL:-mqtt://127.0.0.1:${MQTT_PORT:-1884}}
export SLUICE_URL=http://127.0.0.1:$PORT
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash scripts/mosquitto.sh stop
  [ -n "$kafka_was_running" ] || bash scripts/kafka.sh stop
}
trap cleanup INT TERM EXIT

MQTT_USERNAME=sluice-gateway MQTT_PASSWORD=$MQTT_GATEWAY_PASSWORD bun run src/main.ts start &
pids+=($!)
for _ in $(seq 1 120); do curl -sf "$SLUICE_URL/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$SLUICE_URL/readyz" >/dev/null || { echo "Sluice did not become ready"; exit 1; }

# A day of history first, so that aggregates have something to show; then live traffic over HTTP and MQTT.
bun run src/main.ts simulate --kind all --transport http --rate 30 --devices 20 --duration 0 --backfill 1d \
  --invalid-ratio 0.02 >.cache/simulate-http.log 2>&1 &
pids+=($!)
MQTT_USERNAME=sluice-simulator MQTT_PASSWORD=$MQTT_SIMULATOR_PASSWORD \
  bun run src/main.ts simulate --kind sensors --transport mqtt --rate 10 --devices 10 --duration 0 \
  >.cache/simulate-mqtt.log 2>&1 &
pids+=($!)

cat <<MSG

Sluice is running, fed by simulators (logs in .cache/simulate-*.log).
  API reference   $SLUICE_URL/docs        (OpenAPI: $SLUICE_URL/openapi.json)
  Dashboard       $SLUICE_URL/dashboard#key=$API_KEY
  Metrics         $SLUICE_URL/metrics
  Health          curl -s $SLUICE_URL/readyz
  Try
    curl -s '$SLUICE_URL/v1/sensors/latest'
    curl -s '$SLUICE_URL/v1/sensors/aggregates?bucket=1h&metrics=temperature,pm25&groupBy=source'
    curl -s '$SLUICE_URL/v1/traffic/aggregates?bucket=1h'
    curl -s -H 'accept: text/csv' '$SLUICE_URL/v1/weather/aggregates?bucket=15m'
    curl -s -X POST $SLUICE_URL/v1/sensors/readings -H 'content-type: application/json' \\
      -d '{"deviceId":"my-device","ts":"'\$(date -u +%FT%TZ)'","temperature":21.5}'
Ctrl-C stops it all.
MSG
wait "${pids[0]}"
