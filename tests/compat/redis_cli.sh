#!/usr/bin/env bash
# redis-cli compatibility checks: run the real redis-cli (Debian's redis-tools 7.0.x) against
# a server that is already listening on 127.0.0.1:$HERALD_PORT, and compare its output with
# the exact text redis-cli prints for real Redis 7.0.
#
#   HERALD_PORT=6400 tests/compat/redis_cli.sh
#   HERALD_PORT=6400 HERALD_PASSWORD=pw tests/compat/redis_cli.sh   # server with --requirepass pw
#
# Every redis-cli call is bounded by `timeout`; background subscribers are killed by PID on
# exit. The last line is "redis-cli: N passed, N failed".
set -euo pipefail

SUITE="redis-cli"
PORT="${HERALD_PORT:?HERALD_PORT must name the port of a running server}"
CLI=(redis-cli -h 127.0.0.1 -p "$PORT")
if [[ -n "${HERALD_PASSWORD:-}" ]]; then
    CLI+=(--no-auth-warning -a "$HERALD_PASSWORD")
fi

TMP="$(mktemp -d)"
SUB_PIDS=()
PASSED=0
FAILED=0
FAILED_NAMES=()

cleanup() {
    local pid
    for pid in "${SUB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${SUB_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pass() {
    PASSED=$((PASSED + 1))
    echo "ok   - $1"
}

fail() {
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$1")
    echo "FAIL - $1"
    shift
    local detail
    for detail in "$@"; do
        printf '%s\n' "$detail" | sed 's/^/       /'
    done
}

# visible TEXT: TEXT with control characters escaped and line ends shown as $ (sed's l).
visible() {
    printf '%s\n' "$1" | sed -n 'l 0' | sed 's/^/  | /'
}

# expect_eq NAME EXPECTED ACTUAL: exact text comparison (trailing newlines are not significant,
# since $(...) strips them; everything else, \r included, is).
expect_eq() {
    local name="$1" expected="$2" actual="$3"
    if [[ "$expected" == "$actual" ]]; then
        pass "$name"
    else
        fail "$name" "expected:" "$(visible "$expected")" "actual:" "$(visible "$actual")"
    fi
}

# cli ARGS...: one bounded redis-cli call; stderr goes with stdout so errors are compared too.
cli() {
    timeout 10 "${CLI[@]}" "$@" 2>&1 || echo "<redis-cli exited with status $?>"
}

# start_sub NAME ARGS...: a redis-cli subscriber in the background, output into $TMP/NAME.out.
# Its PID is left in $LAST_PID.
start_sub() {
    local name="$1"
    shift
    timeout 30 "${CLI[@]}" "$@" >"$TMP/$name.out" 2>&1 &
    LAST_PID=$!
    SUB_PIDS+=("$LAST_PID")
}

stop_sub() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_until DESCRIPTION COMMAND...: poll (every 50 ms, at most 5 s) until COMMAND succeeds.
wait_until() {
    local what="$1"
    shift
    local i
    for ((i = 0; i < 100; i++)); do
        if "$@"; then
            return 0
        fi
        sleep 0.05
    done
    echo "       (gave up waiting for: $what)"
    return 1
}

numsub_is() { # numsub_is CHANNEL N
    [[ "$(cli PUBSUB NUMSUB "$1" | sed -n 2p)" == "$2" ]]
}
shardnumsub_is() {
    [[ "$(cli PUBSUB SHARDNUMSUB "$1" | sed -n 2p)" == "$2" ]]
}
numpat_is() {
    [[ "$(cli PUBSUB NUMPAT)" == "$1" ]]
}
lines_at_least() { # lines_at_least FILE N
    [[ -f "$1" && "$(wc -l <"$1")" -ge "$2" ]]
}

echo "== $SUITE suite against 127.0.0.1:$PORT ($(redis-cli --version))"

if [[ "$(cli PING)" != "PONG" ]]; then
    echo "$SUITE: the server on 127.0.0.1:$PORT does not answer PING: $(cli PING)"
    echo "$SUITE: 0 passed, 1 failed"
    exit 1
fi

