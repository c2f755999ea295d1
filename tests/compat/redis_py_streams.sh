#!/usr/bin/env bash
# redis-py's own stream tests (XADD ... XINFO, consumer groups), from the redis-py 8.1.0
# sdist, against a server already listening on 127.0.0.1:$HERALD_PORT.
#
#   HERALD_PORT=6400 tests/compat/redis_py_streams.sh 2|3 [pytest args...]
#
# Tests Herald deselects are listed, with the reason, in redis_py_streams.deselect and
# dropped by the herald_deselect plugin (exact ids).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${HERALD_PORT:?HERALD_PORT must name the port of a running server}"
PROTOCOL="${1:?usage: redis_py_streams.sh 2|3 [pytest args...]}"
shift
case "$PROTOCOL" in
2 | 3) ;;
*)
    echo "redis-py streams: protocol must be 2 or 3, not '$PROTOCOL'" >&2
    exit 2
    ;;
esac

VENV="${HERALD_VENV:-$ROOT/.venv}"
SRC="${REDIS_PY_SRC:-$ROOT/.cache/redis-py-8.1.0}"
if [[ ! -x "$VENV/bin/python" || ! -f "$SRC/tests/test_commands.py" ]]; then
    echo "redis-py streams: missing $VENV or $SRC; run scripts/test (it installs both)" >&2
    exit 2
fi

# The selection the stream issue names, for the sync and the asyncio client.
SELECTION="xadd or xrange or xread or xgroup or xack or xpending or xclaim or xautoclaim
 or xinfo or xtrim or xdel or xlen or xsetid"

URL="redis://127.0.0.1:$PORT/0"
cd "$SRC"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$ROOT/tests/compat${PYTHONPATH:+:$PYTHONPATH}"
export HERALD_DESELECT="$ROOT/tests/compat/redis_py_streams.deselect"
exec "$VENV/bin/python" -m pytest \
    tests/test_commands.py tests/test_asyncio/test_commands.py -k "$(tr '\n' ' ' <<<"$SELECTION")" \
    --redis-url="$URL" --redis-mod-url="$URL" --protocol="$PROTOCOL" \
    -m 'not onlycluster and not fixed_client and not multidb_integration' \
    -p herald_deselect -p no:cacheprovider -W ignore::pytest.PytestConfigWarning -q -rfE "$@"
