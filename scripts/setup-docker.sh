#!/usr/bin/env bash
# Install a Docker engine (Debian's docker.io) for the container test paths, once.
#
# Silent when dockerd is already here. Starts nothing: scripts/test-engine.sh runs a private dockerd
# for the test run only, and a policy-rc.d guard keeps the package's post-install step from starting
# the system service (which would listen on the default /var/run/docker.sock) while apt installs it.
set -euo pipefail

if command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ]; then
  exit 0
fi

command -v apt-get >/dev/null 2>&1 || {
  echo "setup-docker: no apt-get here; install a Docker engine with your package manager" >&2
  exit 1
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-docker: installing docker.io needs root or sudo" >&2; exit 1; }
  sudo=sudo
fi

# invoke-rc.d and deb-systemd-invoke skip starting services while policy-rc.d exits 101.
guard=/usr/sbin/policy-rc.d
if [ ! -e "$guard" ]; then
  trap '$sudo rm -f "$guard"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
  $sudo chmod 755 "$guard"
fi

echo "setup-docker: installing docker.io with apt-get (first run only)" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# The docker CLI may already be on PATH from elsewhere; dpkg must not stop on that.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || {
  echo "setup-docker: apt-get finished but no dockerd binary appeared" >&2
  exit 1
}
