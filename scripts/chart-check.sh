#!/usr/bin/env bash
# Checks charts/k8s-llm-monitor with helm, without a cluster:
#   lint       helm lint --strict with the default values and each example
#   template   renders that must work, and bad values that must fail with a
#              clear message (schema and the chart's own checks); NOTES.txt
#   manifests  deploy/ and test/chart/testdata/ are what the chart renders
#              now (`make manifests` regenerates them)
# Usage: HELM=path/to/helm scripts/chart-check.sh [lint|template|manifests|all]
set -euo pipefail
cd "$(dirname "$0")/.."
helm=${HELM:?set HELM to the helm binary (make chart-check does)}
chart=charts/k8s-llm-monitor
what=${1:-all}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

values_files=("$chart"/examples/*.yaml test/chart/testdata/all-features.values.yaml)

lint() {
	echo "== helm lint"
	"$helm" lint --strict --quiet "$chart"
	for f in "${values_files[@]}"; do
		"$helm" lint --strict --quiet "$chart" -f "$f" --set nats.auth.token=lint-token
	done
}

# expect_fail MESSAGE HELM-TEMPLATE-ARGS...: the render must fail and say MESSAGE.
expect_fail() {
	local want=$1
	shift
	if out=$("$helm" template t "$chart" -n t "$@" 2>&1 >/dev/null); then
		echo "FAIL: helm template $* rendered; want an error containing: $want"
		return 1
	fi
	if ! grep -qF -- "$want" <<<"$out"; then
		echo "FAIL: helm template $* failed without saying: $want"
		echo "$out"
		return 1
	fi
	echo "ok: rejects $* ($want)"
}

expect_ok() {
	"$helm" template t "$chart" -n t "$@" >"$tmp/out.yaml" || {
		echo "FAIL: helm template $*"
		return 1
	}
	echo "ok: renders $*"
}

template() {
	echo "== helm template"
	# The default install: kubernetes identities, no secret, the same
	# objects on every render (GitOps).
	expect_ok
	"$helm" template t "$chart" -n t >"$tmp/again.yaml"
	cmp -s "$tmp/out.yaml" "$tmp/again.yaml" || {
		echo "FAIL: two renders with the default values differ"
		diff -u "$tmp/out.yaml" "$tmp/again.yaml" | head -20
		return 1
	}
	echo "ok: the default render is the same every time"
	# A shared token: generated when not given, kept across upgrades by lookup.
	expect_ok --set nats.auth.type=token
	grep -q '^  token: ' "$tmp/out.yaml"
	expect_ok --set aggregator.httpAuth=none --set networkPolicy.enabled=false
	expect_ok --set nats.auth.enabled=false
	expect_ok --set 'rbac.readers[0].kind=Group' --set 'rbac.readers[0].name=sre' --set 'rbac.readers[0].apiGroup=rbac.authorization.k8s.io'
	for f in "${values_files[@]}"; do
		expect_ok -f "$f"
	done
	expect_ok --set nats.url=nats://nats:4222 --set nats.auth.type=token --set nats.auth.existingSecret=s --set aggregator.replicaCount=2
	expect_ok --set nats.url=nats://nats:4222 --set nats.auth.enabled=false
	expect_ok --set nats.url=nats://nats:4222 --set nats.auth.type=creds --set nats.auth.existingSecret=s
	expect_ok --set agent.gpu.enabled=true --set agent.gpu.runtimeClassName=
	expect_ok --set nats.url=nats://nats:4222 --set nats.auth.existingSecret=s --set nats.jetstream.replicas=3
	expect_ok --set aggregator.storage.type=persistentVolumeClaim --set aggregator.storage.persistentVolumeClaim.existingClaim=mine

	# The binaries' own rules (shared/config/validate.go), checked at render
	# time: one render per rule, each failure naming the value to change.
	expect_ok --set metrics.collect_interval=3
	expect_ok --set metrics.collect_interval=1h --set agent.config.source_timeout=59m30s --set metrics.cache_retention=168h
	expect_ok --set-string metrics.collect_interval=2.5 --set agent.config.source_timeout=2500ms
	expect_fail "agent.config.source_timeout=5s is longer than metrics.collect_interval=3: the agents refuse" --set metrics.collect_interval=3 --set agent.config.source_timeout=5s
	expect_fail "agent.config.source_timeout=30s is longer than metrics.collect_interval=15" --set agent.config.source_timeout=30s
	expect_fail "agent.config.source_timeout=1m1s is longer than metrics.collect_interval=1m" --set metrics.collect_interval=1m --set agent.config.source_timeout=1m1s
	expect_fail "at '/metrics/collect_interval'" --set-string metrics.collect_interval=0
	expect_fail "at '/metrics/collect_interval'" --set metrics.collect_interval=0
	expect_fail "at '/metrics/collect_interval'" --set metrics.collect_interval=7200
	expect_fail "metrics.collect_interval=500ms: both binaries accept 1s to 1h" --set metrics.collect_interval=500ms
	expect_fail "metrics.collect_interval=1h0m1s: both binaries accept 1s to 1h" --set metrics.collect_interval=1h0m1s
	expect_fail "metrics.cache_retention=169h: at most 7 days" --set metrics.cache_retention=169h
	expect_fail "at '/metrics/cache_retention'" --set metrics.cache_retention=604801
	expect_fail "aggregator.config.events_retention=59s: at least 1m" --set aggregator.config.events_retention=59s
	expect_fail "at '/aggregator/config/events_retention'" --set aggregator.config.events_retention=59
	expect_fail "at '/agent/config/source_timeout'" --set agent.config.source_timeout=-1
	expect_fail "at '/aggregator/config/stale_intervals'" --set aggregator.config.stale_intervals=0
	expect_fail "at '/aggregator/config/history_points'" --set aggregator.config.history_points=0
	expect_fail "at '/aggregator/config/events_max'" --set aggregator.config.events_max=0
	expect_fail "at '/nats/subjectPrefix'" --set nats.subjectPrefix=a..b
	expect_fail "at '/agent/config/thresholds/memory_rate'" --set agent.config.thresholds.memory_rate=0
	expect_fail "at '/agent/config/kubelet/url'" --set agent.config.kubelet.url=kubelet:10250
	# The chart's own options.
	expect_fail "serviceMonitor.enabled and podMonitor.enabled: Prometheus would scrape every pod twice" --set serviceMonitor.enabled=true --set podMonitor.enabled=true
	expect_fail "at '/namespaceOverride'" --set namespaceOverride=Monitoring
	expect_fail "at '/global/imageRegistry'" --set global.imageRegistry=https://registry.example.com
	expect_fail "at '/agent/livenessProbe/periodSeconds'" --set agent.livenessProbe.periodSeconds=0
	expect_fail "at '/aggregator/readinessProbe'" --set aggregator.readinessProbe.path=/x
	expect_fail "at '/aggregator/revisionHistoryLimit'" --set aggregator.revisionHistoryLimit=-1
	expect_fail "at '/agent/extraVolumeMounts/0'" --set 'agent.extraVolumeMounts[0].name=x'
	expect_fail "at '/grafanaDashboard/labels/grafana_dashboard'" --set grafanaDashboard.labels.grafana_dashboard=1

	# namespaceOverride moves every namespaced object, and what names them.
	expect_ok --set namespaceOverride=monitoring
	if grep -qE '^  namespace: t$|\.t\.svc\.' "$tmp/out.yaml" || ! grep -q '^  namespace: monitoring$' "$tmp/out.yaml" ||
		! grep -q 'k8s-llm-monitor-aggregator.monitoring.svc.cluster.local' "$tmp/out.yaml"; then
		echo "FAIL: namespaceOverride=monitoring left objects or addresses in the release namespace"
		return 1
	fi
	echo "ok: namespaceOverride moves every object and address"
	# global.imageRegistry replaces the images' registry.
	expect_ok --set global.imageRegistry=registry.example.com/mirror --set agent.gpu.enabled=true --set-string 'agent.gpu.nodeSelector.gpu=true'
	[ "$(grep -c 'image: registry.example.com/mirror/k8s-llm-monitor/' "$tmp/out.yaml")" = 3 ] && ! grep -q 'image: ghcr.io' "$tmp/out.yaml" || {
		echo "FAIL: global.imageRegistry not used for every image"
		grep -n 'image:' "$tmp/out.yaml"
		return 1
	}
	echo "ok: global.imageRegistry is every image's registry"
	# Probes, history limits, extra volumes, PodMonitors and the dashboard.
	expect_ok --set aggregator.startupProbe.enabled=true --set agent.readinessProbe.enabled=false --set agent.livenessProbe.periodSeconds=7 \
		--set agent.revisionHistoryLimit=3 --set aggregator.revisionHistoryLimit=2 \
		--set 'aggregator.extraVolumes[0].name=extra' --set 'aggregator.extraVolumes[0].emptyDir.medium=Memory' \
		--set 'aggregator.extraVolumeMounts[0].name=extra' --set 'aggregator.extraVolumeMounts[0].mountPath=/extra'
	for want in 'startupProbe:' 'periodSeconds: 7' 'revisionHistoryLimit: 3' 'revisionHistoryLimit: 2' 'mountPath: /extra' 'medium: Memory'; do
		grep -qF -- "$want" "$tmp/out.yaml" || { echo "FAIL: probes/history/volumes: no '$want'"; return 1; }
	done
	[ "$(grep -c 'readinessProbe:' "$tmp/out.yaml")" = 1 ] || { echo "FAIL: agent.readinessProbe.enabled=false kept the probe"; return 1; }
	echo "ok: probes, revisionHistoryLimit and extra volumes follow the values"
	expect_ok --set podMonitor.enabled=true --set grafanaDashboard.enabled=true --set grafanaDashboard.namespace=grafana
	[ "$(grep -c '^kind: PodMonitor$' "$tmp/out.yaml")" = 2 ] && grep -q '^  namespace: grafana$' "$tmp/out.yaml" &&
		grep -q 'grafana_dashboard: "1"' "$tmp/out.yaml" && grep -q '"uid": "k8s-llm-monitor"' "$tmp/out.yaml" || {
		echo "FAIL: podMonitor or grafanaDashboard not rendered as asked"
		return 1
	}
	echo "ok: PodMonitors and the Grafana dashboard ConfigMap"

	expect_fail "needs an external NATS: set nats.url" --set aggregator.replicaCount=2
	expect_fail "nats.jetstream.replicas=3 needs a NATS cluster" --set nats.jetstream.replicas=3
	expect_fail "at '/aggregator/storage/type'" --set aggregator.storage.type=hostPath
	expect_fail "at '/nats/jetstream/events_max_age'" --set nats.jetstream.events_max_age=forever
	expect_fail "at '/metrics/collect_interval'" --set metrics.collect_interval=-1
	expect_fail "at '/metrics/collect_interval'" --set metrics.collect_interval=fast
	expect_fail "at '/metrics/cache_retention'" --set metrics.cache_retention=700000
	expect_fail "at '/nats/auth/type'" --set nats.auth.type=password
	expect_fail "at '/agent/logLevel'" --set agent.logLevel=verbose
	expect_fail "additional properties 'collect_intervall' not allowed" --set metrics.collect_intervall=15
	expect_fail "additional properties 'replicas' not allowed" --set aggregator.replicas=2
	expect_fail "at '/agent/config/thresholds/cpu_rate'" --set agent.config.thresholds.cpu_rate=150
	expect_fail "at '/vms/custom/0/resource'" --set 'vms.custom[0].name=w' --set 'vms.custom[0].version=v1' --set 'vms.custom[0].resource=Wukongs'
	expect_fail "at '/nats/url'" --set nats.url=nats.nats.svc:4222
	expect_fail "set nats.tls.certSecret" --set nats.tls.enabled=true
	expect_fail "set nats.auth.existingSecret" --set nats.url=nats://nats:4222 --set nats.auth.type=token
	expect_fail "nats.auth.type=kubernetes with an external NATS (nats.url): the aggregator serves the server's auth callout" --set nats.url=nats://nats:4222
	expect_fail "nats.auth.type=creds needs an operator-configured NATS server" --set nats.auth.type=creds
	expect_fail "at '/nats/auth/kubernetes/expirationSeconds'" --set nats.auth.kubernetes.expirationSeconds=60
	expect_fail "at '/aggregator/httpAuth'" --set aggregator.httpAuth=basic
	expect_fail "at '/rbac/readers/0/kind'" --set 'rbac.readers[0].kind=Robot' --set 'rbac.readers[0].name=x'

	# NOTES.txt: helm renders it only on install, which needs a cluster;
	# render it through tpl in a copy of the chart instead.
	cp -r "$chart" "$tmp/chart"
	cp "$chart/templates/NOTES.txt" "$tmp/chart/notes.txt"
	cat >"$tmp/chart/templates/zz-notes.yaml" <<'NOTES'
apiVersion: v1
kind: ConfigMap
metadata:
  name: notes
data:
  notes: |
{{ tpl (.Files.Get "notes.txt") . | indent 4 }}
NOTES
	"$helm" template mon "$tmp/chart" -n obs --show-only templates/zz-notes.yaml >"$tmp/notes.yaml"
	for want in "port-forward svc/mon-k8s-llm-monitor-aggregator 8080:8080" \
		"TOKEN=\$(kubectl -n obs create token mon-reader)" \
		"--clusterrole=mon-k8s-llm-monitor-reader --serviceaccount=obs:mon-reader" \
		"curl -s -H \"Authorization: Bearer \$TOKEN\" localhost:8080/api/v1/metrics/cluster" \
		"create token mon-reader --audience k8s-llm-monitor" \
		"--token \"\$NATS_TOKEN\" sub 'k8smon.node.*.event'" \
		"pod-security.kubernetes.io/enforce=privileged"; do
		grep -qF -- "$want" "$tmp/notes.yaml" || {
			echo "FAIL: NOTES.txt does not say: $want"
			cat "$tmp/notes.yaml"
			return 1
		}
	done
	echo "ok: NOTES.txt"
}

manifests() {
	echo "== rendered manifests are current"
	scripts/render-manifests.sh "$helm" "$tmp/render"
	local stale=0
	for f in deploy/k8s-llm-monitor.yaml test/chart/testdata/*.yaml "$tmp"/render/test/chart/testdata/*.yaml; do
		rel=${f#"$tmp/render/"}
		case $rel in *.values.yaml) continue ;; esac
		if ! cmp -s "$rel" "$tmp/render/$rel" 2>/dev/null; then
			echo "stale: $rel"
			diff -u "$rel" "$tmp/render/$rel" 2>&1 | head -20 || true
			stale=1
		fi
	done
	if [ "$stale" = 1 ]; then
		echo "FAIL: the checked-in renders differ from the chart: run 'make manifests' and commit"
		return 1
	fi
	echo "ok: deploy/ and test/chart/testdata/ are current"
}

case $what in
lint) lint ;;
template) template ;;
manifests) manifests ;;
all) lint && template && manifests ;;
*)
	echo "usage: $0 [lint|template|manifests|all]" >&2
	exit 2
	;;
esac
