#!/usr/bin/env bash
# Runs a real S3-compatible server on loopback: s3proxy (from Maven Central) on its filesystem backend,
# so that archiving to S3 is tested against real S3 wire traffic and signatures, never a mock.
#   scripts/s3.sh fetch | start | stop | restart | status
# S3_PORT (9000, like MinIO) picks the port; S3_DATA (.cache/s3proxy/data) is the server's folder: each
# bucket is a directory under $S3_DATA/buckets, beside the pidfile, config and log. Clients sign (AWS
# signature V2 or V4) with S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY (sluice / sluice-secret) and address
# buckets path-style (http://127.0.0.1:9000/BUCKET/KEY). The jar is downloaded once into .cache/s3proxy/jars.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
cache=${SLUICE_CACHE:-$root/.cache}
jars=$cache/s3proxy/jars
port=${S3_PORT:-9000}
data=${S3_DATA:-$cache/s3proxy/data}
access_key=${S3_ACCESS_KEY_ID:-sluice}
secret_key=${S3_SECRET_ACCESS_KEY:-sluice-secret}
pidfile=$data/s3proxy.pid

fetch() {
  [ -f "$jars/.complete" ] && return
  # Two starts at once on a fresh checkout (say, two test files) must not both download into $jars.
  mkdir -p "$cache/s3proxy"
  exec 9>"$cache/s3proxy/.fetch.lock"
  flock 9
  if [ ! -f "$jars/.complete" ]; then
    command -v mvn >/dev/null || { echo "s3.sh: Maven (mvn) is needed to fetch s3proxy's jar" >&2; exit 1; }
    echo "s3.sh: fetching s3proxy from Maven Central into $jars" >&2
    rm -rf "$jars"
    mvn -q -B -Dstyle.color=never -f "$root/scripts/s3/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$jars" -DincludeScope=runtime >&2
    touch "$jars/.complete"
  fi
  # Closed again so that the server started next does not inherit (and hold) the lock.
  exec 9>&-
}


running() { runs "$pidfile"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

# Ready once it answers HTTP (an anonymous GET / gets 403 AccessDenied), not merely once the port is open.
answers() {
  local status
  status=$(
    exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" >&3
    timeout 5 head -1 <&3
  ) || return 1
  [[ $status == HTTP/1.1\ * ]]
}

start() {
  fetch
  if running; then echo "s3.sh: s3proxy already running on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2; return; fi
  # Unlike kafka.sh, never adopt a stranger: another S3 server here would have other keys and other data.
  if listening; then echo "s3.sh: something else already listens on 127.0.0.1:$port" >&2; exit 1; fi
  mkdir -p "$data/buckets"
  # The secret sits in this file: readable by its owner only.
  (umask 077 && cat >"$data/s3proxy.properties" <<PROPS)
s3proxy.endpoint=http://127.0.0.1:$port
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$access_key
s3proxy.credential=$secret_key
jclouds.provider=filesystem
jclouds.filesystem.basedir=$data/buckets
PROPS
  # A small heap and the serial collector: the machine's 2 cores are shared with Kafka and the tests.
  setsid nohup java -Xms32m -Xmx256m -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlogback.configurationFile="$root/scripts/s3/logback.xml" \
    -cp "$jars/*" org.gaul.s3proxy.Main --properties "$data/s3proxy.properties" >"$data/s3proxy.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 300); do
    if answers; then echo "s3.sh: s3proxy ready on http://127.0.0.1:$port" >&2; return; fi
    running || { echo "s3.sh: s3proxy exited; see $data/s3proxy.log" >&2; tail -20 "$data/s3proxy.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "s3.sh: s3proxy did not answer on $port within 30 s; see $data/s3proxy.log" >&2
  exit 1
}

stop() { stop_server "$pidfile"; }

case "${1:-start}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "running on http://127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|restart|status" >&2; exit 2 ;;
esac
