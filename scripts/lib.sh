# shellcheck shell=bash
# Shared helpers for scripts/dev.sh and scripts/test.sh. Source it, do not run it.
#
# Sourcing sets OXVAULT_ROOT, cds there, and picks the cargo target directory. Every
# `ensure_*` function checks before it installs, so running a script twice installs nothing
# the second time. Nothing here may download from anywhere but the package registries:
# worker-build is pointed at local wasm-bindgen, wasm-opt and esbuild, and wrangler is
# kept offline.

OXVAULT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV_DIR="$OXVAULT_ROOT/.dev"

WORKER_BUILD_VERSION=0.8.7
# wasm-bindgen-cli must equal the wasm-bindgen library in Cargo.lock, or the generated glue
# does not match the Wasm; the pin below is the fallback while no crate depends on it yet.
WASM_BINDGEN_FALLBACK_VERSION=0.2.130
: "${OXVAULT_HSM_MODULE:=/usr/lib/softhsm/libsofthsm2.so}"
export OXVAULT_HSM_MODULE
DEV_TOKEN_LABEL=oxvault-dev

# ---------------------------------------------------------------------------------------------
# Logging and timing.

if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then
    _c_info=$'\033[1;34m' _c_warn=$'\033[1;33m' _c_err=$'\033[1;31m' _c_off=$'\033[0m'
else
    _c_info='' _c_warn='' _c_err='' _c_off=''
fi

