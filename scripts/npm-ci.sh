#!/usr/bin/env bash
# npm-ci.sh DIR: installs DIR's npm packages exactly as its lockfile pins
# them (npm ci; no install scripts, no browser download), bounded in time
# and retried. npm can stall on a registry connection without ever timing
# out; a stalled attempt is stopped after NPM_CI_TIMEOUT seconds (default
# 240) and tried again, three times in all, so that a registry that does
# not answer fails the build in minutes instead of holding it.
set -euo pipefail
dir=${1:?usage: npm-ci.sh DIR}
limit=${NPM_CI_TIMEOUT:-240}
for try in 1 2 3; do
  if (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout -k 10 "$limit" \
      npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
        --fetch-timeout=60000 --fetch-retries=3); then
    exit 0
  fi
  echo "npm-ci: npm ci in $dir failed or took over ${limit}s (attempt $try of 3)" >&2
  [ "$try" = 3 ] || sleep $((5 * try))
done
exit 1
