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
