#!/usr/bin/env bash
# Installs what the tests need when it is missing: Debian packages through
# apt-get (as root), and the browser tests' npm packages (tools/browser,
# pinned by its lockfile; no browser download: they drive the Debian
# Chromium). The Go modules and pinned tools come from the Go module proxy
# when the tests build them.
set -euo pipefail

# need COMMAND PACKAGE: make sure COMMAND exists, installing PACKAGE if not.
missing=()
need() {
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}

need go golang-go
need npm npm            # make generate: google-proto-files from the npm registry
need git git
need redis-server redis-server   # global rate limit tests start a real one
need redis-cli redis-tools       # ... and a Redis Cluster (redis-cli --cluster create)
need haproxy haproxy             # the local cluster (make cluster, TestLocalCluster)
need chromium chromium           # browser tests (test/browser_test.go): headless, driven by playwright-core
if [ "${1:-}" = bench ]; then
  need nginx nginx
  need taskset util-linux
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test-deps: missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root" >&2
    exit 1
  fi
fi
# The browser tools, when missing or older than their lockfile.
browser="$(dirname "$0")/../tools/browser"
if [ ! -d "$browser/node_modules" ] || [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  echo "test-deps: npm ci in tools/browser"
  "$(dirname "$0")/npm-ci.sh" "$browser"
fi
echo "test-deps: ok"