# --- PING -------------------------------------------------------------------------------
expect_eq "PING -> PONG" "PONG" "$(cli PING)"
expect_eq "PING with argument echoes it" "hello world" "$(cli PING "hello world")"
expect_eq "PING --no-raw -> PONG (status reply)" "PONG" "$(cli --no-raw PING)"
expect_eq "PING over RESP3 (-3) -> PONG" "PONG" "$(cli -3 PING)"

# --- PUBLISH returns an integer ----------------------------------------------------------
expect_eq "PUBLISH to nobody -> 0" "0" "$(cli PUBLISH herald:nobody hi)"
expect_eq "PUBLISH --no-raw -> (integer) 0" "(integer) 0" "$(cli --no-raw PUBLISH herald:nobody hi)"
expect_eq "PUBLISH --csv -> 0" "0" "$(cli --csv PUBLISH herald:nobody hi)"
expect_eq "PUBLISH -3 --no-raw -> (integer) 0" "(integer) 0" "$(cli -3 --no-raw PUBLISH herald:nobody hi)"

# --- errors -------------------------------------------------------------------------------
expect_eq "SUBSCRIBE without channel -> arity error" \
    "ERR wrong number of arguments for 'subscribe' command" "$(cli SUBSCRIBE)"
expect_eq "PUBLISH with one argument -> arity error" \
    "ERR wrong number of arguments for 'publish' command" "$(cli PUBLISH onlyone)"
expect_eq "PUBSUB unknown subcommand -> error" \
    "ERR unknown subcommand 'nosuch'. Try PUBSUB HELP." "$(cli PUBSUB nosuch)"

# --- SUBSCRIBE, raw output (default when stdout is not a tty) -------------------------------
start_sub raw SUBSCRIBE c1 c2
RAW_PID=$LAST_PID
if wait_until "c1 and c2 subscribed" eval 'numsub_is c1 1 && numsub_is c2 1'; then
    expect_eq "PUBLISH c1 with one subscriber -> 1" "1" "$(cli PUBLISH c1 hello)"
    expect_eq "PUBLISH c2 with one subscriber -> 1" "1" "$(cli PUBLISH c2 "two words")"
    wait_until "12 lines of subscriber output" lines_at_least "$TMP/raw.out" 12 || true
    expect_eq "SUBSCRIBE c1 c2 raw output" \
        "$(printf '%s\n' subscribe c1 1 subscribe c2 2 message c1 hello message c2 "two words")" \
        "$(cat "$TMP/raw.out")"
else
    fail "SUBSCRIBE c1 c2: subscriber never showed up in PUBSUB NUMSUB" "$(cat "$TMP/raw.out")"
fi

# --- PSUBSCRIBE ---------------------------------------------------------------------------
start_sub pat PSUBSCRIBE 'news.*'
PAT_PID=$LAST_PID
if wait_until "pattern subscribed" numpat_is 1; then
    expect_eq "PUBLISH news.sport (matches news.*) -> 1" "1" "$(cli PUBLISH news.sport goal)"
    expect_eq "PUBLISH newsxsport (no match: . is literal) -> 0" "0" "$(cli PUBLISH newsxsport goal)"
    wait_until "7 lines of psubscribe output" lines_at_least "$TMP/pat.out" 7 || true
    expect_eq "PSUBSCRIBE news.* raw output" \
        "$(printf '%s\n' psubscribe 'news.*' 1 pmessage 'news.*' news.sport goal)" \
        "$(cat "$TMP/pat.out")"
else
    fail "PSUBSCRIBE news.*: PUBSUB NUMPAT never became 1" "$(cat "$TMP/pat.out")"
fi

# --- PUBSUB introspection while c1, c2 and news.* are held ---------------------------------
expect_eq "PUBSUB CHANNELS (sorted)" "$(printf '%s\n' c1 c2)" "$(cli PUBSUB CHANNELS | sort)"
expect_eq "PUBSUB CHANNELS c* (sorted)" "$(printf '%s\n' c1 c2)" "$(cli PUBSUB CHANNELS 'c*' | sort)"
expect_eq "PUBSUB CHANNELS with no match -> empty" "" "$(cli PUBSUB CHANNELS 'nomatch*')"
expect_eq "PUBSUB CHANNELS --no-raw with no match -> (empty array)" "(empty array)" \
    "$(cli --no-raw PUBSUB CHANNELS 'nomatch*')"
