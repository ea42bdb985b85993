#!/usr/bin/env bash
# The whole pipeline on this machine, fed by simulators of every kind. Installs what is missing (Bun from
# npm, the locked dependencies, Kafka's jars; PostgreSQL and Redis from Debian's packages), starts Kafka and
# Mosquitto, the simulated APIs the connectors poll, then Sluice (migrations, gateway, sink, connectors), then
# the device simulators. Logs go to .cache/*.log; the terminal keeps one live status line. Ctrl-C stops
# everything it started.
#   scripts/up.sh [--reset]    --reset first empties the demo's database, Redis keys, Kafka topics and archive
set -euo pipefail
cd "$(dirname "$0")/.."
reset=
case "${1:-}" in
  "") ;;
  --reset) reset=yes ;;
  *) echo "usage: scripts/up.sh [--reset]" >&2; exit 2 ;;
esac
source scripts/lib.sh
source scripts/services.sh
mkdir -p .cache
ensure_bun
bun install --frozen-lockfile >.cache/install.log 2>&1 || { cat .cache/install.log; exit 1; }
ensure_postgres
ensure_redis
ensure_command curl curl || exit 1
# Stop on exit only what this script started.
kafka_was_running=$( (bash scripts/kafka.sh status >/dev/null 2>&1 || (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null) && echo yes || true)
echo "starting Kafka (log in .cache/kafka.log)..."
bash scripts/kafka.sh start >.cache/kafka.log 2>&1 || { tail -20 .cache/kafka.log; exit 1; }
random() { head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9'; }
export MQTT_GATEWAY_PASSWORD=${MQTT_GATEWAY_PASSWORD:-$(random)} MQTT_SIMULATOR_PASSWORD=${MQTT_SIMULATOR_PASSWORD:-$(random)}
if [ -n "$reset" ]; then
  bash scripts/mosquitto.sh stop
  rm -rf ".cache/mosquitto-${MQTT_PORT:-1884}" .cache/archive
  bun scripts/reset.ts
fi
bash scripts/mosquitto.sh start

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash scripts/mosquitto.sh stop
  [ -n "$kafka_was_running" ] || bash scripts/kafka.sh stop
}
trap cleanup INT TERM EXIT

# The APIs the connectors poll: the real OpenWeather and AviationStack when their keys are set, otherwise the
# project's simulated ones (same shapes, fed by the simulators) on local ports.
mkdir -p .cache
api_key=$(random)
serve() {
  SIMULATED_API_KEY=$api_key bun run src/main.ts simulate --serve "$1" --port "$2" >".cache/api-$1.log" 2>&1 &
  pids+=($!)
}
if [ -n "${OPENWEATHER_API_KEY:-}" ]; then owm_base=https://api.openweathermap.org; owm_every=10m
else serve openweather 8091; owm_base=http://127.0.0.1:8091; owm_every=1m; export OPENWEATHER_API_KEY=$api_key; fi
# AviationStack's free plan has 100 requests a month: the real API is polled three times a day, within it.
if [ -n "${AVIATIONSTACK_API_KEY:-}" ]; then avs_base=${AVIATIONSTACK_BASE_URL:-https://api.aviationstack.com}; avs_every=8h; avs_quota=100
else serve aviationstack 8092; avs_base=http://127.0.0.1:8092; avs_every=2m; avs_quota=100000; export AVIATIONSTACK_API_KEY=$api_key; fi
serve store 8093
export SHOP_TOKEN=$api_key
export CONNECTORS_FILE=${CONNECTORS_FILE:-$PWD/.cache/connectors.yaml}
[ -f "$CONNECTORS_FILE" ] && [ "$CONNECTORS_FILE" != "$PWD/.cache/connectors.yaml" ] || cat >"$CONNECTORS_FILE" <<YAML
# Written by scripts/up.sh; see deploy/connectors/connectors.example.yaml for every option.
connectors:
  - { name: owm, type: openweather, every: $owm_every, baseUrl: "$owm_base", apiKey: "\${OPENWEATHER_API_KEY}",
      maxPerMinute: 60, locations: [{ id: 2553604 }, { q: "Paris,FR" }, { id: 2538475 }, { lat: 14.69, lon: -17.44 }] }
  - { name: flights, type: aviationstack, every: $avs_every, baseUrl: "$avs_base", apiKey: "\${AVIATIONSTACK_API_KEY}",
      limit: 100, maxPages: 3, maxPerMonth: $avs_quota }
  - { name: store-api, type: http, kind: traffic, every: 1m, url: "http://127.0.0.1:8093/visitors",
      headers: { authorization: "Bearer \${SHOP_TOKEN}" }, query: { hours: 1 }, items: data,
      pagination: { type: cursor, path: next_cursor, param: cursor } }
YAML

# The archive (bronze) in a folder here; ARCHIVE_URL=s3://bucket/prefix with S3_ENDPOINT and AWS_* for S3.
export ARCHIVE_URL=${ARCHIVE_URL:-file://$PWD/.cache/archive} ARCHIVE_FLUSH_SECONDS=${ARCHIVE_FLUSH_SECONDS:-60}
export PORT=${PORT:-8080}
# A key for this run (full access), unless you bring your own; the simulators use it too.
export API_KEYS=${API_KEYS:-sk_local_$(random)}
export API_KEY=${API_KEY:-${API_KEYS%%,*}}
export MQTT_URL=${MQTT_URL:-mqtt://127.0.0.1:${MQTT_PORT:-1884}}
export SLUICE_URL=http://127.0.0.1:$PORT

echo "starting Sluice (log in .cache/sluice.log)..."
MQTT_USERNAME=sluice-gateway MQTT_PASSWORD=$MQTT_GATEWAY_PASSWORD bun run src/main.ts start >.cache/sluice.log 2>&1 &
gateway=$!
pids+=("$gateway")
for _ in $(seq 1 120); do curl -sf "$SLUICE_URL/readyz" >/dev/null && break; sleep 0.5; done
curl -sf "$SLUICE_URL/readyz" >/dev/null || { echo "Sluice did not become ready:"; tail -20 .cache/sluice.log; exit 1; }

# Devices push: sensors and door counters, a day of history first, so that aggregates have something to show,
# then live over HTTP and MQTT. Weather and flights come from the connectors polling their APIs.
bun run src/main.ts simulate --kind sensors,traffic --transport http --rate 30 --devices 20 --duration 0 --backfill 1d \
  --invalid-ratio 0.02 >.cache/simulate-http.log 2>&1 &
pids+=($!)
MQTT_USERNAME=sluice-simulator MQTT_PASSWORD=$MQTT_SIMULATOR_PASSWORD \
  bun run src/main.ts simulate --kind sensors --transport mqtt --rate 10 --devices 10 --first-device 21 --duration 0 \
  >.cache/simulate-mqtt.log 2>&1 &
pids+=($!)

auth="-H 'authorization: Bearer $API_KEY'"
cat <<MSG

Sluice is running on $SLUICE_URL, fed by simulated devices and polling the APIs of $CONNECTORS_FILE
(simulated ones unless OPENWEATHER_API_KEY / AVIATIONSTACK_API_KEY are set). Logs: .cache/*.log.

API key for this run (every /v1 request needs it):
$API_KEY
For the README's examples, paste:  export KEY=$API_KEY

  Dashboard       $SLUICE_URL/dashboard#key=$API_KEY
  API reference   $SLUICE_URL/docs   (OpenAPI: $SLUICE_URL/openapi.json)
  Metrics         $SLUICE_URL/metrics   Health: $SLUICE_URL/readyz
  Archive         $ARCHIVE_URL   (Parquet per kind and hour, a file a minute; README: Archive)

Try:
  curl -s $auth '$SLUICE_URL/v1/sensors/latest'
  curl -s $auth '$SLUICE_URL/v1/sensors/aggregates?bucket=1h&metrics=temperature,pm25&groupBy=source'
  curl -s $auth '$SLUICE_URL/v1/traffic/aggregates?bucket=1h'
  curl -s $auth -H 'accept: text/csv' '$SLUICE_URL/v1/weather/aggregates?bucket=15m'
  curl -s $auth '$SLUICE_URL/v1/connectors'
  curl -s $auth -X POST $SLUICE_URL/v1/sensors/readings -H 'content-type: application/json' \\
    -d '{"deviceId":"my-device","ts":"'\$(date -u +%FT%TZ)'","temperature":21.5}'

Ctrl-C stops it all.
MSG
bun scripts/status.ts "$SLUICE_URL" &
pids+=($!)
wait "$gateway"
