#!/usr/bin/env bash
# Entrypoint of the origin image: create the SoftHSM token in the token volume on first start,
# then run oxvault-origin (CMD: serve). Any other command runs as given, e.g. `bash`.
# The token holds the KEK: losing the volume loses every secret encrypted under it.
set -euo pipefail

: "${SOFTHSM2_CONF:=/etc/oxvault/softhsm2.conf}"
export SOFTHSM2_CONF

# By label, never by slot number: SoftHSM renumbers its slots when a token is initialised.
token_exists() {
    softhsm2-util --show-slots 2>/dev/null | awk -v want="$1" '
        $1 == "Label:" { sub(/^[[:space:]]*Label:[[:space:]]*/, ""); sub(/[[:space:]]+$/, ""); if ($0 == want) found = 1 }
        END { exit !found }'
}

case ${1:-} in
    serve | migrate)
        : "${OXVAULT_HSM_TOKEN_LABEL:?set OXVAULT_HSM_TOKEN_LABEL}"
        : "${OXVAULT_HSM_PIN:?set OXVAULT_HSM_PIN}"
        if ! token_exists "$OXVAULT_HSM_TOKEN_LABEL"; then
            : "${OXVAULT_HSM_SO_PIN:?set OXVAULT_HSM_SO_PIN to create the token}"
            echo "oxvault: creating SoftHSM token '$OXVAULT_HSM_TOKEN_LABEL'" >&2
            softhsm2-util --init-token --free --label "$OXVAULT_HSM_TOKEN_LABEL" \
                --pin "$OXVAULT_HSM_PIN" --so-pin "$OXVAULT_HSM_SO_PIN" >/dev/null
        fi
        exec oxvault-origin "$@"
        ;;
    *) exec "$@" ;;
esac
