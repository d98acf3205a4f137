#!/usr/bin/env bash
# A throw-away PostgreSQL server for the Postgres-instance test (sfmc_assets_tests/postgres).
#
#   eval "$(bash scripts/ci/postgres.sh start <dir>)"   # prints `export DAGSTER_PG_...` lines
#   bash scripts/ci/postgres.sh stop <dir>
#
# `start` installs Debian's `postgresql` package if no /usr/lib/postgresql/*/bin/initdb exists (needs root or
# sudo, and apt), creates a cluster in <dir>/data owned by the `postgres` user (when run as root; as another
# user the cluster is owned by that user), and starts it on 127.0.0.1 on a free port, its socket in <dir>.
# The package's own `main` cluster is left alone: ours never uses port 5432 unless that port is free.
# Idempotent: a second `start` on a running <dir> only prints the exports again; on a stopped one it
# restarts the cluster. `stop` is a no-op when nothing runs. Everything but the exports goes to stderr.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ $# -eq 2 ] || die "usage: $0 start|stop <dir>"
ACTION="$1"
if [ "$ACTION" = stop ] && [ ! -d "$2" ]; then exit 0; fi
mkdir -p "$2" 2>/dev/null || true
DIR="$(cd "$2" 2>/dev/null && pwd)" || die "cannot use directory $2"
DATA="$DIR/data"
ENV_FILE="$DIR/env"
LOG_FILE="$DIR/postgres.log"

find_bindir() {
  local initdb
  initdb="$(ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)" || true
  [ -n "$initdb" ] && dirname "$initdb"
}

# Runs a PostgreSQL binary as the cluster owner: `postgres` when we are root (initdb refuses root).
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install_postgresql() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "PostgreSQL is missing and this is not root (no sudo): install Debian's postgresql"
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is missing and apt-get is not available: install it by hand"
  log "installing Debian's postgresql package"
  $sudo apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
}

is_running() {
  [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 40000))   # without python3 a random one; start retries
}

print_exports() {
  cat "$ENV_FILE"
}

start_cluster() {
  local port attempt
  for attempt in 1 2 3; do
    port="$(free_port)"
    # The port lives in postgresql.auto.conf (ALTER SYSTEM's file), so a restart keeps it.
    as_owner sh -c "printf '%s\n' \"port = $port\" > '$DATA/postgresql.auto.conf'"
    if as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t 60 start >/dev/null; then
      sed -i "s/DAGSTER_PG_PORT=[0-9]*/DAGSTER_PG_PORT=$port/" "$ENV_FILE"
      return 0
    fi
    log "start on port $port failed (attempt $attempt), see $LOG_FILE"
    tail -n 5 "$LOG_FILE" >&2 || true
  done
  die "could not start PostgreSQL in $DATA"
}

cmd_start() {
  BIN="$(find_bindir)" || true
  if [ -z "${BIN:-}" ]; then
    install_postgresql
    BIN="$(find_bindir)" || die "postgresql installed but no /usr/lib/postgresql/*/bin/initdb"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (it comes with Debian's postgresql-common)"
    chown postgres: "$DIR"
    chmod 700 "$DIR"
    runuser -u postgres -- test -w "$DIR" \
      || die "user postgres cannot reach $DIR: use a directory whose parents it may traverse (e.g. mktemp -d)"
  fi

  if [ -f "$DATA/PG_VERSION" ] && [ -f "$ENV_FILE" ]; then
    if is_running; then
      log "already running in $DATA"
    else
      start_cluster
    fi
    print_exports
    return 0
  fi

  # A fresh cluster: the bootstrap superuser is `dagster` with a random password (scram on TCP); the
  # socket in $DIR (mode 700) trusts its owner only, for creating the database.
  rm -rf "$DATA"
  local password pwfile
  password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  pwfile="$DIR/pwfile"
  (umask 077; printf '%s\n' "$password" > "$pwfile")
  [ "$(id -u)" -ne 0 ] || chown postgres: "$pwfile"
  as_owner "$BIN/initdb" -D "$DATA" -U dagster --pwfile="$pwfile" -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  # Loopback TCP only, the socket inside $DIR; durability is not wanted for a throw-away test server.
  as_owner sh -c "cat >> '$DATA/postgresql.conf'" <<EOF

# scripts/ci/postgres.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  (umask 077; printf 'export DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT=0 DAGSTER_PG_USER=dagster DAGSTER_PG_PASSWORD=%s DAGSTER_PG_DB=dagster\n' \
    "$password" > "$ENV_FILE")
  start_cluster
  local port
  port="$(sed -n 's/.*DAGSTER_PG_PORT=\([0-9]*\).*/\1/p' "$ENV_FILE")"
  as_owner "$BIN/createdb" -h "$DIR" -p "$port" -U dagster dagster
  log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $DATA"
  print_exports
}

cmd_stop() {
  BIN="$(find_bindir)" || true
  if [ -z "${BIN:-}" ] || [ ! -f "$DATA/PG_VERSION" ]; then
    return 0
  fi
  if is_running; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    log "stopped $DATA"
  fi
}

case "$ACTION" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) die "usage: $0 start|stop <dir>" ;;
esac
