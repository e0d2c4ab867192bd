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

# --- a project-local PostgreSQL cluster (make up's default database, make test's fallback) ----------

# Where to look for the server programs besides pg_config --bindir and PATH (tests point it elsewhere).
PG_BIN_GLOB=${PG_BIN_GLOB:-/usr/lib/postgresql/*/bin}

_find_pg_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null) && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  fi
  # shellcheck disable=SC2086 # the glob is meant to expand
  for dir in $(ls -d $PG_BIN_GLOB 2>/dev/null | sort -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  dir=$(command -v initdb 2>/dev/null) && dir=$(dirname "$(readlink -f "$dir")") && [ -x "$dir/pg_ctl" ] &&
    { echo "$dir"; return 0; }
  return 1
}

# pg_bindir VAR: print the directory of the machine's initdb and pg_ctl, installing PostgreSQL with
# apt-get when it is missing and that works without asking; otherwise one line naming VAR, return 1.
pg_bindir() {
  _find_pg_bindir && return 0
  if can_apt_install && apt_install postgresql && _find_pg_bindir; then
    return 0
  fi
  say "PostgreSQL is not installed: install it (Debian/Ubuntu: sudo apt-get install postgresql; macOS: brew install postgresql) or set $1 to a running PostgreSQL"
  return 1
}

# pg_as_owner CMD ...: initdb and the server refuse to run as root, so as root they run as the
# postgres OS user (which owns the data directory); otherwise as whoever runs make.
# From /: the postgres OS user may not enter the directory make was started in (a clone under /root).
pg_as_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# Where a cluster lives when the postgres OS user cannot enter the project (root's clone under /root, mode 700).
LOCAL_POSTGRES_BASE=/var/lib/resilience

# local_postgres_place DIR [HOME]: print the real directory of the cluster that the project knows as DIR
# (var/postgres): HOME when given (LOCAL_POSTGRES_HOME, an absolute path); else DIR itself, unless root
# runs this, DIR holds no cluster yet and the postgres OS user cannot enter DIR's parent: then
# LOCAL_POSTGRES_BASE/<hash of the project's path>/<DIR's path under var/, with - for />. Elsewhere than
# DIR, DIR becomes a symlink to it, so make down and every other command find it by the same name.
local_postgres_place() {
  local dir=$1 home=${2:-} parent name target hash
  parent=$(cd "$(dirname "$dir")" && pwd -P) || return 1
  name=$(basename "$dir")
  if [ -n "$home" ]; then
    case "$home" in /*) ;; *) say "LOCAL_POSTGRES_HOME must be an absolute path, not $home"; return 1 ;; esac
    target=${home%/}
  elif [ -L "$parent/$name" ]; then
    target=$(readlink "$parent/$name")  # placed by an earlier run: it stays there
  elif [ "$(id -u)" != 0 ] || [ -s "$parent/$name/PG_VERSION" ] || runuser -u postgres -- test -x "$parent" 2>/dev/null; then
    printf '%s\n' "$parent/$name"; return 0
  else
    # One directory per project (its path's hash), one place per cluster in it: var/postgres -> postgres,
    # var/chaos/postgres -> chaos-postgres. A cluster outside the project: one directory per its parent.
    local rel=$parent/$name key
    key=$(pwd -P); rel=${rel#"$key"/}
    if [ "${rel#/}" != "$rel" ]; then key=$parent; rel=$name; fi
    rel=${rel#var/}
    hash=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest()[:12])' "$key")
    target=$LOCAL_POSTGRES_BASE/$hash/${rel//\//-}
    # 755: the postgres OS user must pass through them; the cluster's own directory is mode 700.
    mkdir -p "$LOCAL_POSTGRES_BASE/$hash" && chmod 755 "$LOCAL_POSTGRES_BASE" "$LOCAL_POSTGRES_BASE/$hash" || return 1
    say "the postgres OS user cannot enter $parent: the project-local PostgreSQL keeps its data in $target" \
      "($dir links there; LOCAL_POSTGRES_HOME chooses another place)"
  fi
  if [ "$target" != "$parent/$name" ]; then
    if [ -L "$parent/$name" ]; then
      if [ "$(readlink "$parent/$name")" != "$target" ]; then
        say "$dir linked to $(readlink "$parent/$name"), now to $target (LOCAL_POSTGRES_HOME); the data there is left as it was"
        rm -f "$parent/$name"
      fi
    elif [ -e "$parent/$name" ]; then
      if ! rmdir "$parent/$name" 2>/dev/null; then
        say "$dir holds a cluster of its own, not the one in $target (LOCAL_POSTGRES_HOME): make down, then move it there or unset LOCAL_POSTGRES_HOME"
        return 1
      fi
    fi
    [ -L "$parent/$name" ] || ln -s "$target" "$parent/$name"
  fi
  printf '%s\n' "$target"
}

# local_postgres_running DATADIR: the cluster in DATADIR has a live server.
local_postgres_running() {
  local bindir dir
  [ -f "$1/postmaster.pid" ] || return 1
  dir=$(cd "$1" && pwd -P) || return 1  # the real path: the owner may not pass through the project
  bindir=$(_find_pg_bindir) || return 1
  pg_as_owner "$bindir/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

# ensure_local_postgres DATADIR PORT VAR PORT_VAR [HOME]: a PostgreSQL cluster in DATADIR (created when
# missing) runs, listening on 127.0.0.1:PORT and on a unix socket in DATADIR. Connections over TCP
# need a password (scram-sha-256); the socket trusts whoever reaches it, which is only the cluster's
# owner (and root), because DATADIR is mode 700. VAR (DATABASE_URL ...) and PORT_VAR
# (LOCAL_POSTGRES_PORT ...) are named in the one-line failures. DATADIR may be a symlink to where the
# data really is (HOME, or a place the postgres OS user reaches: local_postgres_place).
ensure_local_postgres() {
  local dir=$1 port=$2 var=$3 port_var=$4 home=${5:-} bindir out
  bindir=$(pg_bindir "$var") || return 1
  if [ "$(id -u)" = 0 ] && ! id -u postgres >/dev/null 2>&1; then
    say "running as root, the project-local PostgreSQL runs as the postgres OS user, which does not exist: install PostgreSQL with apt-get (it creates the user), or set $var to a running PostgreSQL"
    return 1
  fi
  mkdir -p "$(dirname "$dir")" && dir=$(local_postgres_place "$dir" "$home") || return 1
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P)
  # A unix socket path has at most 107 bytes: DATADIR/.s.PGSQL.<port> must fit.
  if [ $(( ${#dir} + 17 )) -gt 107 ]; then
    say "the path $dir is too long for PostgreSQL's unix socket: move the project to a shorter path, or set $var to a running PostgreSQL"
    return 1
  fi
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      say "the postgres OS user cannot reach $dir (a parent directory is closed to it): move the project, or set $var to a running PostgreSQL"
      return 1
    fi
  fi
  chmod 700 "$dir"
  if [ ! -s "$dir/PG_VERSION" ]; then
    say "creating a project-local PostgreSQL cluster in $dir ($bindir)"
    if ! out=$(pg_as_owner "$bindir/initdb" -D "$dir" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 2>&1); then
      say "$out"; say "initdb failed in $dir (see above)"; return 1
    fi
    printf '\n# Written by deploy/services.sh: port, addresses and socket of this cluster.\n%s\n' \
      "include_if_exists = 'resilience.conf'" >> "$dir/postgresql.conf"
  fi
  # Rewritten at every start, so a changed port applies; the server reads it when it starts.
  printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nmax_connections = 200\n" \
    "$port" "$dir" > "$dir/resilience.conf"
  if local_postgres_running "$dir"; then
    "$bindir/pg_isready" -q -h "$dir" -p "$port" 2>/dev/null && return 0
    say "the project-local PostgreSQL in $dir does not answer on port $port: restarting it"
    pg_as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "port $port on 127.0.0.1 is taken by another program: stop it, or set $port_var to a free port"
    return 1
  fi
  say "starting the project-local PostgreSQL on 127.0.0.1:$port (data in $dir)"
  if ! pg_as_owner "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
    say "PostgreSQL did not start: see $dir/server.log"
    return 1
  fi
}

# stop_local_postgres DATADIR: stop the cluster in DATADIR if its server runs (fast: clients are cut off).
stop_local_postgres() {
  local bindir dir
  local_postgres_running "$1" || return 0
  dir=$(cd "$1" && pwd -P) || return 1
  bindir=$(_find_pg_bindir) || return 1
  pg_as_owner "$bindir/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null
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
