#!/usr/bin/env bash
# Install Debian's redis-server for the Redis rate-limit store tests, once.
#
# Silent when redis-server is already on PATH (or at /usr/bin/redis-server). Starts nothing: the
# tests run their own server on a free loopback port (scripts/apt-install.sh keeps the package's
# post-install step from starting the system service).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then
  exit 0
fi

exec "$(dirname "$0")/apt-install.sh" setup-redis redis-server redis-server /usr/bin/redis-server \
  "install redis-server 7.x with your package manager"
