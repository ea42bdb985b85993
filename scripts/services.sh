# Shared by up.sh and test.sh: PostgreSQL and Redis where DATABASE_URL and REDIS_URL point (127.0.0.1:5432 and
# :6379 by default). Something listening is used as it is; a local one that is not running is started, from
# Debian's packages (installed first when Sluice runs as root), or the exact command to run is printed.

# host and port of a postgres:// or redis:// URL
url_endpoint() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  local host=${rest%:*} port=${rest##*:}
  [ "$host" = "$rest" ] && port=$2
  echo "$host" "$port"
}

listens() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_listening() {
  for _ in $(seq 1 60); do listens "$1" "$2" && return 0; sleep 0.5; done
  return 1
}

local_host() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ]; }

# Installs Debian packages when root, otherwise says how and fails.
install_packages() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "run: sudo apt-get install -y $*   (then this script again)" >&2
    return 1
  fi
  echo "installing $* from Debian's packages..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >/dev/null 2>&1 ||
    { echo "could not install $*: run apt-get install -y $*" >&2; return 1; }
}

# A command from a Debian package, installed when missing (or the command to install it printed).
ensure_command() {
  command -v "$1" >/dev/null || install_packages "$2"
}

ensure_postgres() {
  local host port
  read -r host port < <(url_endpoint "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/sluice}" 5432)
  listens "$host" "$port" && return 0
  if ! local_host "$host"; then echo "PostgreSQL is not reachable at $host:$port (DATABASE_URL)" >&2; return 1; fi
  if ! ls /etc/postgresql/*/main/postgresql.conf >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      # Debian's cluster asks for a password on 127.0.0.1; Sluice's default DATABASE_URL (and the tests) have none.
      echo "PostgreSQL is not installed. Run, then this script again:" >&2
      echo "  sudo apt-get install -y postgresql && sudo sed -i '0,/^[^#]/s//host all all 127.0.0.1\/32 trust\nhost all all ::1\/128 trust\n&/' /etc/postgresql/*/main/pg_hba.conf && sudo pg_ctlcluster \$(ls /etc/postgresql) main restart" >&2
      return 1
    fi
    install_packages postgresql || return 1
    # A cluster made for this machine: loopback connections as in DATABASE_URL's default, without a password.
    local hba
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | tail -1)
    sed -i '0,/^[^#]/s//host all all 127.0.0.1\/32 trust\nhost all all ::1\/128 trust\n&/' "$hba"
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -1)
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not running: sudo pg_ctlcluster $version main start" >&2
    return 1
  fi
  echo "starting PostgreSQL $version..." >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || true
  wait_listening "$host" "$port" ||
    { echo "PostgreSQL $version does not listen on $host:$port; see /var/log/postgresql" >&2; return 1; }
}

ensure_redis() {
  local host port
  read -r host port < <(url_endpoint "${REDIS_URL:-redis://127.0.0.1:6379/0}" 6379)
  listens "$host" "$port" && return 0
  if ! local_host "$host"; then echo "Redis is not reachable at $host:$port (REDIS_URL)" >&2; return 1; fi
  command -v redis-server >/dev/null || install_packages redis-server || return 1
  local dir=${SLUICE_CACHE:-$PWD/.cache}/redis-$port
  mkdir -p "$dir"
  echo "starting Redis on $host:$port (data in $dir)..." >&2
  # Sluice keeps only caches and counters in Redis: nothing is saved to disk.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --pidfile "$dir/redis.pid" >&2 ||
    { echo "Redis did not start; see $dir/redis.log" >&2; return 1; }
  wait_listening "$host" "$port" || { echo "Redis does not listen on $host:$port; see $dir/redis.log" >&2; return 1; }
}
