#!/usr/bin/env bash
# scripts/measure-io-uring.sh: direct writes through io_uring against one writev per
# subscriber against redis-server, in the same run (docs/PERFORMANCE.md, "Pub/sub: what
# limits the targets still missed").
#
#   scripts/measure-io-uring.sh syscalls  pin|nopin [ROUNDS]   perf stat around fanout 1->20, pipeline 1
#   scripts/measure-io-uring.sh latency   pin|nopin [RUNS]     latency --rate 10000 --subscribers 20 --compare redis
#   scripts/measure-io-uring.sh saturated pin|nopin [RUNS]     fanout 2->20 (pipeline 16) --compare redis
#
# Starts three fresh servers: Herald with io_uring (HERALD_IO_URING unset), the same
# binary with HERALD_IO_URING=0, and redis-server; with `pin` all three on core 0 and the
# load generator on core 1. Needs target/release/herald built with
# `cargo build --release -p herald-cli --features io-uring`, perf (syscalls mode) and
# redis-server. Run it under the shared benchmark lock with -o, so that the servers do
# not inherit the lock: `flock -o /work/wt/bench.lock scripts/measure-io-uring.sh ...`.
# Prints one summary line per server and run; raw output goes to $OUT (default
# /tmp/measure-io-uring).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HB="${HERALD_BIN:-$ROOT/target/release/herald}"
OUT="${OUT:-/tmp/measure-io-uring}"
MODE="${1:-}"
PIN="${2:-}"
RUNS="${3:-3}"
case "$MODE" in syscalls | latency | saturated) ;; *) sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;; esac
case "$PIN" in pin | nopin) ;; *) echo "measure-io-uring: second argument: pin or nopin" >&2; exit 2 ;; esac
mkdir -p "$OUT"

SRV=()
BENCH=()
if [[ "$PIN" == pin ]]; then
    SRV=(taskset -c 0)
    BENCH=(taskset -c 1)
fi
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT_U=$(free_port)
PORT_N=$(free_port)
PORT_R=$(free_port)
"${SRV[@]}" "$HB" server --port "$PORT_U" --no-http >"$OUT/herald-uring.log" 2>&1 &
PID_U=$!
"${SRV[@]}" env HERALD_IO_URING=0 "$HB" server --port "$PORT_N" --no-http >"$OUT/herald-writev.log" 2>&1 &
PID_N=$!
"${SRV[@]}" redis-server --port "$PORT_R" --save '' --appendonly no --daemonize no >"$OUT/redis.log" 2>&1 &
PID_R=$!
PIDS=("$PID_U" "$PID_N" "$PID_R")
for port in "$PORT_U" "$PORT_N" "$PORT_R"; do
    for _ in $(seq 50); do
        [[ "$(redis-cli -p "$port" PING 2>/dev/null)" == PONG ]] && break
        sleep 0.1
    done
done

summarise() { # summarise MODE FILE NAME [PERF_FILE]
    python3 - "$@" <<'PY'
import json, re, statistics as st, sys
mode, path, name = sys.argv[1:4]
rows = [json.loads(l) for l in open(path) if l.startswith("{")]
if mode == "syscalls":
    counts = {}
    for line in open(sys.argv[4]):
        m = re.match(r"\s*([\d,]+)\s+(\S+)", line)
        if m and int(m.group(1).replace(",", "")):
            counts[m.group(2)] = int(m.group(1).replace(",", ""))
    r = rows[-1]
    d = r["deliveries"]
    calls = {k.replace("syscalls:sys_enter_", ""): v for k, v in counts.items() if k.startswith("syscalls:")}
    top = ", ".join(f"{k} {v / d:.3f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:6])
    print(f"{name}: {d} deliveries, {sum(calls.values()) / d:.3f} system calls/delivery ({top}), "
          f"{counts.get('context-switches', 0) / d:.4f} context switches/delivery, "
          f"{r['server_cpu_ns_per_delivery']:.0f} ns CPU/delivery, lost {r['lost']} reordered {r['reordered']}")
    sys.exit()
servers = list(dict.fromkeys(r["server"] for r in rows))
a = sorted((r for r in rows if r["server"] == servers[0]), key=lambda r: r["round"])
b = sorted((r for r in rows if r["server"] == servers[1]), key=lambda r: r["round"])
def ratios(f):
    v = [f(x) / f(y) for x, y in zip(a, b) if f(y)]
    return f"{st.median(v):.2f}× (rounds {', '.join(f'{x:.2f}' for x in v)})"
cpu = lambda r: r["server_cpu_ns_per_delivery"]
line = f"{name} vs redis: CPU/delivery {ratios(cpu)}, median {st.median(map(cpu, a)):.0f} vs {st.median(map(cpu, b)):.0f} ns"
if mode == "latency":
    p99 = lambda r: r["latency"]["p99_us"]
    p999 = lambda r: r["latency"]["p999_us"]
    line += f"; p99 {ratios(p99)}; p99.9 {ratios(p999)}"
else:
    dps = lambda r: r["deliveries_per_sec"]
    line += f"; deliveries/s {ratios(dps)}"
bad = sum(r["lost"] + r["reordered"] for r in rows)
print(line + (f"; LOST/REORDERED {bad}" if bad else ""))
PY
}

for run in $(seq "$RUNS"); do
    for server in "uring:$PORT_U:$PID_U" "writev:$PORT_N:$PID_N" "redis:$PORT_R:$PID_R"; do
        IFS=: read -r name port pid <<<"$server"
        file="$OUT/$MODE-$PIN-$name-$run"
        case "$MODE" in
        syscalls)
            perf stat -e 'syscalls:sys_enter_*',context-switches -p "$pid" -o "$file.perf" -- \
                "${BENCH[@]}" "$HB" bench fanout --addr "127.0.0.1:$port" --publishers 1 --subscribers 20 \
                --messages 20000 --pipeline 1 --pid "$pid" --json >"$file.json" 2>/dev/null
            summarise syscalls "$file.json" "$name" "$file.perf"
            ;;
        latency | saturated)
            [[ "$name" == redis ]] && continue
            if [[ "$MODE" == latency ]]; then
                args=(latency --rate 10000 --duration 4 --subscribers 20)
            else
                args=(fanout --publishers 2 --subscribers 20 --pipeline 16 --messages 25000)
            fi
            "${BENCH[@]}" "$HB" bench "${args[@]}" --addr "127.0.0.1:$port" --pid "$pid" \
                --compare "127.0.0.1:$PORT_R" --compare-pid "$PID_R" --json >"$file.json" 2>/dev/null
            summarise "$MODE" "$file.json" "$name"
            ;;
        esac
    done
done
