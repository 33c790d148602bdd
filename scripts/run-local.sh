#!/usr/bin/env bash
# Runs the aggregator (embedded NATS; the kubeconfig if there is one, else
# standalone) and an agent for this machine, until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
NATS_ADDR=${NATS_ADDR:-127.0.0.1:4222}
INTERVAL=${INTERVAL:-5}

make --no-print-directory build >/dev/null
mkdir -p .cache
# The JetStream store in .cache/jetstream keeps reports and history across runs.
./bin/aggregator --http-addr "$HTTP_ADDR" --nats-listen "$NATS_ADDR" --interval "$INTERVAL" --data-dir .cache/jetstream >.cache/aggregator.log 2>&1 &
agg=$!
trap 'kill $agg ${agent:-} 2>/dev/null; wait 2>/dev/null' EXIT INT TERM

for _ in $(seq 50); do
  curl -fsS "http://$HTTP_ADDR/healthz" >/dev/null 2>&1 && break
  kill -0 $agg 2>/dev/null || { echo "aggregator failed to start:"; cat .cache/aggregator.log; exit 1; }
  sleep 0.2
done
kubelet=(--disable-kubelet)
[ -n "${NODE_IP:-}" ] && kubelet=()
./bin/agent --nats-url "nats://$NATS_ADDR" --interval "$INTERVAL" --listen 127.0.0.1:9102 "${kubelet[@]}" >.cache/agent.log 2>&1 &
agent=$!

cat <<MSG
k8s-llm-monitor is running (logs in .cache/aggregator.log and .cache/agent.log).

  API:    http://$HTTP_ADDR/api/v1/metrics/cluster
  nodes:  curl http://$HTTP_ADDR/api/v1/metrics/nodes
  NATS:   nats://$NATS_ADDR  (subjects k8smon.node.*.report, k8smon.node.*.event, k8smon.cluster.event)

The first report arrives within a few seconds. Ctrl-C stops both.
MSG
wait $agg
