#!/usr/bin/env bash
# Runs real Apache Kafka 3.9 (KRaft) on loopback from the jars on Maven Central: one combined broker and
# controller (the default), or a cluster of three with KAFKA_NODES=3.
#   scripts/kafka.sh fetch | start [N] | stop [N] | kill [N] | restart [N] | status [N]
#
# One node (KAFKA_NODES=1, the default): KAFKA_PORT (9092) picks the client port, the controller takes the
# next one (or KAFKA_CONTROLLER_PORT); KAFKA_DATA sets where the log lives (.cache/kafka/broker-<port>), with
# broker.pid and server.log. Replication factor 1.
#
# Three nodes (KAFKA_NODES=3): node N (1, 2, 3) is a broker and a controller with node.id N. Its client port
# is KAFKA_PORT+N-1 (9092, 9093, 9094) and its controller port KAFKA_CONTROLLER_PORT+N-1 (default
# KAFKA_PORT+10: 9102, 9103, 9104); all six must be free. controller.quorum.voters lists the three; one
# cluster id (KAFKA_DATA/cluster.id) is formatted into every node's log dir. Node N lives in KAFKA_DATA/node-N
# (KAFKA_DATA defaults to .cache/kafka/cluster-<port>) with its own log dir, broker.pid and server.log, so that
# each can be killed and started alone. Topics get default.replication.factor=3, min.insync.replicas=2 and
# num.partitions=3; the offsets and transaction topics replication 3 (transactions' min ISR 2); unclean leader
# election is off.
#   start      starts the nodes not running and waits until each has started (registered and unfenced)
#              and the cluster's metadata lists all three brokers; a port in use by anything else is an error
#   start N    starts node N alone (after a kill or a stop) and waits until it has registered again, which
#              needs another node running (a controller majority); right after a kill that takes up to
#              broker.session.timeout.ms (2.5 s), while the controllers still hold its old registration
#   stop [N]   SIGTERM, a graceful shutdown (every node at once without N), SIGKILL after 30 s; a broker's
#              controlled shutdown needs a majority of the controllers, so once fewer than two nodes run,
#              the ones being stopped get 5 s before SIGKILL (the last of three stopped together may
#              still lead partitions and wait for controllers that are gone)
#   kill [N]   SIGKILL, as a crash would; returns once the process is gone
#   status [N] one line per node; fails unless every node asked about runs
# With one node, N may be omitted or 1, and kill works as above on its broker.
#
# KAFKA_HEAP sets each JVM's maximum heap (768m for one node, 384m per node of a cluster). The jars are
# downloaded once into .cache/kafka/jars and reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
cache=${SLUICE_CACHE:-$root/.cache}
jars=$cache/kafka/jars
nodes=${KAFKA_NODES:-1}
port=${KAFKA_PORT:-9092}
log4j="-Dlog4j.configuration=file:$root/scripts/kafka/log4j.properties"

case "$nodes" in
  1)
    controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
    data=${KAFKA_DATA:-$cache/kafka/broker-$port}
    ;;
  3)
    controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 10))}
    data=${KAFKA_DATA:-$cache/kafka/cluster-$port}
    if [ "$controller_port" -lt $((port + nodes)) ] && [ $((controller_port + nodes)) -gt "$port" ]; then
      echo "kafka.sh: controller ports $controller_port-$((controller_port + nodes - 1)) overlap client ports $port-$((port + nodes - 1))" >&2
      exit 2
    fi
    ;;
  *) echo "kafka.sh: KAFKA_NODES is 1 or 3, not $nodes" >&2; exit 2 ;;
esac
pidfile=$data/broker.pid

# .complete holds the hash of scripts/kafka/pom.xml the jars were fetched for; a changed pom fetches again into a
# folder of its own, then moves the new jars in one by one and removes the ones no longer listed, so that brokers
# already running (whose JVMs hold their jars open) and ones starting meanwhile keep a whole classpath.
fetch() {
  local pom=$root/scripts/kafka/pom.xml want f
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  [ -f "$jars/.complete" ] && [ "$(cat "$jars/.complete")" = "$want" ] && return
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed to fetch Kafka's jars" >&2; exit 1; }
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $jars" >&2
  local fresh=$jars.fetch.$$
  rm -rf "$fresh"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$fresh" -DincludeScope=runtime >&2 ||
    { rm -rf "$fresh"; exit 1; }
  mkdir -p "$jars"
  (cd "$fresh" && ls -- *.jar) >"$fresh.list"
  for f in "$fresh"/*.jar; do [ -f "$jars/${f##*/}" ] || mv "$f" "$jars/"; done
  for f in "$jars"/*.jar; do grep -qxF "${f##*/}" "$fresh.list" || rm -f "$f"; done
  rm -rf "$fresh" "$fresh.list"
  echo "$want" >"$jars/.complete"
}

