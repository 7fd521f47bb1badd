#!/usr/bin/env bash
# Builds the static edgegate binary of the container image (Dockerfile):
# no cgo (no libc, no dynamic loader: it runs on a scratch or distroless
# base), -trimpath (no build paths in the binary), the version stamped.
#   scripts/build-static.sh OUT [VERSION]
set -euo pipefail
out=${1:?usage: build-static.sh OUT [VERSION]}
version=${2:-dev}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec go build -trimpath -buildvcs=false \
  -ldflags "-s -w -X github.com/edgegate/edgegate/internal/version.Version=$version" \
  -o "$out" ./cmd/edgegate
