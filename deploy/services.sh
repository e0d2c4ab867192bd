# Shared shell helpers for make targets: make sure PostgreSQL and Redis answer on this machine.
# Sourced, not run. Each ensure_* starts a stopped local service, installs a missing one when that
# works without asking (root with apt-get), and otherwise prints one line on what to do.

say() { printf '%s\n' "$*" >&2; }

can_apt_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  say "installing $* with apt-get..."
  if [ -z "${_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

redis_answers() { # host port
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$1" -p "$2" ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>"/dev/tcp/$1/$2" && printf 'PING\r\n' >&3 && read -r -t 2 line <&3 && [ "${line%$'\r'}" = "+PONG" ]) 2>/dev/null
  fi
}

ensure_redis_server_installed() {
  command -v redis-server >/dev/null 2>&1 && return 0
  if can_apt_install && apt_install redis-server && command -v redis-server >/dev/null 2>&1; then
    return 0
  fi
  say "Redis is not installed: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set REDIS_URL to a running Redis"
  return 1
}

# ensure_redis HOST PORT DATADIR: start a project-local redis-server when nothing answers.
ensure_redis() {
  local host=$1 port=$2 dir=$3
  redis_answers "$host" "$port" && return 0
  case "$host" in 127.0.0.1|localhost|::1) ;; *)
    say "Redis at $host:$port does not answer: start it, or fix REDIS_URL"; return 1 ;;
  esac
  ensure_redis_server_installed || return 1
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)  # redis-server chdirs to --dir before opening its log
  say "starting a project-local redis-server on $host:$port (data in $dir)"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --appendonly yes --save "" >/dev/null
  for _ in $(seq 1 50); do redis_answers "$host" "$port" && return 0; sleep 0.1; done
  say "redis-server did not start: see $dir/redis.log"; return 1
}

pg_answers() { pg_isready -q -h "$1" -p "$2" 2>/dev/null; }

# ensure_postgres HOST PORT: start the machine's cluster when it is installed but stopped.
ensure_postgres() {
  local host=$1 port=$2
  if ! command -v pg_isready >/dev/null 2>&1; then
    if can_apt_install; then apt_install postgresql || true; fi
    if ! command -v pg_isready >/dev/null 2>&1; then
      say "PostgreSQL is not installed: install it (Debian/Ubuntu: sudo apt-get install postgresql) or set TEST_DATABASE_URL"
      return 1
    fi
  fi
  pg_answers "$host" "$port" && return 0
  case "$host" in 127.0.0.1|localhost|::1) ;; *)
    say "PostgreSQL at $host:$port does not answer: start it, or fix TEST_DATABASE_URL"; return 1 ;;
  esac
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$version" ]; then
      say "starting PostgreSQL $version"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    fi
  fi
  for _ in $(seq 1 50); do pg_answers "$host" "$port" && return 0; sleep 0.2; done
  say "PostgreSQL on $host:$port does not answer: start it (sudo pg_ctlcluster <version> main start) or set TEST_DATABASE_URL"
  return 1
}

# url_host_port URL DEFAULT_PORT -> "host port"
url_host_port() {
  python3 - "$1" "$2" <<'PY'
import sys
from urllib.parse import urlsplit
u = urlsplit(sys.argv[1])
print(u.hostname or "127.0.0.1", u.port or sys.argv[2])
PY
}
