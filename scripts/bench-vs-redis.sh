#!/usr/bin/env bash
# scripts/bench-vs-redis.sh: Herald against Debian's redis-server in the same run, and the
# pub/sub section of docs/PERFORMANCE.md (between its BEGIN/END bench-vs-redis markers)
# plus docs/bench-vs-redis.svg, both written from what this run measured.
#
#   scripts/bench-vs-redis.sh            every scenario, pinned then unpinned, then the
#                                        saturated and fixed-rate ones on two workers (~6 min)
#   scripts/bench-vs-redis.sh --quick    the same with small sizes (a minute; to check the script)
#   scripts/bench-vs-redis.sh --no-doc   measure only; results stay in .cache/bench-vs-redis/
#
# Each scenario gets a fresh Herald (target/release/herald, built here) and a fresh
# redis-server on free 127.0.0.1 ports; `herald bench --compare` interleaves them A B A B.
# pinned: servers on core 0, load generator on core 1 (taskset). unpinned: no pinning.
# two workers: unpinned, Herald with --threads 2.
# Installs redis-server (apt-get) only when it is missing. Not run by CI: too noisy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
WRITE_DOC=1
while (($#)); do
    case "$1" in
    --quick) QUICK=1 ;;
    --no-doc) WRITE_DOC=0 ;;
    -h | --help)
        sed -n '2,/^[^#]/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "bench-vs-redis: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null
fi
cargo build --release -p herald-cli
HERALD="$ROOT/target/release/herald"
OUT="$ROOT/.cache/bench-vs-redis"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
COMMANDS="$OUT/commands.txt"
MACHINE="$OUT/machine.txt"
: >"$RESULTS"
: >"$COMMANDS"
# 10 000 subscriber connections on each side of loopback.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Sizes: messages per publisher, chosen so each run lasts about a second or more on this
# machine (CPU time is read in 10 ms ticks, so shorter runs make the CPU ratios noise).
# Rounds per server for the saturated fan-outs, and for the fixed rate, whose p99 moves
# most from round to round (the others: 3).
ROUNDS_KEY=5 ROUNDS_LAT=9
if ((QUICK)); then
    ROUNDS_KEY=3 ROUNDS_LAT=3
    FAN2X20=5000 FAN1X200=500 FAN1X1=50000 LAT_SECS=2 PAT10=5000 PAT10K=300 PAT100K=50
    PAT_LONG=20000 PUBONLY=2000 RB_N=100000 CONNS=2000
else
    FAN2X20=200000 FAN1X200=25000 FAN1X1=300000 LAT_SECS=5 PAT10=20000 PAT10K=3000 PAT100K=300
    PAT_LONG=200000 PUBONLY=60000 RB_N=1000000 CONNS=10000
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SERVER_PIN=() GEN_PIN=() MODE="" HERALD_ARGS=()
HPID="" RPID="" HPORT="" RPORT=""

