#!/usr/bin/env bash
# Build the pinned OPA from the Go module proxy into regogate's tool cache, once.
#
# Prints the path of the binary. A second run finds it cached and returns at once.
# Regal (the Rego linter) is tried the same way; where the module proxy refuses it
# the script says so on stderr and carries on, so the other Rego gates still run.
set -euo pipefail

OPA_VERSION="${OPA_VERSION:-v1.22.2}"
REGAL_VERSION="${REGAL_VERSION:-latest}"
CACHE="${REGOGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/regogate}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

opa="$BIN/opa-$OPA_VERSION"
if [ ! -x "$opa" ]; then
  command -v go >/dev/null || { echo "setup-opa: Go is needed to build OPA $OPA_VERSION" >&2; exit 1; }
  echo "setup-opa: building OPA $OPA_VERSION from the Go module proxy (first run only, about a minute)" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/open-policy-agent/opa@$OPA_VERSION" >&2
  mv "$tmp/opa" "$opa"
fi
ln -sf "opa-$OPA_VERSION" "$BIN/opa"

if [ "${WITH_REGAL:-1}" = 1 ] && [ ! -x "$BIN/regal" ] && [ ! -e "$CACHE/regal.unavailable" ]; then
  if GOBIN="$BIN" go install "github.com/open-policy-agent/regal@$REGAL_VERSION" 2>"$CACHE/regal.err"; then
    echo "setup-opa: built Regal $REGAL_VERSION" >&2
  else
    echo "setup-opa: Regal could not be built here; Regal lint is skipped. Go said:" >&2
    sed 's/^/  /' "$CACHE/regal.err" >&2
    cp "$CACHE/regal.err" "$CACHE/regal.unavailable"
  fi
fi
echo "$opa"
