#!/usr/bin/env bash
# redis-py's own pub/sub tests (from the redis-py 8.1.0 source distribution) against a server
# that is already listening on 127.0.0.1:$HERALD_PORT.
#
#   HERALD_PORT=6400 tests/compat/redis_py.sh 2      # RESP2 clients
#   HERALD_PORT=6400 tests/compat/redis_py.sh 3      # RESP3 clients (HELLO 3)
#   HERALD_PORT=6400 tests/compat/redis_py.sh 3 -k sharded -x    # extra pytest arguments
#
# Needs what scripts/test installs: the venv .venv/ (tests/compat/requirements.txt) and the
# sdist unpacked in .cache/redis-py-8.1.0/. Run from redis-py's source root so that its
# pyproject.toml [tool.pytest.ini_options] applies (asyncio_mode=auto, timeout=30 per test).
#
# What the conftest does at session start (pytest_sessionstart), on --redis-url:
#   HELLO 3, CLIENT MAINT_NOTIFICATIONS ON moving-endpoint-type internal-ip (an error is
#   tolerated), CLIENT SETINFO LIB-NAME/LIB-VER (errors tolerated), INFO (reads redis_version,
#   arch_bits, cluster_enabled; redis_version decides the skip_if_server_version_lt markers),
#   DPING (an error means "not Redis Enterprise"); then the same on --redis-mod-url (we point it
#   at the same server so it never probes localhost:6479; a missing "modules" key is tolerated).
# TestPubSubRedisDown expects nothing to listen on localhost:6390.
#
# Baseline against Debian's redis-server 7.0.15 (HERALD_TEST_TARGET=redis scripts/test), per
# protocol: 252 passed, 0 failed, 0 skipped, 55 deselected (17 onlycluster + 38 fixed_client;
# no test carries multidb_integration), about 70 s each.
# - Failures: none. The one known way to fail is an occupied localhost:6390:
#   TestPubSubRedisDown::test_channel_subscribe (sync) and its async twins (single, pool)
#   connect there and expect ConnectionError. scripts/test warns when 6390 is open.
# - Skips: none. The version markers in these files ask for at most 7.0.0
#   (skip_if_server_version_lt "7.0.0" gates 17 sync + 4x2 async sharded-pub/sub tests; 2.8.0
#   and 3.0.0 gate a few more), so a server reporting redis_version >= 7.0.0 runs them all.
#   skip_if_redis_enterprise (TestPubSubConnectionKilled) skips only if DPING succeeds.
#   Two asyncio tests are skipped on Python < 3.8, one sync test on PyPy.
# - Slowest tests: TestPubSubRedisDown (~4 s: connection retries), the
#   ignore_*_subscribe_messages tests (~3 s), a few blocking-listen tests (~2 s).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORT="${HERALD_PORT:?HERALD_PORT must name the port of a running server}"
PROTOCOL="${1:?usage: redis_py.sh 2|3 [pytest args...]}"
shift
case "$PROTOCOL" in
2 | 3) ;;
*)
    echo "redis-py: protocol must be 2 or 3, not '$PROTOCOL'" >&2
    exit 2
    ;;
esac

VENV="${HERALD_VENV:-$ROOT/.venv}"
SRC="${REDIS_PY_SRC:-$ROOT/.cache/redis-py-8.1.0}"
if [[ ! -x "$VENV/bin/python" || ! -f "$SRC/tests/test_pubsub.py" ]]; then
    echo "redis-py: missing $VENV or $SRC; run scripts/test (it installs both)" >&2
    exit 2
fi

# No password: several upstream tests build their own clients from host and port only.
URL="redis://127.0.0.1:$PORT/0"

cd "$SRC"
export PYTHONDONTWRITEBYTECODE=1
exec "$VENV/bin/python" -m pytest \
    tests/test_pubsub.py tests/test_asyncio/test_pubsub.py \
    --redis-url="$URL" --redis-mod-url="$URL" --protocol="$PROTOCOL" \
    -m 'not onlycluster and not fixed_client and not multidb_integration' \
    -p no:cacheprovider -W ignore::pytest.PytestConfigWarning \
    -q -rfEs "$@"
