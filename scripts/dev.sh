#!/usr/bin/env bash
# Runs the whole stack on this machine: PostgreSQL, a SoftHSM token, the origin and the Worker
# under `wrangler dev`, then waits. Ctrl-C or SIGTERM stops everything this script started.
#
#   DATABASE_URL   use this database (else the server on 127.0.0.1:5432, else a private
#                  cluster under .dev/pg on a free port)
#   EDGE_PORT      default 8787        ORIGIN_PORT   default 8080
#   METRICS_PORT   default 9464, the origin's /metrics (a listener of its own)
#   DEV_PROFILE    release (default) or debug, the origin's cargo profile
#   OXVAULT_LOG    the origin's tracing filter, default info
#   PUBLIC_URL, RATE_LIMIT_AUTH_IP, RATE_LIMIT_LOGIN_IDENTITY, RATE_LIMIT_SHARE_IP,
#   RATE_LIMIT_IDENTITY, RATE_LIMIT_HEALTH_IP
#                  the edge's settings (see wrangler.toml); when set, passed to wrangler dev
#                  instead of wrangler.toml's values, e.g. RATE_LIMIT_IDENTITY=100000/60
#
# State lives in .dev/: the SoftHSM token and its PINs, the private cluster, logs.
# shellcheck disable=SC2317 # functions run through `step` and the traps look unreachable to it
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EDGE_PORT=${EDGE_PORT:-8787}
ORIGIN_PORT=${ORIGIN_PORT:-8080}
METRICS_PORT=${METRICS_PORT:-9464}
DEV_PROFILE=${DEV_PROFILE:-release}
DEV_DB_NAME=oxvault_dev
LOG_DIR="$DEV_DIR/logs"

# ---------------------------------------------------------------------------------------------
# Starting and stopping what we own.

PIDS=()       # each one leads its own process group (setsid), so a kill reaches its children
NAMES=()
PG_STARTED="" # data directory of the private cluster, when this run started it
PG_BIN=""

# as_pg CMD...: PostgreSQL's tools refuse to run as root; run them as user postgres then.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        log "stopping ${NAMES[i]}"
        stop_group "${PIDS[i]}" "${NAMES[i]}"
    done
    if [ -n "$PG_STARTED" ]; then
        log "stopping the private PostgreSQL cluster"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_STARTED" -m fast -w stop >/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# show_log NAME: copy a process's output to .dev/logs/NAME.log and to the terminal, prefixed.
# It ignores Ctrl-C so that the process's last words on shutdown still reach both.
show_log() {
    trap '' INT TERM
    tee -a "$LOG_DIR/$1.log" | sed -u "s/^/[$1] /"
}

