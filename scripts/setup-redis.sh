#!/usr/bin/env bash
# Install Debian's redis-server for the Redis rate-limit store tests, once.
#
# Silent when redis-server is already on PATH (or at /usr/bin/redis-server). Starts nothing: the
# tests run their own server on a free loopback port, and a policy-rc.d guard keeps the package's
# post-install step from starting the system service while apt installs it.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || {
  echo "setup-redis: no apt-get here; install redis-server 7.x with your package manager" >&2
  exit 1
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-redis: installing redis-server needs root or sudo" >&2; exit 1; }
  sudo=sudo
fi

# invoke-rc.d and deb-systemd-invoke skip starting services while policy-rc.d exits 101.
guard=/usr/sbin/policy-rc.d
if [ ! -e "$guard" ]; then
  trap '$sudo rm -f "$guard"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
  $sudo chmod 755 "$guard"
fi

echo "setup-redis: installing redis-server with apt-get (first run only)" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || {
  echo "setup-redis: apt-get finished but no redis-server binary appeared" >&2
  exit 1
}