running() { runs "$pidfile"; }

listens_on() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

listening() { listens_on "$port"; }

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
    java -cp "$cp" "$log4j" -Dkafka.logs.dir="$data" kafka.tools.StorageTool format -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid)" \
      -c "$data/server.properties" >"$data/format.log" 2>&1
  fi
  setsid nohup java -Xms256m -Xmx${KAFKA_HEAP:-768m} -Djava.awt.headless=true \
    "$log4j" -Dkafka.logs.dir="$data" \
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

kill_broker() {
  local pidfile=$1 pid
  runs "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
  rm -f "$pidfile"
}

# ---- three nodes ----

node_dir() { echo "$data/node-$1"; }
node_port() { echo $((port + $1 - 1)); }
node_controller_port() { echo $((controller_port + $1 - 1)); }
node_running() { runs "$(node_dir "$1")/broker.pid"; }

voters() {
  local i list=()
  for i in $(seq 1 "$nodes"); do list+=("$i@127.0.0.1:$(node_controller_port "$i")"); done
  (IFS=,; echo "${list[*]}")
}

# A cluster id as Kafka makes them (base64url of 16 random bytes, not starting with "-").
cluster_id() {
  local file=$data/cluster.id id
  if [ ! -s "$file" ]; then
    mkdir -p "$data"
    for _ in $(seq 1 10); do
      id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | cut -c1-22)
      [ "${id:0:1}" != - ] && break
    done
    echo "$id" >"$file"
  fi
  cat "$file"
}

# Writes node N's config and formats its log dir with the cluster's id the first time.
node_prepare() {
  local i=$1 dir
  dir=$(node_dir "$i")
  mkdir -p "$dir/log"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$(voters)
listeners=PLAINTEXT://127.0.0.1:$(node_port "$i"),CONTROLLER://127.0.0.1:$(node_controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$i")
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/log
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor=3
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
group.initial.rebalance.delay.ms=0
log.retention.hours=168
# A broker that dies stays in every in-sync replica set, and acks=all waits for it, until the controllers
# fence it for missing heartbeats: 2.5 s instead of the default 9 s. When it was the active controller, the
# others first elect a new one: within about a second instead of two to three.
broker.session.timeout.ms=2500
broker.heartbeat.interval.ms=500
controller.quorum.fetch.timeout.ms=1000
controller.quorum.election.timeout.ms=500
PROPS
  if [ ! -f "$dir/log/meta.properties" ]; then
    java -cp "$jars/*" "$log4j" -Dkafka.logs.dir="$dir" kafka.tools.StorageTool format -t "$(cluster_id)" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 ||
      { echo "kafka.sh: formatting node $i failed:" >&2; cat "$dir/format.log" >&2; return 1; }
  fi
}

# Launches node N in the background, without waiting; remembers where its server.log ended.
node_launch() {
  local i=$1 dir p
  dir=$(node_dir "$i")
  for p in "$(node_port "$i")" "$(node_controller_port "$i")"; do
    if listens_on "$p"; then echo "kafka.sh: node $i: something else already listens on 127.0.0.1:$p" >&2; return 1; fi
  done
  touch "$dir/server.log"
  wc -l <"$dir/server.log" >"$dir/server.log.start"
  setsid nohup java -Xms128m -Xmx${KAFKA_HEAP:-384m} -Djava.awt.headless=true \
    "$log4j" -Dkafka.logs.dir="$dir" \
    -cp "$jars/*" kafka.Kafka "$dir/server.properties" >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/broker.pid"
}

# Whether node N has started since its launch: KafkaRaftServer logs it once the broker is unfenced.
node_started() {
  local dir
  dir=$(node_dir "$1")
  listens_on "$(node_port "$1")" &&
    tail -n +$(($(cat "$dir/server.log.start") + 1)) "$dir/server.log" | grep -q 'Kafka Server started'
}

