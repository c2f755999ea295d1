#!/usr/bin/env bash
# redis-py's own tests for the keyspace commands Herald has (strings, expiry, keys, lists
# incl. blocking, hashes, SCAN, MULTI/EXEC/WATCH pipelines, MONITOR), from the redis-py 8.1.0 sdist,
# against a server already listening on 127.0.0.1:$HERALD_PORT.
#
#   HERALD_PORT=6400 tests/compat/redis_py_keyspace.sh 2|3 [pytest args...]
#
# Tests that need commands Herald lacks are listed, with the reason, in
# redis_py_keyspace.deselect and dropped by the herald_deselect plugin (exact ids).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${HERALD_PORT:?HERALD_PORT must name the port of a running server}"
PROTOCOL="${1:?usage: redis_py_keyspace.sh 2|3 [pytest args...]}"
shift
case "$PROTOCOL" in
2 | 3) ;;
*)
    echo "redis-py keyspace: protocol must be 2 or 3, not '$PROTOCOL'" >&2
    exit 2
    ;;
esac

VENV="${HERALD_VENV:-$ROOT/.venv}"
SRC="${REDIS_PY_SRC:-$ROOT/.cache/redis-py-8.1.0}"
if [[ ! -x "$VENV/bin/python" || ! -f "$SRC/tests/test_commands.py" ]]; then
    echo "redis-py keyspace: missing $VENV or $SRC; run scripts/test (it installs both)" >&2
    exit 2
fi

SELECTION="lpush or rpush or lpop or rpop or lrange or llen or lindex or lset or ltrim or lrem
 or linsert or lpos or lmove or lmpop or blpop or brpop or blmove or brpoplpush or blmpop
 or hset or hget or hdel or hexists or hincr or hkeys or hlen or hmget or hmset or hvals
 or hstrlen or hrandfield or hscan or test_get or test_set or test_incr or test_decr
 or test_append or test_strlen or test_getrange or test_setrange or expire or ttl or persist
 or rename or test_exists or test_keys or randomkey or dbsize or test_move or swapdb
 or test_delete or unlink or mget or mset or getex or getdel or getset or psetex or setex
 or setnx or test_scan or test_copy or test_type"

URL="redis://127.0.0.1:$PORT/0"
cd "$SRC"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$ROOT/tests/compat${PYTHONPATH:+:$PYTHONPATH}"
export HERALD_DESELECT="$ROOT/tests/compat/redis_py_keyspace.deselect"
"$VENV/bin/python" -m pytest \
    tests/test_commands.py tests/test_asyncio/test_commands.py -k "$(tr '\n' ' ' <<<"$SELECTION")" \
    --redis-url="$URL" --redis-mod-url="$URL" --protocol="$PROTOCOL" \
    -m 'not onlycluster and not fixed_client and not multidb_integration' \
    -p herald_deselect -p no:cacheprovider -W ignore::pytest.PytestConfigWarning -q -rfE "$@"
exec "$VENV/bin/python" -m pytest \
    tests/test_pipeline.py tests/test_asyncio/test_pipeline.py \
    tests/test_monitor.py tests/test_asyncio/test_monitor.py \
    --redis-url="$URL" --redis-mod-url="$URL" --protocol="$PROTOCOL" \
    -m 'not onlycluster and not fixed_client and not multidb_integration' \
    -p herald_deselect -p no:cacheprovider -W ignore::pytest.PytestConfigWarning -q -rfE "$@"
