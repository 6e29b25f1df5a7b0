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
RUN_PACKAGES="python3 python3-venv python3-dev gcc libc6-dev redis-server busybox-static nftables libnftables1 iproute2 procps util-linux ca-certificates criu restic"
# Extra packages for the test suite: PostgreSQL for the second database run, Chromium for the browser tests.
# slapd and ldap-utils: a real directory for the LDAP tests; prometheus: scrapes /metrics in a test.
TEST_PACKAGES="postgresql chromium docker-compose skopeo docker-registry apache2-utils curl jq slapd ldap-utils prometheus"

ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Packages must not start their daemons (slapd, prometheus, redis): Berth and its tests start
  # their own, on their own ports. policy-rc.d answers 101 ("not allowed") while we install.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
    [ -n "$own_policy" ] && rm -f "$policy"
    die "apt-get install failed: ${missing[*]}"
  }
  [ -n "$own_policy" ] && rm -f "$policy"
  return 0
}

pick_python() {
  # Python >= 3.11: the distribution's first, then the one on PATH. A distribution's build has
  # profile-guided and link-time optimisation and apt's security updates; a self-built one
  # (pyenv's default) has neither and ran Berth's Python 1.2-1.6x slower here
  # (docs/benchmarks.md, sessions 13 and 26). Where its tarfile lacks the extraction filters
  # (PEP 706; Debian 12's 3.11.2), the backports.tarfile dependency brings them
  # (runtime/tar_filters.py).
  local cand
  for cand in /usr/bin/python3 python3 python3.13 python3.12 python3.11; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
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

# Make <file> hold a random Redis password (mode 600, written under umask 077), unless it has one.
ensure_redis_password() { # file
  local file="$1"
  if [ -s "$file" ]; then chmod 600 "$file"; return 0; fi
  mkdir -p "$(dirname "$file")"
  (
    umask 077
    rm -f "$file.tmp"
    "$PY" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$file.tmp"
    mv "$file.tmp" "$file"
  )
}

# Whether Redis on host:port takes the password in <file>: 0 yes, 1 nobody answers, 2 it wants
# no password, 3 it refuses this one. The file's name is passed, not the password: ps shows
# arguments.
redis_status() { # host port password-file
  "$PY" - "$1" "$2" "$3" <<'PYEOF' 2>/dev/null
import socket, sys
password = open(sys.argv[3], "rb").read().strip()
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
except OSError:
    sys.exit(1)
s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\nPING\r\n" % (len(password), password))
reply = b""
while reply.count(b"\r\n") < 2:
    chunk = s.recv(256)
    if not chunk:
        break
    reply += chunk
if reply.startswith(b"+OK\r\n+PONG"):
    sys.exit(0)
sys.exit(2 if b"without any password" in reply else 3)
PYEOF
}

# Start a private redis-server on 127.0.0.1:<port> with its files in <dir>, requiring the
# password in <password-file>, unless it answers already. Berth's own Redis of <dir> started
# before it needed a password is restarted, by its pid file; any other Redis is left alone.
ensure_redis() { # port dir password-file
  local port="$1" dir="$2" password_file="$3" status=0
  redis_status 127.0.0.1 "$port" "$password_file" || status=$?
  [ "$status" = 0 ] && return 0
  if [ "$status" != 1 ]; then
    [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null \
      || die "a Redis on 127.0.0.1:$port refuses the password in $password_file: stop it or set REDIS_URL"
    log "restarting Berth's Redis on 127.0.0.1:$port with a password"
    kill "$(cat "$dir/redis.pid")"
    for _ in $(seq 50); do
      status=0; redis_status 127.0.0.1 "$port" "$password_file" || status=$?
      [ "$status" = 1 ] && break
      sleep 0.1
    done
  fi
  mkdir -p "$dir"
  log "starting Redis on 127.0.0.1:$port"
  # The password goes in a config file only root reads, never on the command line.
  (
    umask 077
    rm -f "$dir/redis.conf"
    cat >"$dir/redis.conf" <<EOF
port $port
bind 127.0.0.1
dir "$dir"
daemonize yes
pidfile "$dir/redis.pid"
logfile "$dir/redis.log"
save ""
# Queued tasks survive a restart of Redis (append-only file, synced every second).
appendonly ${BERTH_REDIS_APPENDONLY:-yes}
appendfsync everysec
requirepass $(cat "$password_file")
EOF
  )
  redis-server "$dir/redis.conf" >/dev/null
  for _ in $(seq 50); do redis_status 127.0.0.1 "$port" "$password_file" && return 0; sleep 0.1; done
  die "Redis did not start on port $port (see $dir/redis.log)"
}
