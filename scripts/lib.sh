# Shared steps of scripts/berth-up and scripts/test: sourced, not run.
# Each step checks first and does only what is missing, so both commands are cheap to repeat.

BERTH_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BERTH_VENV:-$BERTH_HOME/.venv}"
PY="$VENV/bin/python"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_root() {
  [ "$(id -u)" = 0 ] || die "run this as root: the host agent creates namespaces, cgroups and mounts"
}

# Debian/Ubuntu packages the runtime and the platform need at run time.
RUN_PACKAGES="python3 python3-venv python3-dev gcc redis-server busybox-static nftables libnftables1 iproute2 procps util-linux ca-certificates"
# Extra packages for the test suite: PostgreSQL for the second database run, Chromium for the browser tests.
TEST_PACKAGES="postgresql chromium docker-compose skopeo docker-registry apache2-utils"

ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  # Python >= 3.11: prefer the one on PATH, then Debian's.
  for cand in python3 python3.13 python3.12 python3.11; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  die "Python 3.11 or newer is required"
}

ensure_venv() {
  local stamp="$VENV/.berth-deps"
  if [ ! -x "$PY" ]; then
    log "creating the virtual environment in $VENV"
    "$(pick_python)" -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  if [ ! -f "$stamp" ] || [ "$BERTH_HOME/pyproject.toml" -nt "$stamp" ]; then
    log "installing Python dependencies"
    local pip_log="$VENV/pip-install.log"
    "$PY" -m pip install -q --upgrade pip >"$pip_log" 2>&1 || { tail -n 20 "$pip_log"; die "pip failed (see $pip_log)"; }
    # The dependency lists live in pyproject.toml; Berth itself runs from the checkout.
    "$PY" - "$BERTH_HOME/pyproject.toml" > "$VENV/requirements.txt" <<'PYEOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["test"]))
PYEOF
    "$PY" -m pip install -q -r "$VENV/requirements.txt" >>"$pip_log" 2>&1 \
      || { tail -n 20 "$pip_log"; die "pip failed (see $pip_log)"; }
    touch "$stamp"
  fi
}

redis_reachable() { # host port
  "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PYEOF
}

# Start a private redis-server on 127.0.0.1:<port> with its files in <dir>, unless one answers.
ensure_redis() { # port dir
  local port="$1" dir="$2"
  redis_reachable 127.0.0.1 "$port" && return 0
  mkdir -p "$dir"
  log "starting Redis on 127.0.0.1:$port"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis_reachable 127.0.0.1 "$port" && return 0; sleep 0.1; done
  die "Redis did not start on port $port (see $dir/redis.log)"
}