expect_eq "PUBSUB NUMSUB c1 c2 nochan raw" "$(printf '%s\n' c1 1 c2 1 nochan 0)" \
    "$(cli PUBSUB NUMSUB c1 c2 nochan)"
expect_eq "PUBSUB NUMSUB c1 nochan --no-raw" \
    "$(printf '%s\n' '1) "c1"' '2) (integer) 1' '3) "nochan"' '4) (integer) 0')" \
    "$(cli --no-raw PUBSUB NUMSUB c1 nochan)"
expect_eq "PUBSUB NUMSUB c1 nochan --csv" '"c1",1,"nochan",0' "$(cli --csv PUBSUB NUMSUB c1 nochan)"
expect_eq "PUBSUB NUMSUB c1 -3 --no-raw" "$(printf '%s\n' '1) "c1"' '2) (integer) 1')" \
    "$(cli -3 --no-raw PUBSUB NUMSUB c1)"
expect_eq "PUBSUB NUMSUB without channels --no-raw -> (empty array)" "(empty array)" \
    "$(cli --no-raw PUBSUB NUMSUB)"
expect_eq "PUBSUB NUMPAT -> 1" "1" "$(cli PUBSUB NUMPAT)"
expect_eq "PUBSUB NUMPAT --no-raw -> (integer) 1" "(integer) 1" "$(cli --no-raw PUBSUB NUMPAT)"

# --- a channel subscriber and a pattern subscriber both get a message ---------------------
start_sub exact SUBSCRIBE news.weather
EXACT_PID=$LAST_PID
if wait_until "news.weather subscribed" numsub_is news.weather 1; then
    expect_eq "PUBLISH to channel + matching pattern (two clients) -> 2" "2" \
        "$(cli PUBLISH news.weather rain)"
    wait_until "pattern subscriber got news.weather" lines_at_least "$TMP/pat.out" 11 || true
    wait_until "channel subscriber got news.weather" lines_at_least "$TMP/exact.out" 6 || true
    expect_eq "channel subscriber output" \
        "$(printf '%s\n' subscribe news.weather 1 message news.weather rain)" "$(cat "$TMP/exact.out")"
    expect_eq "pattern subscriber output" \
        "$(printf '%s\n' psubscribe 'news.*' 1 pmessage 'news.*' news.sport goal \
            pmessage 'news.*' news.weather rain)" "$(cat "$TMP/pat.out")"
else
    fail "SUBSCRIBE news.weather: subscriber never showed up" "$(cat "$TMP/exact.out")"
fi
stop_sub "$EXACT_PID"

# --- disconnecting subscribers drops their subscriptions -------------------------------------
stop_sub "$RAW_PID"
stop_sub "$PAT_PID"
if wait_until "subscriptions gone after disconnect" eval 'numsub_is c1 0 && numsub_is news.weather 0 && numpat_is 0'; then
    pass "subscriptions dropped when the subscriber disconnects"
else
    fail "subscriptions dropped when the subscriber disconnects" \
        "NUMSUB: $(cli PUBSUB NUMSUB c1 c2 news.weather | tr '\n' ' ') NUMPAT: $(cli PUBSUB NUMPAT)"
fi
expect_eq "PUBSUB CHANNELS after disconnect -> empty" "" "$(cli PUBSUB CHANNELS)"
expect_eq "PUBLISH after the subscriber left -> 0" "0" "$(cli PUBLISH c1 late)"

# --- SUBSCRIBE --no-raw and --csv output formats, binary-safe payload --------------------------
start_sub noraw --no-raw SUBSCRIBE fmt
NORAW_PID=$LAST_PID
start_sub csv --csv SUBSCRIBE fmt
CSV_PID=$LAST_PID
if wait_until "two subscribers on fmt" numsub_is fmt 2; then
    expect_eq "PUBLISH fmt with two subscribers -> 2" "2" "$(cli PUBLISH fmt "$(printf 'l1\nl2\t\001')")"
    wait_until "--no-raw output" lines_at_least "$TMP/noraw.out" 7 || true
    wait_until "--csv output" lines_at_least "$TMP/csv.out" 3 || true
    expect_eq "SUBSCRIBE --no-raw output (payload with newline, tab, \\x01)" \
        "$(printf '%s\n' 'Reading messages... (press Ctrl-C to quit)' '1) "subscribe"' '2) "fmt"' \
            '3) (integer) 1' '1) "message"' '2) "fmt"' '3) "l1\nl2\t\x01"')" \
        "$(cat "$TMP/noraw.out")"
    expect_eq "SUBSCRIBE --csv output" \
        "$(printf '%s\n' 'Reading messages... (press Ctrl-C to quit)' '"subscribe","fmt",1' \
            '"message","fmt","l1\nl2\t\x01"')" \
        "$(cat "$TMP/csv.out")"
