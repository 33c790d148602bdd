#!/usr/bin/env bash
# Measures the agent's CPU time per collection cycle and its steady RSS on
# this machine: an aggregator with embedded NATS on loopback, the agent at
# a 1 s interval for $SECONDS_TO_RUN seconds after a warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${SECONDS_TO_RUN:-60}
WARMUP=${WARMUP:-10}
[ -n "${SKIP_BUILD:-}" ] || make --no-print-directory build >/dev/null
mkdir -p .cache
./bin/aggregator --http-addr 127.0.0.1:18089 --nats-listen 127.0.0.1:14229 --interval 1 >.cache/measure-aggregator.log 2>&1 &
agg=$!
trap 'kill $agg ${agent:-} 2>/dev/null; wait 2>/dev/null' EXIT
sleep 2
./bin/agent --nats-url nats://127.0.0.1:14229 --interval 1 --disable-kubelet --listen 127.0.0.1:19109 >.cache/measure-agent.log 2>&1 &
agent=$!
sleep "$WARMUP"

# CPU time from the scheduler's exact per-thread runtime (schedstat, in ns):
# tick-sampled utime/stime overcharge a process that wakes on a timer.
cpu() { cat /proc/$agent/task/*/schedstat | awk '{s += $1} END {print s}'; }
cycles() { curl -fsS http://127.0.0.1:19109/metrics | awk '/^k8smon_agent_cycles_total/ {print $2}'; }
c0=$(cpu); n0=$(cycles)
sleep "$RUN"
c1=$(cpu); n1=$(cycles)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$agent/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$agent/status")
anon=$(awk '/^RssAnon/ {print $2}' "/proc/$agent/status")
file=$(awk '/^RssFile/ {print $2}' "/proc/$agent/status")
size=$(stat -c %s bin/agent)
awk -v c0="$c0" -v c1="$c1" -v n0="$n0" -v n1="$n1" -v rss="$rss" -v hwm="$hwm" -v anon="$anon" -v file="$file" -v size="$size" 'BEGIN {
  n = n1 - n0
  printf "cycles: %d\nagent CPU per cycle: %.3f ms (all threads, scheduler runtime)\nRSS: %.1f MiB (peak %.1f MiB): %.1f MiB anonymous, %.1f MiB file-backed (the executable is %.1f MB)\n", n, (c1 - c0) / 1e6 / n, rss / 1024, hwm / 1024, anon / 1024, file / 1024, size / 1e6
}'