log() { printf '%s==>%s %s\n' "$_c_info" "$_c_off" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$_c_warn" "$_c_off" "$*" >&2; }
die() {
    printf '%serror:%s %s\n' "$_c_err" "$_c_off" "$*" >&2
    exit 1
}

STEP_TIMINGS=()
CURRENT_STEP=""
_steps_t0=$SECONDS

# step NAME CMD [ARGS...]: run one timed step. Call it as a plain command (not inside `if`,
# `&&` or `||`), so that `set -e` still stops at the first failing command inside CMD.
step() {
    local name=$1 t0=$SECONDS
    shift
    CURRENT_STEP=$name
    log "$name"
    "$@"
    STEP_TIMINGS+=("$(printf '%5ss  %s' "$((SECONDS - t0))" "$name")")
    CURRENT_STEP=""
}

# print_timings [EXIT_CODE]: the timing table, for an EXIT trap.
print_timings() {
    local rc=${1:-0} line
    if [ "$rc" -ne 0 ] && [ -n "$CURRENT_STEP" ]; then
        STEP_TIMINGS+=("$(printf '%5s   %s (FAILED, exit %s)' '' "$CURRENT_STEP" "$rc")")
    fi
    printf '\nTimings:\n' >&2
    for line in "${STEP_TIMINGS[@]}"; do printf '  %s\n' "$line" >&2; done
    printf '  %5ss  total\n' "$((SECONDS - _steps_t0))" >&2
}

# ---------------------------------------------------------------------------------------------
# Background jobs. On a fresh machine the installs that wait on the network or the disk (apt,
# npm, pip) and the tool builds run beside the workspace's own builds instead of before them.
# Each job's output goes to a log; bg_wait prints its end and stops the script if it failed.

declare -A BG_PIDS=()

# bg_start NAME CMD [ARGS...]: run CMD in a subshell in the background, logging to bg-NAME.log.
# What CMD exports is lost with the subshell: call its ensure_* again after bg_wait.
bg_start() {
    local name=$1
    shift
    mkdir -p "$OXVAULT_CACHE_DIR"
    log "$name: in the background (log: $OXVAULT_CACHE_DIR/bg-$name.log)"
    ("$@") >"$OXVAULT_CACHE_DIR/bg-$name.log" 2>&1 &
    BG_PIDS[$name]=$!
}

# bg_wait NAME: wait for the job NAME (nothing when none was started); dies when it failed.
bg_wait() {
    local name=$1 pid=${BG_PIDS[$1]:-}
    [ -n "$pid" ] || return 0
    unset "BG_PIDS[$name]"
    if ! wait "$pid"; then
        tail -n 30 "$OXVAULT_CACHE_DIR/bg-$name.log" >&2
        die "$name failed in the background (log: $OXVAULT_CACHE_DIR/bg-$name.log)"
    fi
}

# bg_stop_all: stop every job still running, for an EXIT trap.
bg_stop_all() {
    local pid
    for pid in "${BG_PIDS[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------------------------------------
# Cargo target directory.

# CI runs in a fresh clone in another folder every time. A target directory outside the clone
# lets those runs reuse every compiled dependency; that is most of the build time.
# Set CARGO_TARGET_DIR to choose another, or OXVAULT_SHARED_TARGET=0 for the clone's target/.
OXVAULT_CACHE_DIR="${OXVAULT_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/oxvault}"
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
    case $CARGO_TARGET_DIR in
        /*) ;;
        *) CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR" ;; # cargo reads it relative to the cwd
    esac
elif [ "${OXVAULT_SHARED_TARGET:-1}" != 0 ] && [ -n "${HOME:-}" ] &&
    mkdir -p "$OXVAULT_CACHE_DIR/target" 2>/dev/null; then
    CARGO_TARGET_DIR="$OXVAULT_CACHE_DIR/target"
    _shared_target=1
else
    CARGO_TARGET_DIR="$OXVAULT_ROOT/target"
fi
export CARGO_TARGET_DIR

# Cargo rebuilds a crate when one of its files is newer than its last build, and a workspace
# crate builds to the same place from every clone. So a clone whose files are older than
# another clone's last build would silently get that clone's code. When another clone built in
# the shared directory last, this clone's tracked files are touched first: its own crates
# rebuild, the dependencies stay.
claim_shared_target() {
    local marker="$CARGO_TARGET_DIR/.oxvault-checkout"
    [ "$(cat "$marker" 2>/dev/null)" = "$OXVAULT_ROOT" ] && return 0
    if command -v git >/dev/null 2>&1 && git -C "$OXVAULT_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$OXVAULT_ROOT" ls-files -z | (cd "$OXVAULT_ROOT" && xargs -0 touch -c --)
    fi
    printf '%s\n' "$OXVAULT_ROOT" >"$marker"
}
if [ "${_shared_target:-0}" = 1 ]; then
    claim_shared_target
fi

cd "$OXVAULT_ROOT" || exit 1

# ---------------------------------------------------------------------------------------------
# Installers. Each one checks first.

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (run as root or install sudo)"
    fi
}

_apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
    if [ "$_apt_updated" = 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# tool_version CMD: the last word of `CMD --version`'s first line ("wasm-bindgen 0.2.130" and
# worker-build's bare "0.8.7" both give the number), or nothing when CMD is missing.
tool_version() {
    command -v "$1" >/dev/null 2>&1 || return 0
    "$1" --version 2>/dev/null | awk 'NR == 1 { print $NF }'
}

# lock_version CRATE: the version of CRATE in Cargo.lock, or nothing.
lock_version() {
    [ -f Cargo.lock ] || return 0
    awk -v want="\"$1\"" '
        $1 == "name" && $3 == want { getline; if ($1 == "version") { gsub(/"/, "", $3); print $3; exit } }
    ' Cargo.lock
}

ensure_cargo() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
    command -v rustup >/dev/null 2>&1 || die "rustup not found: the wasm32 target is added with rustup"
}

ensure_rust_components() {
    local installed
    installed=$(rustup component list --installed)
    grep -q '^rustfmt' <<<"$installed" || rustup component add rustfmt
    grep -q '^clippy' <<<"$installed" || rustup component add clippy
}

ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
        log "adding the wasm32-unknown-unknown target"
        rustup target add wasm32-unknown-unknown
    fi
}

# worker-build and wasm-bindgen-cli, built from crates.io (their release downloads are out of
# reach here). Both at once, each at a lower optimisation level than cargo install's default:
# worker-build only runs the other tools (opt-level 0), and wasm-bindgen writes the same
# bindings however it was optimised (checked: byte-identical Worker), opt-level 1 keeping it
# quick. Together about 3.5 minutes cold on 2 cores, where one after the other at opt-level 3
# took about 8. cargo install builds in CARGO_TARGET_DIR when it is set; keep them out of ours.
ensure_wasm_tools() {
    local want pids=() names=() i failed=""
    want=$(lock_version wasm-bindgen)
    want=${want:-$WASM_BINDGEN_FALLBACK_VERSION}
    mkdir -p "$OXVAULT_CACHE_DIR"
    if [ "$(tool_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
        log "installing worker-build $WORKER_BUILD_VERSION (in the background)"
        env -u CARGO_TARGET_DIR cargo install worker-build --version "$WORKER_BUILD_VERSION" \
            --locked --force --config 'profile.release.opt-level=0' \
            >"$OXVAULT_CACHE_DIR/install-worker-build.log" 2>&1 &
        pids+=("$!") names+=(worker-build)
    fi
    if [ "$(tool_version wasm-bindgen)" != "$want" ]; then
        log "installing wasm-bindgen-cli $want (in the background)"
        # No --locked: the registry mirror lacks one of its locked transitive versions.
        env -u CARGO_TARGET_DIR cargo install wasm-bindgen-cli --version "$want" \
            --force --config 'profile.release.opt-level=1' \
            >"$OXVAULT_CACHE_DIR/install-wasm-bindgen-cli.log" 2>&1 &
        pids+=("$!") names+=(wasm-bindgen-cli)
    fi
    [ "${#pids[@]}" -gt 0 ] && log "waiting for ${names[*]} (about 3.5 min cold)"
    for i in "${!pids[@]}"; do
        if ! wait "${pids[i]}"; then
            tail -n 30 "$OXVAULT_CACHE_DIR/install-${names[i]}.log" >&2
            failed="$failed ${names[i]}"
        fi
    done
    [ -z "$failed" ] || die "cargo install failed for$failed (logs in $OXVAULT_CACHE_DIR)"
    WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
    export WASM_BINDGEN_BIN
}

ensure_softhsm() {
    command -v softhsm2-util >/dev/null 2>&1 || apt_install softhsm2
    [ -e "$OXVAULT_HSM_MODULE" ] ||
        die "PKCS#11 module $OXVAULT_HSM_MODULE not found (set OXVAULT_HSM_MODULE)"
}

ensure_curl() {
    command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates
}

ensure_node_modules() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        die "node and npm not found: install Node.js 20 (wrangler 4.86 needs it)"
    fi
    [ -f package-lock.json ] || die "package-lock.json missing: the npm tools are pinned there"
    # npm ci writes node_modules/.package-lock.json; older than the lock file means stale.
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        log "npm ci (wrangler, binaryen)"
        npm ci --no-audit --no-fund --loglevel=error
    fi
}

# Debian's Chromium for the share page's browser test (driven by playwright-core from
# node_modules, which never downloads a browser of its own).
ensure_chromium() {
    OXVAULT_CHROMIUM=${OXVAULT_CHROMIUM:-/usr/bin/chromium}
    [ -x "$OXVAULT_CHROMIUM" ] || apt_install chromium
    [ -x "$OXVAULT_CHROMIUM" ] || die "$OXVAULT_CHROMIUM missing after installing chromium"
    export OXVAULT_CHROMIUM
}

# Point worker-build at local binaries so that it never downloads (it would fail here), and
# keep wrangler from calling Cloudflare.
export_tool_env() {
    local arch
    case $(uname -m) in
        x86_64) arch=x64 ;;
        aarch64 | arm64) arch=arm64 ;;
        *) arch=$(uname -m) ;;
    esac
    WASM_OPT_BIN="$OXVAULT_ROOT/node_modules/.bin/wasm-opt"
    ESBUILD_BIN="$OXVAULT_ROOT/node_modules/@esbuild/linux-$arch/bin/esbuild"
    if [ ! -x "$ESBUILD_BIN" ]; then # npm nests it when versions differ
        ESBUILD_BIN=$(find "$OXVAULT_ROOT/node_modules" -path "*/@esbuild/linux-$arch/bin/esbuild" -type f 2>/dev/null | head -n 1)
    fi
    OXVAULT_WRANGLER="$OXVAULT_ROOT/node_modules/.bin/wrangler"
    [ -x "$WASM_OPT_BIN" ] || die "$WASM_OPT_BIN missing: is binaryen in package.json?"
    [ -x "${ESBUILD_BIN:-/nonexistent}" ] || die "esbuild for linux-$arch not found under node_modules"
    [ -x "$OXVAULT_WRANGLER" ] || die "$OXVAULT_WRANGLER missing: is wrangler in package.json?"
    export WASM_OPT_BIN ESBUILD_BIN OXVAULT_WRANGLER
    export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false \
        WRANGLER_SEND_ERROR_REPORTS=false WRANGLER_HIDE_BANNER=true
}

# The Python test tools (the official 1Claw SDK, schemathesis) in a venv outside the clone
# (reused across clones), pinned by tests/sdk/requirements.txt; reinstalled when that file
# changes.
ensure_sdk_venv() {
    local venv="$OXVAULT_CACHE_DIR/sdk-venv" requirements="$OXVAULT_ROOT/tests/sdk/requirements.txt"
    command -v python3 >/dev/null 2>&1 || die "python3 not found: the SDK test needs Python 3.9+"
    if [ ! -x "$venv/bin/python" ]; then
        log "creating the SDK venv in $venv"
        python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    fi
    if ! cmp -s "$requirements" "$venv/requirements.installed"; then
        log "installing the Python test tools ($(grep -v '^#' "$requirements" | tr '\n' ' '))"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        cp "$requirements" "$venv/requirements.installed"
    fi
    OXVAULT_SDK_PYTHON="$venv/bin/python"
    export OXVAULT_SDK_PYTHON
}

# Everything both scripts need to build.
ensure_toolchain() {
    ensure_cargo
    ensure_rust_components
    ensure_wasm_target
    ensure_wasm_tools
    ensure_node_modules
    export_tool_env
    ensure_softhsm
}

# ---------------------------------------------------------------------------------------------
# Builds.

WORKER_MAIN="$OXVAULT_ROOT/edge/build/worker/shim.mjs"

build_worker() {
    (cd "$OXVAULT_ROOT/edge" && worker-build --release)
    [ -f "$WORKER_MAIN" ] || die "worker-build finished but $WORKER_MAIN is missing"
}

report_wasm_size() {
    local wasm found=0
    while IFS= read -r wasm; do
        found=1
        printf '  %s: %s bytes raw, %s bytes gzipped\n' "${wasm#"$OXVAULT_ROOT"/}" \
            "$(wc -c <"$wasm")" "$(gzip -9 -c "$wasm" | wc -c)" >&2
    done < <(find "$OXVAULT_ROOT/edge/build" -name '*.wasm' -type f | sort)
    [ "$found" = 1 ] || die "no .wasm under edge/build"
}

# origin_bin PROFILE: where cargo puts the origin binary for PROFILE (debug or release).
origin_bin() { printf '%s/%s/oxvault-origin\n' "$CARGO_TARGET_DIR" "$1"; }

# ---------------------------------------------------------------------------------------------
# Network and PostgreSQL.

# port_answers PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port FIRST: the first port from FIRST on that nothing listens on.
free_port() {
    local p
    for ((p = $1; p < $1 + 100; p++)); do
        port_answers "$p" || {
            printf '%s\n' "$p"
            return 0
        }
    done
    die "no free port in $1..$(($1 + 99))"
}

# wait_http NAME URL SECONDS PID: until the URL answers with any HTTP status; dies early when
# process PID (NAME, logging to $LOG_DIR/NAME.log) exits first.
wait_http() {
    local i code
    for ((i = 0; i < $3 * 2; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" || true)
        [ "$code" != 000 ] && [ -n "$code" ] && return 0
        kill -0 "$4" 2>/dev/null || die "$1 exited before it answered; see $LOG_DIR/$1.log"
        sleep 0.5
    done
    die "$1 did not answer on $2 within $3 s; see $LOG_DIR/$1.log"
}

pg_answers() { # HOST PORT
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$1" -p "$2" -t 3
    else
        port_answers "$2"
    fi
}

# ---------------------------------------------------------------------------------------------
# SoftHSM.

# token_exists LABEL: a token with that label is initialised under SOFTHSM2_CONF. By label,
# never by slot number: SoftHSM renumbers its slots when a token is initialised.
token_exists() {
    softhsm2-util --show-slots 2>/dev/null | awk -v want="$1" '
        $1 == "Label:" { sub(/^[[:space:]]*Label:[[:space:]]*/, ""); sub(/[[:space:]]+$/, ""); if ($0 == want) found = 1 }
        END { exit !found }'
}

# random_pin: 32 hex characters from the kernel's CSPRNG.
random_pin() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# init_dev_token: a SoftHSM token labelled oxvault-dev under .dev/softhsm, created once with
# PINs generated once and kept (mode 600) beside it. Exports the origin's HSM settings.
init_dev_token() {
    local dir="$DEV_DIR/softhsm" conf
    conf="$dir/softhsm2.conf"
    mkdir -p "$dir/tokens"
    chmod 700 "$dir"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$dir/tokens" >"$conf.new"
    if cmp -s "$conf.new" "$conf"; then rm -f "$conf.new"; else mv "$conf.new" "$conf"; fi
    export SOFTHSM2_CONF="$conf"

    local pin_file="$dir/user-pin" so_pin_file="$dir/so-pin"
    if token_exists "$DEV_TOKEN_LABEL"; then
        [ -s "$pin_file" ] ||
            die "token $DEV_TOKEN_LABEL exists but $pin_file is missing: remove $dir to start over"
    else
        (
            umask 077
            [ -s "$pin_file" ] || random_pin >"$pin_file"
            [ -s "$so_pin_file" ] || random_pin >"$so_pin_file"
        )
        log "initialising SoftHSM token $DEV_TOKEN_LABEL in $dir/tokens"
        softhsm2-util --init-token --free --label "$DEV_TOKEN_LABEL" \
            --pin "$(cat "$pin_file")" --so-pin "$(cat "$so_pin_file")" >/dev/null
        token_exists "$DEV_TOKEN_LABEL" || die "softhsm2-util did not create token $DEV_TOKEN_LABEL"
    fi
    OXVAULT_HSM_PIN=$(cat "$pin_file")
    export OXVAULT_HSM_TOKEN_LABEL="$DEV_TOKEN_LABEL" OXVAULT_HSM_PIN
}

# The edge's settings a developer may set in the environment instead of editing wrangler.toml
# (dev.sh passes them to wrangler dev).
EDGE_SETTINGS=(PUBLIC_URL RATE_LIMIT_AUTH_IP RATE_LIMIT_LOGIN_IDENTITY RATE_LIMIT_SHARE_IP
    RATE_LIMIT_IDENTITY RATE_LIMIT_HEALTH_IP)

# edge_setting_vars: `--var` and `NAME:VALUE` on two lines for each of EDGE_SETTINGS set in
# the environment (read them with mapfile).
edge_setting_vars() {
    local name
    for name in "${EDGE_SETTINGS[@]}"; do
        if [ -n "${!name:-}" ]; then
            printf -- '--var\n%s:%s\n' "$name" "${!name}"
            log "edge: $name=${!name} (from the environment)"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Stopping what a script started (dev.sh, bench.sh).

# stop_group PID NAME [SECONDS]: SIGTERM the process group PID leads, wait up to SECONDS
# (default 25: the origin drains in-flight requests for up to OXVAULT_SHUTDOWN_GRACE_SECS, 20),
# then SIGKILL it.
stop_group() {
    local i
    kill -TERM -- "-$1" 2>/dev/null || return 0
    for ((i = 0; i < ${3:-25} * 5; i++)); do
        kill -0 -- "-$1" 2>/dev/null || return 0
        sleep 0.2
    done
    warn "$2 did not stop within ${3:-25} s; killing it"
    kill -KILL -- "-$1" 2>/dev/null || true
}