else
    fail "SUBSCRIBE --no-raw/--csv: subscribers never showed up" "$(cat "$TMP/noraw.out" "$TMP/csv.out")"
fi
stop_sub "$NORAW_PID"
stop_sub "$CSV_PID"

# --- RESP3 subscriber (-3: HELLO 3, confirmations and messages are push frames) --------------
start_sub resp3 -3 SUBSCRIBE r3
R3_PID=$LAST_PID
if wait_until "RESP3 subscriber on r3" numsub_is r3 1; then
    expect_eq "PUBLISH r3 -> 1" "1" "$(cli PUBLISH r3 pushed)"
    wait_until "RESP3 output" lines_at_least "$TMP/resp3.out" 6 || true
    expect_eq "SUBSCRIBE over RESP3 raw output" "$(printf '%s\n' subscribe r3 1 message r3 pushed)" \
        "$(cat "$TMP/resp3.out")"
else
    fail "SUBSCRIBE over RESP3: subscriber never showed up" "$(cat "$TMP/resp3.out")"
fi
stop_sub "$R3_PID"

# --- SSUBSCRIBE / SPUBLISH / PUBSUB SHARD* --------------------------------------------------
start_sub shard SSUBSCRIBE s1
SHARD_PID=$LAST_PID
if wait_until "shard subscriber on s1" shardnumsub_is s1 1; then
    expect_eq "PUBSUB SHARDCHANNELS -> s1" "s1" "$(cli PUBSUB SHARDCHANNELS)"
    expect_eq "PUBSUB SHARDNUMSUB s1 nochan" "$(printf '%s\n' s1 1 nochan 0)" \
        "$(cli PUBSUB SHARDNUMSUB s1 nochan)"
    expect_eq "PUBSUB NUMSUB s1 (other namespace) -> 0" "$(printf '%s\n' s1 0)" "$(cli PUBSUB NUMSUB s1)"
    expect_eq "PUBLISH s1 does not reach the shard subscriber -> 0" "0" "$(cli PUBLISH s1 nope)"
    expect_eq "SPUBLISH s1 -> 1" "1" "$(cli SPUBLISH s1 hi)"
    wait_until "SSUBSCRIBE output" lines_at_least "$TMP/shard.out" 6 || true
    expect_eq "SSUBSCRIBE s1 raw output" "$(printf '%s\n' ssubscribe s1 1 smessage s1 hi)" \
        "$(cat "$TMP/shard.out")"
else
    fail "SSUBSCRIBE s1: subscriber never showed up in PUBSUB SHARDNUMSUB" "$(cat "$TMP/shard.out")"
fi
stop_sub "$SHARD_PID"

# --- INFO server --------------------------------------------------------------------------
INFO="$(cli INFO server)"
if [[ "$(printf '%s\n' "$INFO" | head -n 1)" == $'# Server\r' ]]; then
    pass "INFO server starts with '# Server' (CRLF lines)"
else
    fail "INFO server starts with '# Server' (CRLF lines)" "first line:" "$(visible "$(printf '%s\n' "$INFO" | head -n 1)")"
fi
VERSION_LINE="$(printf '%s\n' "$INFO" | tr -d '\r' | grep '^redis_version:' || true)"
if [[ "$VERSION_LINE" =~ ^redis_version:([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 7)); then
    pass "INFO server has redis_version >= 7 ($VERSION_LINE)"
else
    fail "INFO server has redis_version >= 7 (x.y.z)" "got: '${VERSION_LINE:-<no redis_version line>}'"
fi

echo
if ((FAILED > 0)); then
    echo "$SUITE: failed checks:"
    printf '  - %s\n' "${FAILED_NAMES[@]}"
fi
echo "$SUITE: $PASSED passed, $FAILED failed"
((FAILED == 0))
