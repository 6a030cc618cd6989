#!/usr/bin/env bash
# Soak: five minutes of mixed load (writers, readers, share reads, logins) through the edge
# against a stack of its own, then the checks of the suite's 90-second version: every valid
# request served, the origin's RSS at the end within 10% of the RSS after the warm-up (the
# readings are printed), nothing acknowledged lost, the audit chain verifies. On demand, not
# part of scripts/test.sh (which runs the 90-second version).
#
#   OXVAULT_SOAK_SECS   how long the load runs (default 300)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

trap 'print_timings $?' EXIT

prepare() {
    ensure_toolchain
    ensure_sdk_venv
    build_worker
    cargo build -p oxvault-origin
    OXVAULT_ORIGIN_BIN=$(origin_bin debug)
    export OXVAULT_ORIGIN_BIN OXVAULT_WORKER_MAIN="$WORKER_MAIN"
    export OXVAULT_TEST_DATABASE_URL=${OXVAULT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
}

step "build the stack" prepare
export OXVAULT_SOAK_SECS=${OXVAULT_SOAK_SECS:-300}
step "soak ($OXVAULT_SOAK_SECS s)" cargo test -p oxvault-tests --test api -- --exact \
    faults::soak::steady_mixed_load_is_all_served_and_memory_stays_flat --nocapture
