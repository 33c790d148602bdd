#!/usr/bin/env bash
# Builds the end-to-end tests' control plane into .cache/e2e/bin and reuses
# it while its inputs are unchanged:
#   kube-apiserver  k8s.io/kubernetes (version in test/e2e/cluster/go.mod)
#   etcd            go.etcd.io/etcd/server/v3 embed (test/e2e/cluster/cmd/etcd)
#   metrics-server  sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION
# The cache key is a hash of the wrapper module's go.mod, go.sum and sources,
# the metrics-server version and the Go version. Prints the bin directory.
# The first build takes several minutes (kube-apiserver); later runs take
# well under a second.
set -euo pipefail

METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.9.0}
K8S_VERSION=v1.37.2

root=$(cd "$(dirname "$0")/../.." && pwd)
src=$root/test/e2e/cluster
bin=${E2E_BIN_DIR:-$root/.cache/e2e/bin}
GO=${GO:-go}

key=$( { cat "$src/go.mod" "$src/go.sum"; find "$src/cmd" -name '*.go' | sort | xargs cat;
	echo "metrics-server $METRICS_SERVER_VERSION"; "$GO" version; } | sha256sum | cut -c1-16)

if [[ -f $bin/.key && $(cat "$bin/.key") == "$key" && -x $bin/kube-apiserver && -x $bin/etcd && -x $bin/metrics-server ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$bin"
rm -f "$bin/.key"
start=$SECONDS
ver="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
(
	cd "$src"
	echo "building etcd" >&2
	"$GO" build -mod=mod -ldflags "-s -w" -o "$bin/etcd" ./cmd/etcd
	echo "building kube-apiserver $K8S_VERSION (several minutes the first time)" >&2
	"$GO" build -mod=mod -ldflags "-s -w $ver" -o "$bin/kube-apiserver" ./cmd/kube-apiserver
)
echo "building metrics-server $METRICS_SERVER_VERSION" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOBIN=$tmp GOFLAGS= "$GO" install -ldflags "-s -w" "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
mv "$tmp/metrics-server" "$bin/metrics-server"
echo "$key" > "$bin/.key"
echo "control plane built in $((SECONDS - start))s" >&2
echo "$bin"
