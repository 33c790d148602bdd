#!/usr/bin/env bash
# Runs the aggregator (embedded NATS; the kubeconfig if there is one, else
# standalone) and an agent for this machine, until Ctrl-C. Stops both, and
# exits non-zero with the dead one's log, as soon as either process exits.
#
# Every address can be overridden:
#   HTTP_ADDR   aggregator API, /metrics and the web view   (127.0.0.1:8080)
#   NATS_ADDR   the aggregator's embedded NATS server        (127.0.0.1:4222)
#   AGENT_ADDR  the agent's /healthz, /readyz and /metrics   (127.0.0.1:9102)
#   INTERVAL    collection interval in seconds               (5)
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
NATS_ADDR=${NATS_ADDR:-127.0.0.1:4222}
AGENT_ADDR=${AGENT_ADDR:-127.0.0.1:9102}
INTERVAL=${INTERVAL:-5}
LOGS=.cache
mkdir -p "$LOGS"

# build shows progress: a first build compiles client-go and friends, which
# takes minutes on a small machine.
build() {
  echo "building bin/agent and bin/aggregator (the first build fetches modules and compiles several hundred packages: a few minutes)"
  local n=0 pkg rc
  set +e
  GOFLAGS="${GOFLAGS:-} -v" make --no-print-directory build 2>&1 | while IFS= read -r pkg; do
    case "$pkg" in
      *CGO_ENABLED=*) ;; # make's own command lines
      *.go:*|*error*|*warning*) echo "$pkg" ;;
      *) n=$((n + 1))
         if [ -t 1 ]; then printf '\r  compiled %d packages: %-60.60s' "$n" "$pkg"
         elif [ $((n % 100)) -eq 0 ]; then echo "  compiled $n packages"; fi ;;
    esac
  done
  rc=${PIPESTATUS[0]}
  set -e
  [ -t 1 ] && printf '\r%-90s\r' ''
  [ "$rc" -eq 0 ] || { echo "build failed (exit $rc)" >&2; exit "$rc"; }
  echo "built bin/agent and bin/aggregator"
}

# dead NAME PID LOG [STATUS]: report that a process exited and show its log.
dead() {
  local code=${4:-}
  if [ -z "$code" ]; then code=0; wait "$2" 2>/dev/null || code=$?; fi
  echo >&2
  echo "$1 exited (status $code); the last lines of $3:" >&2
  tail -n 20 "$3" >&2
  exit 1
}

# ready NAME PID URL LOG: wait until URL answers, or fail if PID dies.
ready() {
  for _ in $(seq 150); do
    curl -fsS -o /dev/null "$3" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || dead "$1" "$2" "$4"
    sleep 0.2
  done
  echo "$1 did not answer $3 within 30s; its log:" >&2
  tail -n 20 "$4" >&2
  exit 1
}

build

# The JetStream store in .cache/jetstream keeps reports and history across runs.
./bin/aggregator --http-addr "$HTTP_ADDR" --nats-listen "$NATS_ADDR" --interval "$INTERVAL" --data-dir "$LOGS/jetstream" >"$LOGS/aggregator.log" 2>&1 &
agg=$!
agent=
trap 'kill $agg $agent 2>/dev/null; wait 2>/dev/null' EXIT
trap 'exit 0' INT TERM
ready aggregator "$agg" "http://$HTTP_ADDR/healthz" "$LOGS/aggregator.log"

kubelet=(--disable-kubelet)
[ -n "${NODE_IP:-}" ] && kubelet=()
./bin/agent --nats-url "nats://$NATS_ADDR" --interval "$INTERVAL" --listen "$AGENT_ADDR" "${kubelet[@]}" >"$LOGS/agent.log" 2>&1 &
agent=$!
ready agent "$agent" "http://$AGENT_ADDR/healthz" "$LOGS/agent.log"

cat <<MSG
k8s-llm-monitor is running (logs in $LOGS/aggregator.log and $LOGS/agent.log).

  web view: http://$HTTP_ADDR/
  API:      curl http://$HTTP_ADDR/api/v1/metrics/cluster
  nodes:    curl http://$HTTP_ADDR/api/v1/metrics/nodes
  NATS:     nats://$NATS_ADDR  (subjects k8smon.node.*.report, k8smon.node.*.event, k8smon.cluster.event)
  agent:    http://$AGENT_ADDR/metrics

The first report arrives within a few seconds. Ctrl-C stops both.
MSG

# Whichever exits first takes the other down, loudly.
set +e
wait -n -p who "$agg" "$agent"
code=$?
if [ "$who" = "$agg" ]; then dead aggregator "$agg" "$LOGS/aggregator.log" "$code"; fi
dead agent "$agent" "$LOGS/agent.log" "$code"
