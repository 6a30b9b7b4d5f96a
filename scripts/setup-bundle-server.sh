#!/usr/bin/env bash
# Install what the deployment tests run for real, from Debian's packages, once:
#   nginx          the bundle server OPA polls (ETag, 304 Not Modified), started by tests/deploy on loopback;
#   docker-compose a real compose parser: `docker-compose config` checks docker-compose.yml without an engine.
# The packages' own services are not started (the tests start nginx with a private config).
set -euo pipefail

missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi
echo "setup-bundle-server: installing ${missing[*]} from Debian's packages" >&2
$sudo apt-get update -qq >&2 || echo "setup-bundle-server: apt-get update failed; trying the package lists already here" >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
