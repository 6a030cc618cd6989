#!/usr/bin/env bash
# Fuzzes the core's parsers of text from the internet: runs every cargo-fuzz target in fuzz/
# (secret paths, policies, API keys, shares, JWTs, `N/S` limits, emails) for SECONDS each, one
# after the other. On demand, not part of scripts/test.sh: the core's property suites check the
# same invariants briefly on every `cargo test` (`PROPTEST_CASES=N` runs them longer).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#   FUZZ_SECONDS   seconds per target when SECONDS is not given (default 60)
#
# Installs what is missing first: cargo-fuzz at a pinned version, built with the default
# toolchain; the targets themselves build with nightly, which cargo-fuzz needs. Each target's
# corpus grows in fuzz/corpus/TARGET (gitignored) and seeds the next run, along with the
# committed fuzz/seeds/TARGET. Exits non-zero when any target crashed, after running the rest,
# printing the input that did it; `cargo +nightly fuzz run TARGET ARTIFACT` replays one.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

trap 'print_timings $?' EXIT

CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH=${1:-${FUZZ_SECONDS:-60}}
if [ "$#" -gt 0 ]; then shift; fi
[[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]] ||
    die "SECONDS must be a whole number of seconds, got '$SECONDS_EACH'"

# lib.sh points CARGO_TARGET_DIR at the shared stable build; the nightly, instrumented builds
# of the targets get their own, outside the clone like it so that CI's fresh clones reuse it.
export CARGO_TARGET_DIR="${OXVAULT_FUZZ_TARGET_DIR:-$OXVAULT_CACHE_DIR/fuzz-target}"
LOG_DIR="$OXVAULT_CACHE_DIR/fuzz-logs"

# Safe Rust only (the workspace forbids `unsafe`), so AddressSanitizer would find nothing and
# halve the runs per second; debug assertions stay on, so that an integer overflow is a crash.
FUZZ_FLAGS=(--sanitizer none --debug-assertions)

ensure_nightly() {
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        log "installing the nightly toolchain (cargo-fuzz needs it)"
        rustup toolchain install nightly --profile minimal ||
            die "no nightly toolchain and it could not be installed"
    fi
}

ensure_cargo_fuzz() {
    local have
    have=$(cargo fuzz --version 2>/dev/null | awk 'NR == 1 { print $NF }' || true)
    if [ "$have" != "$CARGO_FUZZ_VERSION" ]; then
        log "installing cargo-fuzz $CARGO_FUZZ_VERSION${have:+ (found $have)}"
        # Outside our target directories: cargo install builds in CARGO_TARGET_DIR when set.
        env -u CARGO_TARGET_DIR cargo install --locked --force "cargo-fuzz@$CARGO_FUZZ_VERSION"
    fi
}

build_targets() {
    cargo +nightly fuzz build "${FUZZ_FLAGS[@]}"
}

FAILED=()

# fuzz_one TARGET: runs it for SECONDS_EACH; a crash is recorded, not fatal, so that the other
# targets still run.
fuzz_one() {
    local target=$1 log="$LOG_DIR/$1.log" corpus="fuzz/corpus/$1" seeds="fuzz/seeds/$1" artifact
    local dirs=("$corpus")
    mkdir -p "$corpus"
    [ -d "$seeds" ] && dirs+=("$seeds")
    # -timeout: an input that takes 10 s is a hang worth a report, not a slow run.
    if cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$target" "${dirs[@]}" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 >"$log" 2>&1; then
        grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/  $target: /" >&2 || true
        return 0
    fi
    tail -n 40 "$log" >&2
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    FAILED+=("$target: ${artifact:-no artifact written, see $log}")
}

ensure_cargo
ensure_nightly
ensure_cargo_fuzz
mkdir -p "$LOG_DIR"

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi
[ "${#TARGETS[@]}" -gt 0 ] || die "cargo fuzz list found no target in fuzz/"

step "build the fuzz targets (nightly)" build_targets
for target in "${TARGETS[@]}"; do
    step "fuzz $target for ${SECONDS_EACH}s" fuzz_one "$target"
done

if [ "${#FAILED[@]}" -gt 0 ]; then
    printf '%s\n' "${FAILED[@]/#/crashed: }" >&2
    die "${#FAILED[@]} of ${#TARGETS[@]} fuzz targets crashed; logs in $LOG_DIR"
fi
log "no crash in ${#TARGETS[@]} targets, ${SECONDS_EACH}s each; logs in $LOG_DIR"
