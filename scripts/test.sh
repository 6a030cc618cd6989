#!/usr/bin/env bash
# The whole check, as CI runs it: format, lints (native and wasm32), the core's dependency
# rule, unit tests, the release Worker build with its size, the origin build, the compose
# file, and the end-to-end suite (edge under wrangler dev -> origin -> PostgreSQL + SoftHSM).
# Installs what is missing first. Runs from any directory; exits non-zero on the first failure.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

trap 'rc=$?; bg_stop_all; print_timings $rc' EXIT

# The core is shared with the Worker: it must stay free of the native runtime and I/O crates.
FORBIDDEN_IN_CORE='tokio|sqlx|mio|cryptoki'

# The e2e suite creates and drops one database per test through this admin URL.
ensure_test_postgres() {
    if [ -n "${OXVAULT_TEST_DATABASE_URL:-}" ]; then
        log "using OXVAULT_TEST_DATABASE_URL as given"
        return
    fi
    export OXVAULT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    pg_answers 127.0.0.1 5432 && return
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        local version _
        version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
        if [ -n "$version" ]; then
            log "starting the local PostgreSQL cluster $version/main"
            as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
            for _ in $(seq 30); do
                pg_answers 127.0.0.1 5432 && return
                sleep 1
            done
        fi
    fi
    die "no PostgreSQL answers on 127.0.0.1:5432 and none could be started here.
Start one (trust auth for user postgres), or set OXVAULT_TEST_DATABASE_URL to an admin URL
that may create and drop databases, e.g. postgres://postgres:PASSWORD@HOST:5432/postgres"
}

check_core_deps() {
    local target tree bad
    for target in wasm32-unknown-unknown native; do
        if [ "$target" = native ]; then
            tree=$(cargo tree -p oxvault-core -e normal --prefix none)
        else
            tree=$(cargo tree -p oxvault-core --target "$target" -e normal --prefix none)
        fi
        grep -q '^oxvault-core v' <<<"$tree" || die "cargo tree printed no oxvault-core for $target"
        bad=$(grep -E "^($FORBIDDEN_IN_CORE)(-[A-Za-z0-9_-]+)? v" <<<"$tree" | sort -u || true)
        if [ -n "$bad" ]; then
            printf '%s\n' "$bad" >&2
            die "oxvault-core depends on the crates above for $target; it must not pull in $FORBIDDEN_IN_CORE"
        fi
        printf '  %s: %s crates, none of %s\n' "$target" "$(sort -u <<<"$tree" | wc -l)" "$FORBIDDEN_IN_CORE" >&2
    done
}

# scripts/dev.sh hands the edge's settings from the environment to wrangler dev.
check_dev_settings_passthrough() {
    local got want
    got=$(PUBLIC_URL=https://vault.example.com RATE_LIMIT_IDENTITY=5/60 RATE_LIMIT_AUTH_IP='' \
        edge_setting_vars 2>/dev/null | tr '\n' ' ')
    want='--var PUBLIC_URL:https://vault.example.com --var RATE_LIMIT_IDENTITY:5/60 '
    [ "$got" = "$want" ] || die "edge_setting_vars printed '$got', expected '$want'"
    got=$(env -u PUBLIC_URL -u RATE_LIMIT_IDENTITY bash -c \
        "source '$OXVAULT_ROOT/scripts/lib.sh'; for n in \"\${EDGE_SETTINGS[@]}\"; do unset \"\$n\"; done; edge_setting_vars" 2>/dev/null)
    [ -z "$got" ] || die "edge_setting_vars printed '$got' with no setting in the environment"
    grep -q 'mapfile -t settings < <(edge_setting_vars)' "$OXVAULT_ROOT/scripts/dev.sh" ||
        die "scripts/dev.sh no longer passes edge_setting_vars to wrangler dev"
    printf '  dev.sh passes %s from the environment\n' "${EDGE_SETTINGS[*]}" >&2
}

worker_release_build() {
    build_worker
    report_wasm_size
}

# No engine runs here, but `config` needs none: it validates the file and its interpolation.
# Where the docker client has no compose plugin, Debian's docker-compose (1.29, which reads
# the Compose Specification) does the same check.
check_compose() {
    if ! command -v docker >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
        log "skipped: no docker client on this machine"
        return 0
    fi
    local compose=()
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    else
        command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
        compose=(docker-compose)
    fi
    "${compose[@]}" -f docker-compose.yml config -q
    printf '  docker-compose.yml is valid (%s)\n' "${compose[*]}" >&2
}