# Waits until every node given has started; fails when one exits or after 120 s.
nodes_wait() {
  local i pending=("$@") left
  for _ in $(seq 1 240); do
    left=()
    for i in "${pending[@]}"; do
      node_started "$i" && continue
      if ! node_running "$i"; then
        echo "kafka.sh: node $i exited; see $(node_dir "$i")/server.log" >&2
        tail -20 "$(node_dir "$i")/stdout.log" >&2
        return 1
      fi
      left+=("$i")
    done
    [ ${#left[@]} -eq 0 ] && return 0
    pending=("${left[@]}")
    sleep 0.5
  done
  echo "kafka.sh: node(s) ${pending[*]} did not start within 120 s" >&2
  return 1
}

# The brokers the cluster's metadata lists, asked of every node's client port.
registered_brokers() {
  local i list=()
  for i in $(seq 1 "$nodes"); do list+=("127.0.0.1:$(node_port "$i")"); done
  java -cp "$jars/*" "$log4j" -Dkafka.logs.dir="$data" kafka.admin.BrokerApiVersionsCommand \
    --bootstrap-server "$(IFS=,; echo "${list[*]}")" 2>/dev/null | grep -c ' (id: [0-9]* rack: ' || true
}

cluster_start() {
  fetch
  local i started=() todo=()
  for i in "$@"; do
    if node_running "$i"; then
      echo "kafka.sh: node $i already running on 127.0.0.1:$(node_port "$i") (pid $(cat "$(node_dir "$i")/broker.pid"))" >&2
    else
      todo+=("$i")
    fi
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  # Formatting starts a JVM per node: do them side by side, with the id made first.
  local pids=()
  cluster_id >/dev/null
  for i in "${todo[@]}"; do node_prepare "$i" & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || exit 1; done
  for i in "${todo[@]}"; do node_launch "$i" && started+=("$i") || exit 1; done
  nodes_wait "${started[@]}" || exit 1
  if [ $# -eq "$nodes" ]; then
    local count=0
    for _ in $(seq 1 20); do
      count=$(registered_brokers)
      [ "$count" -eq "$nodes" ] && break
      sleep 0.5
    done
    if [ "$count" -ne "$nodes" ]; then
      echo "kafka.sh: the cluster lists $count brokers, not $nodes" >&2
      exit 1
    fi
  fi
  for i in "${started[@]}"; do echo "kafka.sh: node $i ready on 127.0.0.1:$(node_port "$i")" >&2; done
}

# SIGTERM to the nodes given, all at once, then SIGKILL to any still running after 30 s. A broker's controlled
# shutdown needs a majority of the controllers: once fewer than two nodes run, the one that is left may wait for
# them forever, so from then on the nodes being stopped get 5 s.
cluster_stop() {
  local i pid pidfile left alive alone=0
  for i in "$@"; do
    pidfile=$(node_dir "$i")/broker.pid
    if runs "$pidfile"; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 300); do
    left=0
    for i in "$@"; do node_running "$i" && left=$((left + 1)); done
    [ "$left" -eq 0 ] && break
    alive=0
    for i in $(seq 1 "$nodes"); do node_running "$i" && alive=$((alive + 1)); done
    if [ $((alive * 2)) -le "$nodes" ]; then
      alone=$((alone + 1))
      [ "$alone" -gt 50 ] && break
    fi
    sleep 0.1
  done
  for i in "$@"; do
    pidfile=$(node_dir "$i")/broker.pid
    if runs "$pidfile"; then
      pid=$(cat "$pidfile")
      echo "kafka.sh: node $i did not stop in time; SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.05; done
    fi
    rm -f "$pidfile"
  done
}

cluster_kill() {
  local i
  for i in "$@"; do kill_broker "$(node_dir "$i")/broker.pid"; done
}

cluster_status() {
  local i ok=0
  for i in "$@"; do
    if node_running "$i"; then
      echo "node $i: running on 127.0.0.1:$(node_port "$i") (pid $(cat "$(node_dir "$i")/broker.pid"))"
    else
      echo "node $i: stopped"
      ok=1
    fi
  done
  return $ok
}

action=${1:-start}
node=${2:-}
if [ -n "$node" ] && ! [[ "$node" =~ ^[0-9]+$ && "$node" -ge 1 && "$node" -le "$nodes" ]]; then
  echo "kafka.sh: node is 1..$nodes, not $node" >&2
  exit 2
fi

if [ "$nodes" -eq 1 ]; then
  case "$action" in
    fetch) fetch ;;
    start) start ;;
    stop) stop ;;
    kill) kill_broker "$pidfile" ;;
    restart) stop; start ;;
    status) if running; then echo "running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; else echo stopped; exit 1; fi ;;
    *) echo "usage: $0 fetch|start|stop|kill|restart|status" >&2; exit 2 ;;
  esac
  exit 0
fi

if [ -n "$node" ]; then targets=("$node"); else mapfile -t targets < <(seq 1 "$nodes"); fi
case "$action" in
  fetch) fetch ;;
  start) cluster_start "${targets[@]}" ;;
  stop) cluster_stop "${targets[@]}" ;;
  kill) cluster_kill "${targets[@]}" ;;
  restart) cluster_stop "${targets[@]}"; cluster_start "${targets[@]}" ;;
  status) cluster_status "${targets[@]}" ;;
  *) echo "usage: KAFKA_NODES=$nodes $0 fetch|start [N]|stop [N]|kill [N]|restart [N]|status [N]" >&2; exit 2 ;;
esac
