#!/usr/bin/env bash
# Measures the agent and node_exporter side by side on this machine, in one
# run: an aggregator with embedded NATS on loopback and the agent at a 1 s
# interval (kubelet off, as on a node without one), and node_exporter with
# its default collectors scraped once a second. After a warm-up, both
# processes' CPU time (the scheduler's per-thread runtime) is read over the
# same $SECONDS_TO_RUN seconds and divided by the agent's cycles and by
# node_exporter's scrapes; RSS is read at the end.
#
# node_exporter is built from the Go module proxy ($NODE_EXPORTER_VERSION)
# into a temporary directory with the agent's flags (-trimpath -s -w), and
# kept under .cache/ (never committed) for later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_EXPORTER_VERSION=${NODE_EXPORTER_VERSION:-v1.12.1}
RUN=${SECONDS_TO_RUN:-60}
WARMUP=${WARMUP:-10}
HTTP_PORT=${HTTP_PORT:-18189}
NATS_PORT=${NATS_PORT:-14329}
AGENT_PORT=${AGENT_PORT:-19209}
NE_PORT=${NE_PORT:-19300}

[ -n "${SKIP_BUILD:-}" ] || make --no-print-directory build >/dev/null
ne=.cache/node_exporter-$NODE_EXPORTER_VERSION/node_exporter
if [ ! -x "$ne" ]; then
	tmp=$(mktemp -d)
	echo "building node_exporter $NODE_EXPORTER_VERSION" >&2
	GOBIN=$tmp GOFLAGS= CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/prometheus/node_exporter@$NODE_EXPORTER_VERSION"
	mkdir -p "$(dirname "$ne")"
	mv "$tmp/node_exporter" "$ne"
	rm -rf "$tmp"
fi
mkdir -p .cache

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT
./bin/aggregator --http-addr 127.0.0.1:$HTTP_PORT --nats-listen 127.0.0.1:$NATS_PORT --interval 1 >.cache/vs-ne-aggregator.log 2>&1 &
pids+=($!)
sleep 2
./bin/agent --nats-url nats://127.0.0.1:$NATS_PORT --interval 1 --disable-kubelet --listen 127.0.0.1:$AGENT_PORT >.cache/vs-ne-agent.log 2>&1 &
agent=$!
pids+=($agent)
"$ne" --web.listen-address 127.0.0.1:$NE_PORT >.cache/vs-ne-node_exporter.log 2>&1 &
nodeexp=$!
pids+=($nodeexp)
# The scraper Prometheus would be, once a second.
(while sleep 1; do curl -fsS -o /dev/null http://127.0.0.1:$NE_PORT/metrics || true; done) &
pids+=($!)
sleep "$WARMUP"

cpu() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {print s}'; }
cycles() { curl -fsS http://127.0.0.1:$AGENT_PORT/metrics | awk '/^k8smon_agent_cycles_total/ {print $2}'; }
scrapes() { curl -fsS http://127.0.0.1:$NE_PORT/metrics | awk '/^promhttp_metric_handler_requests_total\{code="200"\}/ {print $2}'; }
mem() { awk -v k="$2" '$1 == k":" {print $2}' /proc/"$1"/status; }

a0=$(cpu $agent) e0=$(cpu $nodeexp) n0=$(cycles) s0=$(scrapes)
sleep "$RUN"
a1=$(cpu $agent) e1=$(cpu $nodeexp) n1=$(cycles) s1=$(scrapes)
load=$(cut -d' ' -f1-3 /proc/loadavg)
row() { # name pid cpu0 cpu1 count0 count1 binary
	awk -v name="$1" -v c0="$3" -v c1="$4" -v n0="$5" -v n1="$6" -v rss="$(mem "$2" VmRSS)" -v anon="$(mem "$2" RssAnon)" \
		-v file="$(mem "$2" RssFile)" -v size="$(stat -c %s "$7")" 'BEGIN {
		n = n1 - n0
		printf "| %s | %d | %.2f ms | %.1f MiB | %.1f / %.1f MiB | %.1f MB |\n", name, n, (c1 - c0) / 1e6 / n, rss / 1024, anon / 1024, file / 1024, size / 1e6
	}'
}
echo "$RUN s, load average $load"
echo "| process | cycles / scrapes | CPU per cycle / scrape | RSS | anonymous / file-backed | executable |"
echo "|---|---|---|---|---|---|"
row agent $agent "$a0" "$a1" "$n0" "$n1" bin/agent
# The second scrapes() call is one more scrape than the loop's.
row "node_exporter $NODE_EXPORTER_VERSION" $nodeexp "$e0" "$e1" "$s0" "$((${s1%.*} - 1))" "$ne"
