#!/usr/bin/env bash
# scripts/measure-aof.sh: write throughput with the append-only file on, Herald against
# redis-server, on this machine, in the same run, interleaved (Herald, Redis, Herald, ...).
#
#   scripts/measure-aof.sh            ROUNDS=3 N=200000 by default
#   ONLY=always scripts/measure-aof.sh   only the scenarios whose name contains "always"
#
# Scenarios (redis-benchmark, 50 clients):
#   everysec, pipelined 16 deep: SET, LPUSH, XADD
#   always, one command in flight per client (group commit is what makes this fast)
#   reference: SET pipelined with the file off, the ceiling the persistence path works under
# Each scenario gets fresh servers and fresh files. Which server runs first alternates
# from round to round, so neither always meets the machine in the same state (page
# cache, a neighbour's build starting). Prints a Markdown table of requests per second
# with the ratio Herald / Redis of each round (median, min-max over the rounds), and the
# CPU time each server spent per request (all its threads, from /proc/PID/stat): on a
# shared machine that figure moves much less than throughput does.
# Needs redis-server and redis-benchmark (Debian: redis-server, redis-tools) and builds
# target/release/herald when HERALD_BIN is not given.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
ONLY="${ONLY:-}"
N="${N:-200000}"
HERALD="${HERALD_BIN:-$ROOT/target/release/herald}"
WORK="$(mktemp -d)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in redis-server redis-benchmark redis-cli; do
    command -v "$tool" >/dev/null || { echo "measure-aof: $tool is missing (apt-get install redis-server redis-tools)" >&2; exit 2; }
done
if [[ -z "${HERALD_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --quiet -p herald-cli)
fi

# Keep the HTTP gateway (when this build has one) off: only the RESP port is measured.
HERALD_EXTRA=()
if "$HERALD" server --help 2>/dev/null | grep -q -- '--no-http'; then
    HERALD_EXTRA=(--no-http)
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ready() {
    for _ in $(seq 100); do
        redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "measure-aof: server on port $1 did not start" >&2
    exit 1
}

# start SERVER POLICY: prints the port; the pid goes to PIDS (through a file, since this
# runs in a command substitution). POLICY "off" starts the server without the file.
start() {
    local server="$1" policy="$2" port dir appendonly=yes
    port="$(free_port)"
    dir="$WORK/$server-$port"
    mkdir -p "$dir"
    if [[ "$policy" == off ]]; then
        appendonly=no
        policy=everysec
    fi
    if [[ "$server" == herald ]]; then
        RUST_LOG=warn "$HERALD" server --port "$port" --appendonly "$appendonly" --appendfsync "$policy" \
            --dir "$dir" "${HERALD_EXTRA[@]}" >/dev/null 2>&1 &
    else
        redis-server --port "$port" --appendonly "$appendonly" --appendfsync "$policy" --dir "$dir" \
            --save '' --aof-use-rdb-preamble no --logfile "$dir/log" >/dev/null 2>&1 &
    fi
    echo $! >"$WORK/pid"
    wait_ready "$port"
    echo "$port"
}

# rate PORT ARGS...: requests per second reported by redis-benchmark --csv.
rate() {
    local port="$1"
    shift
    redis-benchmark -p "$port" --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}

# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS_PER_SECOND="$(getconf CLK_TCK)"

scenario() { # scenario NAME POLICY REQUESTS BENCHMARK-ARGS...
    local name="$1" policy="$2" requests="$3"
    shift 3
    [[ -z "$ONLY" || "$name" == *"$ONLY"* ]] || return 0
    local herald_rates=() redis_rates=() ratios=() herald_cpu=() redis_cpu=()
    for ((round = 1; round <= ROUNDS; round++)); do
        local order=(herald redis)
        ((round % 2 == 0)) && order=(redis herald)
        local -A results=() cpu=()
        for server in "${order[@]}"; do
            local port pid before
            port="$(start "$server" "$policy")"
            pid="$(cat "$WORK/pid")"
            PIDS+=("$pid")
            before="$(cpu_ticks "$pid")"
            results[$server]="$(rate "$port" -n "$requests" "$@")"
            cpu[$server]="$(( ($(cpu_ticks "$pid") - before) * 1000000 / TICKS_PER_SECOND ))"
            kill "$pid"
            wait "$pid" 2>/dev/null || true
        done
        herald_rates+=("${results[herald]}")
        redis_rates+=("${results[redis]}")
        herald_cpu+=("$(python3 -c "print(${cpu[herald]} / $requests)")")
        redis_cpu+=("$(python3 -c "print(${cpu[redis]} / $requests)")")
        ratios+=("$(python3 -c "print(f'{${results[herald]} / ${results[redis]}:.2f}')")")
        unset results cpu
    done
    python3 - "$name" "${herald_rates[*]}" "${redis_rates[*]}" "${ratios[*]}" \
        "${herald_cpu[*]}" "${redis_cpu[*]}" <<'EOF'
import statistics, sys
name = sys.argv[1]
herald, redis, ratios, herald_cpu, redis_cpu = [list(map(float, a.split())) for a in sys.argv[2:]]
med = statistics.median
print(f"| {name} | {med(herald):,.0f} | {med(redis):,.0f} | "
      f"{med(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) | "
      f"{med(herald_cpu):.1f} / {med(redis_cpu):.1f} |")
EOF
}

echo "Machine: $(nproc) cores, $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg); redis-server $(redis-server --version | grep -o 'v=[0-9.]*'); $ROUNDS rounds, interleaved"
echo
echo "| scenario (50 clients) | Herald req/s | Redis req/s | Herald / Redis, median (min-max) | CPU µs per request, Herald / Redis |"
echo "|---|---:|---:|---:|---:|"
scenario "SET, everysec, pipeline 16" everysec "$N" -c 50 -P 16 -t set
scenario "LPUSH, everysec, pipeline 16" everysec "$N" -c 50 -P 16 -t lpush
scenario "XADD, everysec, pipeline 16" everysec "$N" -c 50 -P 16 XADD bench:stream '*' field value
scenario "SET, always, no pipelining" always "$((N / 4))" -c 50 -P 1 -t set
scenario "LPUSH, always, no pipelining" always "$((N / 4))" -c 50 -P 1 -t lpush
scenario "reference: SET, no AOF, pipeline 16" off "$N" -c 50 -P 16 -t set