start_bg() { # NAME CMD...
    local name=$1
    shift
    mkdir -p "$LOG_DIR"
    : >"$LOG_DIR/$name.log"
    # Not a process group leader here (no job control), so setsid makes one without forking:
    # $! is the process and its group id.
    setsid "$@" </dev/null > >(show_log "$name") 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL.

pg_bin_dir() {
    local d
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/initdb" ] && printf '%s\n' "$d"
}

ensure_database() { # PORT: create the dev database on 127.0.0.1:PORT if it is missing
    local exists
    exists=$(psql -w -X -h 127.0.0.1 -p "$1" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DEV_DB_NAME'") ||
        die "cannot connect to PostgreSQL on 127.0.0.1:$1 as user postgres; set DATABASE_URL"
    if [ "$exists" != 1 ]; then
        log "creating database $DEV_DB_NAME"
        createdb -w -h 127.0.0.1 -p "$1" -U postgres "$DEV_DB_NAME"
    fi
}

start_private_cluster() {
    local pgdir="$DEV_DIR/pg" data
    data="$pgdir/data"
    if ! PG_BIN=$(pg_bin_dir); then
        log "installing PostgreSQL from Debian"
        apt_install postgresql
        PG_BIN=$(pg_bin_dir) || die "PostgreSQL installed, but no initdb under /usr/lib/postgresql"
    fi
    mkdir -p "$pgdir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$pgdir"
        as_pg test -w "$pgdir" ||
            die "user postgres cannot write $pgdir (a parent directory is closed to it); set DATABASE_URL instead"
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initdb: private cluster in $data"
        as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
        # Loopback TCP only; no Unix socket, whose path would depend on the checkout's depth.
        printf "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" |
            as_pg tee -a "$data/postgresql.conf" >/dev/null
    fi
    if as_pg "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        PG_PORT=$(sed -n 4p "$data/postmaster.pid") # line 4 of postmaster.pid is the port
        log "the private cluster already runs on port $PG_PORT; it is left running on exit"
        return 0
    fi
    PG_PORT=$(free_port 54329)
    log "starting the private cluster on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$pgdir/postgres.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null
    PG_STARTED=$data
}

setup_database() {
    if [ -n "${DATABASE_URL:-}" ]; then
        log "using DATABASE_URL as given"
        return 0
    fi
    if pg_answers 127.0.0.1 5432; then
        log "using the PostgreSQL server on 127.0.0.1:5432"
        command -v psql >/dev/null 2>&1 || apt_install postgresql-client
        ensure_database 5432
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DEV_DB_NAME"
    else
        start_private_cluster
        ensure_database "$PG_PORT"
        DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DEV_DB_NAME"
    fi
    export DATABASE_URL
}

# ---------------------------------------------------------------------------------------------
# The origin and the edge.

build_origin() {
    local args=(-p oxvault-origin)
    [ "$DEV_PROFILE" = release ] && args+=(--release)
    cargo build "${args[@]}"
}

start_origin() {
    local bin
    bin=$(origin_bin "$DEV_PROFILE")
    [ -x "$bin" ] || die "$bin missing after the build"
    export OXVAULT_LISTEN_ADDR="127.0.0.1:$ORIGIN_PORT" OXVAULT_LOG="${OXVAULT_LOG:-info}" \
        OXVAULT_METRICS_ADDR="127.0.0.1:$METRICS_PORT"
    # Links in mail and share_url point at the edge; the edge proves itself to the origin with
    # a secret made fresh for this run (in production: a Worker secret and the origin's env).
    export OXVAULT_PUBLIC_URL="${OXVAULT_PUBLIC_URL:-${PUBLIC_URL:-http://127.0.0.1:$EDGE_PORT}}"
    EDGE_SHARED_SECRET=$(random_pin)$(random_pin)
    export OXVAULT_EDGE_SHARED_SECRET=$EDGE_SHARED_SECRET
    "$bin" migrate
    start_bg origin "$bin" serve
    wait_http origin "http://127.0.0.1:$ORIGIN_PORT/v1/health" 60 "${PIDS[-1]}"
}

# wrangler 4.86 runs a [build] command twice at start; the Worker is built already, so run it
# from a copy of wrangler.toml without that table, its `main` made absolute for the new place.
write_wrangler_dev_config() {
    [ -f wrangler.toml ] || die "wrangler.toml missing at the repository root"
    awk -v main="$WORKER_MAIN" '
        /^[[:space:]]*\[/ { in_table = 1; skip = ($0 ~ /^[[:space:]]*\[build(\.[^]]*)?\][[:space:]]*(#.*)?$/) }
        skip { next }
        !in_table && /^[[:space:]]*main[[:space:]]*=/ { print "main = \"" main "\""; next }
        { print }
    ' wrangler.toml >"$DEV_DIR/wrangler.dev.toml"
}

start_edge() {
    write_wrangler_dev_config
    local settings=()
    mapfile -t settings < <(edge_setting_vars)
    start_bg wrangler "$OXVAULT_WRANGLER" dev --config "$DEV_DIR/wrangler.dev.toml" \
        --local --ip 127.0.0.1 --port "$EDGE_PORT" \
        --var "ORIGIN_URL:http://127.0.0.1:$ORIGIN_PORT" \
        --var "ORIGIN_SHARED_SECRET:$EDGE_SHARED_SECRET" \
        "${settings[@]}" \
        --persist-to "$DEV_DIR/wrangler-state"
    wait_http wrangler "http://127.0.0.1:$EDGE_PORT/v1/health" 120 "${PIDS[-1]}"
}

check_ports_free() {
    local p
    for p in "$EDGE_PORT" "$ORIGIN_PORT" "$METRICS_PORT"; do
        if port_answers "$p"; then
            die "127.0.0.1:$p is already in use (set EDGE_PORT / ORIGIN_PORT / METRICS_PORT, or stop what runs there)"
        fi
    done
}

# ---------------------------------------------------------------------------------------------

case $DEV_PROFILE in
    release | debug) ;;
    *) die "DEV_PROFILE must be release or debug, not '$DEV_PROFILE'" ;;
esac
mkdir -p "$DEV_DIR"
check_ports_free
step "install missing tools" ensure_toolchain
step "curl" ensure_curl
step "build oxvault-origin ($DEV_PROFILE)" build_origin
step "worker-build --release (edge)" build_worker
step "database" setup_database
step "SoftHSM token" init_dev_token
step "start the origin" start_origin
step "start the edge (wrangler dev)" start_edge
print_timings 0

health=$(curl -s --max-time 5 "http://127.0.0.1:$EDGE_PORT/v1/health" || true)
cat >&2 <<EOF

oxvault is running. Ctrl-C stops it.
  edge     http://127.0.0.1:$EDGE_PORT        (Worker under wrangler dev)
  origin   http://127.0.0.1:$ORIGIN_PORT        ($DEV_PROFILE build)
  metrics  http://127.0.0.1:$METRICS_PORT/metrics   (origin only, Prometheus text)
  openapi  http://127.0.0.1:$EDGE_PORT/v1/openapi.json
  health   http://127.0.0.1:$EDGE_PORT/v1/health -> $health
  logs     $LOG_DIR/{origin,wrangler}.log

EOF

# Run until one of them exits or we are told to stop; either way the EXIT trap cleans up.
set +e
wait -n "${PIDS[@]}"
rc=$?
set -e
for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[i]}" 2>/dev/null || warn "${NAMES[i]} exited (status $rc); stopping the rest"
done
exit 1
