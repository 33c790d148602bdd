#!/usr/bin/env bash
# Builds the fault suite's NATS server into .cache/fault/bin: nats-server
# from the Go module proxy, at the version go.mod requires (the one the
# aggregator embeds), so the suite kills and pauses a real server process.
# The cache key is that version and the Go version; a rebuild takes a
# minute or two, a cached run well under a second. Prints the bin directory.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${FAULT_BIN_DIR:-$root/.cache/fault/bin}
GO=${GO:-go}

version=$(cd "$root" && "$GO" list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)
key=$( { echo "nats-server $version"; "$GO" version; } | sha256sum | cut -c1-16)

if [[ -f $bin/.key && $(cat "$bin/.key") == "$key" && -x $bin/nats-server ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$bin"
rm -f "$bin/.key"
start=$SECONDS
echo "building nats-server $version" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
GOBIN=$tmp GOFLAGS= "$GO" install -ldflags "-s -w" "github.com/nats-io/nats-server/v2@$version"
mv "$tmp/nats-server" "$bin/nats-server"
echo "$key" > "$bin/.key"
echo "nats-server built in $((SECONDS - start))s" >&2
echo "$bin"
