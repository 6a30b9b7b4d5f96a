#!/usr/bin/env bash
# Install a Docker engine (Debian's docker.io) for the container test paths, once.
#
# Silent when dockerd is already here. Starts nothing: scripts/with-docker.sh runs a private dockerd
# for the test run only, and scripts/apt-install.sh keeps the package's post-install step from starting
# the system service (which would listen on the default /var/run/docker.sock) while apt installs it.
set -euo pipefail

if command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ]; then
  exit 0
fi

# The docker CLI may already be on PATH from elsewhere; dpkg must not stop on that (--no-install-recommends).
exec "$(dirname "$0")/apt-install.sh" setup-docker docker.io dockerd /usr/sbin/dockerd \
  "install a Docker engine with your package manager" --no-install-recommends