run_e2e() {
    OXVAULT_ORIGIN_BIN=$(origin_bin debug)
    [ -x "$OXVAULT_ORIGIN_BIN" ] || die "$OXVAULT_ORIGIN_BIN missing: the origin build step should have made it"
    export OXVAULT_ORIGIN_BIN OXVAULT_WORKER_MAIN="$WORKER_MAIN"
    local artifacts="$OXVAULT_ROOT/target/e2e-artifacts" shot
    rm -rf "$artifacts"
    # Most tests share one stack and spend their time waiting on it, so more run at once than
    # there are cores (OXVAULT_E2E_THREADS, default 4: on 2 cores the suite took 308 s with 2
    # and 253 s with 4).
    mkdir -p "$artifacts"
    local rc=0
    cargo test -p oxvault-tests -- --test-threads "${OXVAULT_E2E_THREADS:-4}" 2>&1 |
        tee "$artifacts/e2e.log" || rc=$?
    if [ "$rc" -ne 0 ]; then
        # Each failure's place and message once more, last: with backtraces on, a failing
        # test's message sits above a long trace, and a log cut to its end loses it.
        printf '\nWhere the end-to-end tests failed (full log: %s/e2e.log):\n' \
            "${artifacts#"$OXVAULT_ROOT"/}" >&2
        # From each "panicked at" to the trace or the end of the message, six lines at most.
        awk '/panicked at/ { n = 6 } /^(stack backtrace:|note: )/ { n = 0 } n > 0 { print; n-- }' \
            "$artifacts/e2e.log" | cut -c 1-400 >&2
        return "$rc"
    fi
    # The browser test's screenshots of the share page, for a person to look at.
    while IFS= read -r shot; do
        printf '  screenshot: %s\n' "${shot#"$OXVAULT_ROOT"/}" >&2
    done < <(find "$artifacts" -name '*.png' -type f 2>/dev/null | sort)
}

# Start what installs slowly and does not need the CPU much (apt, npm, pip) and the tool builds
# in the background, so that on a fresh machine they overlap the workspace's builds; each is
# waited for just before the first step that needs it.
start_installs() {
    ensure_cargo
    ensure_rust_components
    ensure_wasm_target
    local packages=()
    command -v softhsm2-util >/dev/null 2>&1 || packages+=(softhsm2)
    [ -x "${OXVAULT_CHROMIUM:-/usr/bin/chromium}" ] || packages+=(chromium)
    if [ "${#packages[@]}" -gt 0 ]; then
        # sudo cannot ask for a password from the background.
        if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
            bg_start packages apt_install "${packages[@]}"
        else
            apt_install "${packages[@]}"
        fi
    fi
    bg_start npm ensure_node_modules
    bg_start python-venv ensure_sdk_venv
    bg_start wasm-tools ensure_wasm_tools
}

# Wait for the background installs, then run each ensure_* again: now it only checks and
# exports what the later steps need.
finish_installs() {
    bg_wait packages
    bg_wait npm
    bg_wait python-venv
    bg_wait wasm-tools
    ensure_toolchain
    ensure_sdk_venv
    ensure_chromium
}

log "oxvault tests in $OXVAULT_ROOT (target dir $CARGO_TARGET_DIR)"
step "start installs (Rust components here; apt, npm, pip, wasm tools in the background)" start_installs
step "PostgreSQL for the e2e suite" ensure_test_postgres
step "cargo fmt --check" cargo fmt --all -- --check
step "clippy (workspace, native)" cargo clippy --locked --workspace --all-targets -- -D warnings
step "clippy (edge, wasm32)" cargo clippy -p oxvault-edge --target wasm32-unknown-unknown -- -D warnings
step "oxvault-core dependency rule" check_core_deps
step "no import circles (origin, edge, core)" python3 scripts/import_cycles.py origin/src edge/src core/src
step "unit tests" cargo test --workspace --exclude oxvault-tests
step "wait for the background installs" finish_installs
# Builds the edge and with it oxvault-core for wasm32 (the core's own wasm32 build).
step "worker-build --release (edge)" worker_release_build
step "build oxvault-origin (debug)" cargo build -p oxvault-origin
step "docker compose config" check_compose
step "dev.sh edge settings from the environment" check_dev_settings_passthrough
step "end-to-end tests" run_e2e
log "all checks passed"
