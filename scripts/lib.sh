# Shared by the project's scripts: make sure Bun is there, installing it from npm when it is not.
ensure_bun() {
  if ! command -v bun >/dev/null 2>&1; then
    echo "installing Bun from npm..." >&2
    npm install -g bun@1.4.5 >&2 || return 1
    hash -r
  fi
}

# Alive, not a zombie: setsid leaves a server to PID 1, which may take a second or two to reap it.
alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" != Z ]; }

# Whether the server whose pid a file holds is running.
runs() { [ -f "$1" ] && alive "$(cat "$1")"; }

# Stops the server whose pid a file holds: SIGTERM, then SIGKILL after 30 s.
stop_server() {
  local pidfile=$1 pid
  runs "$pidfile" || { rm -f "$pidfile"; return 0; }
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 300); do alive "$pid" || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
