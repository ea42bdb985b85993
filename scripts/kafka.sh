#!/usr/bin/env bash
# Runs a real single-node Apache Kafka 3.9 broker (KRaft) on loopback from the jars on Maven Central.
#   scripts/kafka.sh fetch | start | stop | status | restart
# KAFKA_PORT (9092) picks the client port, the controller takes the next one; KAFKA_DATA sets where
# the log lives. The jars are downloaded once into .cache/kafka/jars and reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
cache=${SLUICE_CACHE:-$root/.cache}
jars=$cache/kafka/jars
port=${KAFKA_PORT:-9092}
controller_port=$((port + 1))
data=${KAFKA_DATA:-$cache/kafka/broker-$port}
pidfile=$data/broker.pid

fetch() {
  [ -f "$jars/.complete" ] && return
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed to fetch Kafka's jars" >&2; exit 1; }
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $jars" >&2
  rm -rf "$jars"
  mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$jars" -DincludeScope=runtime >&2
  touch "$jars/.complete"
}

running() { runs "$pidfile"; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  fetch
  if running; then echo "kafka.sh: broker already running on 127.0.0.1:$port (pid $(cat "$pidfile"))" >&2; return; fi
  if listening; then echo "kafka.sh: something already listens on 127.0.0.1:$port; using it as the broker" >&2; return; fi
  mkdir -p "$data/log"
  cat > "$data/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$data/log
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
PROPS
  local cp="$jars/*"
  if [ ! -f "$data/log/meta.properties" ]; then
    java -cp "$cp" -Dlog4j.configuration="file:$root/scripts/kafka/log4j.properties" -Dkafka.logs.dir="$data" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid)" \
      -c "$data/server.properties" >"$data/format.log" 2>&1
  fi
  setsid nohup java -Xms256m -Xmx${KAFKA_HEAP:-768m} -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$root/scripts/kafka/log4j.properties" -Dkafka.logs.dir="$data" \
    -cp "$cp" kafka.Kafka "$data/server.properties" >"$data/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if listening; then echo "kafka.sh: broker ready on 127.0.0.1:$port" >&2; return; fi
    running || { echo "kafka.sh: broker exited; see $data/server.log" >&2; tail -20 "$data/stdout.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "kafka.sh: broker did not listen on $port within 60 s" >&2
  exit 1
}

stop() { stop_server "$pidfile"; }

case "${1:-start}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|restart|status" >&2; exit 2 ;;
esac
