#!/usr/bin/env bash
# Installs Debian's Chromium for the web view's browser test, once: nothing
# happens when /usr/bin/chromium is already there. Needs root (apt-get),
# as CI and the development machines run.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "chromium is missing and installing it needs root: apt-get install -y chromium" >&2
	exit 1
fi
echo "installing chromium from Debian for the web view's browser test (once)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version >&2