wait_ready() {
    for _ in $(seq 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "bench-vs-redis: server on port $1 did not start" >&2
    return 1
}

start_servers() {
    HPORT=$(free_port)
    RPORT=$(free_port)
    "${SERVER_PIN[@]}" "$HERALD" server --port "$HPORT" --maxclients 100000 "${HERALD_ARGS[@]}" \
        >"$OUT/herald.log" 2>&1 &
    HPID=$!
    "${SERVER_PIN[@]}" redis-server --port "$RPORT" --save '' --appendonly no --maxclients 100000 \
        >"$OUT/redis.log" 2>&1 &
    RPID=$!
    wait_ready "$HPORT"
    wait_ready "$RPORT"
}

stop_servers() {
    for pid in "$HPID" "$RPID"; do
        [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    done
    HPID="" RPID=""
}
trap stop_servers EXIT

FAILURES=()
# A run that lost or reordered messages (exit 1) is kept and reported, not fatal.
failed() {
    FAILURES+=("$MODE $1")
    echo "bench-vs-redis: $MODE $1: herald bench reported a failure (see above)" >&2
}

# tag LABEL [IMPL]: adds label, mode and impl (from the port, or IMPL) to JSON lines.
tag() {
    python3 -c '
import json, sys
label, mode, hport, impl = sys.argv[1:5]
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    r.update(label=label, mode=mode)
    r["impl"] = impl or ("herald" if r.get("server", "").endswith(":" + hport) else "redis")
    print(json.dumps(r))' "$1" "$MODE" "$HPORT" "${2:-}" >>"$RESULTS"
}

note() {
    local line="$*"
    line="${line//$HPORT/\$HERALD_PORT}"
    line="${line//$RPORT/\$REDIS_PORT}"
    line="${line//$HERALD/target/release/herald}"
    echo "$line" | sed -E -f "$ROOT/scripts/bench-vs-redis.sed" >>"$COMMANDS"
}

# compare LABEL SCENARIO ARGS...: one `herald bench --compare` run on fresh servers.
compare() {
    local label=$1 scenario=$2
    shift 2
    start_servers
    local cmd=("${GEN_PIN[@]}" "$HERALD" bench "$scenario" --addr "127.0.0.1:$HPORT" --pid "$HPID"
        --compare "127.0.0.1:$RPORT" --compare-pid "$RPID" --json "$@")
    note "${cmd[*]}"
    echo "== $MODE $label" >&2
    "${cmd[@]}" | tag "$label" || failed "$label"
    stop_servers
}

# herald_only LABEL SCENARIO ARGS...: Herald alone (targets that compare Herald with itself).
herald_only() {
    local label=$1 scenario=$2
    shift 2
    start_servers
    local cmd=("${GEN_PIN[@]}" "$HERALD" bench "$scenario" --addr "127.0.0.1:$HPORT" --pid "$HPID" --json "$@")
    note "${cmd[*]}"
    echo "== $MODE $label" >&2
    "${cmd[@]}" | tag "$label" herald || failed "$label"
    stop_servers
}

# churn: 10-pattern publish rate on fresh servers, 30 000 patterns added and removed
# (three rounds of 10 000), the 10-pattern rate again, on the same two servers.
churn() {
    start_servers
    local few=(--subscribers 1 --patterns 10 --messages "$PAT10")
    local base=("${GEN_PIN[@]}" "$HERALD" bench patterns --addr "127.0.0.1:$HPORT" --pid "$HPID"
        --compare "127.0.0.1:$RPORT" --compare-pid "$RPID" --json)
    echo "== $MODE churn" >&2
    note "${base[*]} ${few[*]}   # fresh"
    "${base[@]}" "${few[@]}" | tag churn-before || failed churn-before
    note "${base[*]} --subscribers 10 --patterns 1000 --messages 100   # add and remove 10 000 patterns, 3 rounds"
    "${base[@]}" --subscribers 10 --patterns 1000 --messages 100 >/dev/null || failed churn
    note "${base[*]} ${few[*]}   # after"
    "${base[@]}" "${few[@]}" | tag churn-after || failed churn-after
    stop_servers
}

# cpu_ticks PID: user + system time of a process so far, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# redis_benchmark: Redis's own tool, PUBLISH with no subscribers, interleaved rounds; with
# each server's CPU per request, since the tool, one thread, saturates its own core.
redis_benchmark() {
    start_servers
    echo "== $MODE redis-benchmark" >&2
    local tick_ns=$((1000000000 / $(getconf CLK_TCK)))
    for round in 1 2 3 4 5; do
        for impl in herald redis; do
            local port=$HPORT pid=$HPID
            [[ $impl == redis ]] && port=$RPORT pid=$RPID
            local cmd=("${GEN_PIN[@]}" redis-benchmark -p "$port" -P 16 -c 50 -n "$RB_N" -q
                PUBLISH bench:channel "$(printf 'x%.0s' $(seq 64))")
            ((round == 1)) && note "${cmd[*]:0:${#cmd[@]}-1} <64-byte payload>"
            local rps before after
            before=$(cpu_ticks "$pid")
            rps=$("${cmd[@]}" 2>/dev/null | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
            after=$(cpu_ticks "$pid")
            local cpu_ns=$(((after - before) * tick_ns / RB_N))
            echo "{\"label\": \"redis-benchmark\", \"mode\": \"$MODE\", \"impl\": \"$impl\", \"round\": $round, \"rps\": ${rps:-0}, \"server_cpu_ns_per_request\": $cpu_ns}" >>"$RESULTS"
        done
    done
    stop_servers
}

# connections: RSS is read for the --addr server only, so each server gets its own run.
connections() {
    echo "== $MODE connections" >&2
    for impl in herald redis; do
        start_servers
        local port=$HPORT pid=$HPID
        [[ $impl == redis ]] && port=$RPORT pid=$RPID
        local cmd=("${GEN_PIN[@]}" "$HERALD" bench connections --addr "127.0.0.1:$port" --server-pid "$pid"
            --pid "$pid" --subscribers "$CONNS" --messages 10 --timeout-secs 60 --json)
        note "${cmd[*]}"
        "${cmd[@]}" | tag connections-10k "$impl" || failed "connections $impl"
        stop_servers
    done
}

run_mode() {
    MODE=$1
    HERALD_ARGS=()
    case $MODE in
    pinned) SERVER_PIN=(taskset -c 0) GEN_PIN=(taskset -c 1) ;;
    unpinned) SERVER_PIN=(env) GEN_PIN=(env) ;;
    # Herald's runtime on both cores (its default here is one worker per CPU but one).
    "two workers") SERVER_PIN=(env) GEN_PIN=(env) HERALD_ARGS=(--threads 2) ;;
    esac
    {
        echo "# $MODE: a fresh pair of servers for every line below"
        echo "${SERVER_PIN[*]} target/release/herald server --port \$HERALD_PORT --maxclients 100000 ${HERALD_ARGS[*]}" | sed -E 's/ +$//; s/$/ \&/'
        echo "${SERVER_PIN[*]} redis-server --port \$REDIS_PORT --save '' --appendonly no --maxclients 100000 &"
    } | sed -E 's/^env //' >>"$COMMANDS"
    # The targets' hardest figures (CPU per delivery saturated, p99 at a fixed rate) move
    # most from round to round on a shared VM: more rounds for their medians.
    compare fanout-2x20 fanout --publishers 2 --subscribers 20 --messages "$FAN2X20" --rounds "$ROUNDS_KEY"
    compare fanout-1x200 fanout --publishers 1 --subscribers 200 --messages "$FAN1X200" --rounds "$ROUNDS_KEY"
    if [[ $MODE == "two workers" ]]; then
        # What a second worker does where the first one is saturated or idle.
        compare latency-10k latency --rate 10000 --duration "$LAT_SECS" --subscribers 20 --rounds "$ROUNDS_LAT"
        compare publish-only fanout --publishers 50 --subscribers 0 --messages "$PUBONLY"
        return
    fi
    compare fanout-1x1 fanout --publishers 1 --subscribers 1 --messages "$FAN1X1"
    compare latency-10k latency --rate 10000 --duration "$LAT_SECS" --subscribers 20 --rounds "$ROUNDS_LAT"
    compare patterns-10 patterns --subscribers 10 --patterns 1 --messages "$PAT10"
    compare patterns-10k patterns --subscribers 10 --patterns 1000 --messages "$PAT10K"
    compare patterns-100k patterns --subscribers 10 --patterns 10000 --messages "$PAT100K" --timeout-secs 60
    herald_only patterns-10-long patterns --subscribers 10 --patterns 1 --messages "$PAT_LONG"
    herald_only patterns-100k-long patterns --subscribers 10 --patterns 10000 --messages "$PAT_LONG"
    churn
    compare publish-only fanout --publishers 50 --subscribers 0 --messages "$PUBONLY"
    redis_benchmark
    connections
}

{
    echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu:       $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
    echo "memory:    $(free -g | awk '/^Mem:/ {print $2 " GB"}')"
    echo "kernel:    $(uname -sr)"
    echo "redis:     $(redis-server --version | cut -d' ' -f3-4)"
    echo "herald:    $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (uncommitted changes)')"
    echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) at start (other work on the machine)"
} >"$MACHINE"

run_mode pinned
run_mode unpinned
run_mode "two workers"
echo "load avg:  $(cut -d' ' -f1-3 /proc/loadavg) at the end" >>"$MACHINE"

if ((${#FAILURES[@]})); then
    echo "bench-vs-redis: failed runs: ${FAILURES[*]}" >&2
fi
if ((WRITE_DOC)); then
    python3 scripts/bench-report.py "$RESULTS" "$MACHINE" "$COMMANDS" docs/PERFORMANCE.md docs/bench-vs-redis.svg
    echo "bench-vs-redis: wrote docs/PERFORMANCE.md and docs/bench-vs-redis.svg" >&2
fi
