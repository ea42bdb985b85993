#!/usr/bin/env bash
# Runs Mosquitto with the project's loss-free config (deploy/mosquitto/mosquitto.conf) on loopback.
#   scripts/mosquitto.sh start | stop
# MQTT_PORT (1884, beside the machine's own broker on 1883) picks the port; data lives in .cache/mosquitto.
# Users: sluice-gateway and sluice-simulator, with MQTT_GATEWAY_PASSWORD and MQTT_SIMULATOR_PASSWORD.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${MQTT_PORT:-1884}
data=${SLUICE_CACHE:-$root/.cache}/mosquitto-$port
pidfile=$data/mosquitto.pid

case "${1:-start}" in
  start)
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then exit 0; fi
    source "$root/scripts/services.sh"
    ensure_command mosquitto mosquitto || exit 1
    mkdir -p "$data" && chmod 0777 "$data"
    sed -e "s|^listener 1883$|listener $port 127.0.0.1|" -e "s|^persistence_location .*|persistence_location $data/|" \
      -e "s|^password_file .*|password_file $data/passwords|" -e "s|^acl_file .*|acl_file $data/acl|" \
      "$root/deploy/mosquitto/mosquitto.conf" >"$data/mosquitto.conf"
    cp "$root/deploy/mosquitto/acl" "$data/acl"
    rm -f "$data/passwords" && touch "$data/passwords"
    mosquitto_passwd -b "$data/passwords" sluice-gateway "${MQTT_GATEWAY_PASSWORD:?}"
    mosquitto_passwd -b "$data/passwords" sluice-simulator "${MQTT_SIMULATOR_PASSWORD:?}"
    chmod 0644 "$data/passwords" "$data/acl"
    setsid mosquitto -c "$data/mosquitto.conf" >"$data/mosquitto.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0; sleep 0.1; done
    echo "mosquitto.sh: not listening on $port; see $data/mosquitto.log" >&2
    exit 1
    ;;
  stop)
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
