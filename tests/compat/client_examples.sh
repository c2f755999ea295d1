#!/usr/bin/env bash
# Runs every herald-client example (crates/herald-client/examples/): embedded, and when
# HERALD_PORT is set also against the server on 127.0.0.1:$HERALD_PORT (HERALD_URL). Each
# example checks what it receives and exits non-zero when something is missing.
# Prints "client-examples: N passed, M failed"; exit status 0 only when all passed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
EXAMPLES=(basic_pubsub event_bus notifications)
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples"

cargo build -q -p herald-client --examples || { echo "client-examples: 0 passed, 1 failed"; exit 1; }
passed=0
failed=0
for example in "${EXAMPLES[@]}"; do
    for target in embedded server; do
        url=""
        if [[ "$target" == server ]]; then
            [[ -n "${HERALD_PORT:-}" ]] || continue
            url="redis://127.0.0.1:$HERALD_PORT/"
        fi
        echo "--- $example ($target)"
        if env ${url:+HERALD_URL="$url"} timeout 60 "$BIN_DIR/$example"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "client-examples: FAILED $example ($target)"
        fi
    done
done
echo "client-examples: $passed passed, $failed failed"
((failed == 0))
