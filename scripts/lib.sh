# Shared by the project's scripts: make sure Bun is there, installing it from npm when it is not.
ensure_bun() {
  if ! command -v bun >/dev/null 2>&1; then
    echo "installing Bun from npm..." >&2
    npm install -g bun@1.4.5 >&2 || return 1
    hash -r
  fi
}
