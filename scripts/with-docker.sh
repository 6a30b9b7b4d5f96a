#!/usr/bin/env bash
# Run a command (the test suite) with a Docker engine and the locally built test images.
#
#   scripts/with-docker.sh .venv/bin/pytest -q
#
# An engine that already answers (DOCKER_HOST, or the default socket on a user's machine) is used as
# it is. Otherwise, as root, a private dockerd is started for the command only: its own socket, data
# root (in the cache, so images survive between runs), exec root and pidfile; no bridge, no iptables
# or forwarding changes (containers use the host's network). DOCKER_HOST is set for the command alone.
# Several runs may share the private engine; the last one to finish stops it, leaving nothing running.
# Where no engine can run, the command runs without one (container tests skip, or fail under CI=true).
set -euo pipefail

CACHE="${REGOGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/regogate}"
PY="${PY:-.venv/bin/python}"
root="$CACHE/docker"
# Unix socket paths are limited to 108 bytes: the runtime directory stays short, keyed by the data root.
run="/tmp/regogate-docker-$(id -u)-$(printf %s "$root" | sha256sum | cut -c1-12)"
sock="unix://$run/docker.sock"
#: dockerd answers within a few seconds; a loaded CI machine gets the rest.
START_TIMEOUT=60
#: dockerd stops its containers and exits on SIGTERM; it is killed after this.
STOP_TIMEOUT=30

say() { echo "with-docker: $*" >&2; }
answers() { DOCKER_HOST="$1" timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

build_images() {
  DOCKER_HOST="$1" "$PY" -m tests.images || { say "building the test images failed"; return 1; }
}

run_without() {
  say "$1; container tests skip (fail under CI=true)"
  shift
  exec "$@"
}

if [ -n "${DOCKER_HOST:-}" ] || answers unix:///var/run/docker.sock; then
  host="${DOCKER_HOST:-unix:///var/run/docker.sock}"
  if answers "$host"; then
    build_images "$host"
    DOCKER_HOST="$host" exec "$@"
  fi
  run_without "no engine answers at $host" "$@"
fi

if ! command -v dockerd >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ] || ! command -v docker >/dev/null 2>&1; then
  run_without "no Docker engine here (a private one needs root and scripts/setup-docker.sh)" "$@"
fi

mkdir -p "$root" "$run"
exec 8>"$root/engine.lock"   # start and stop happen one at a time
exec 9>"$root/users.lock"    # held shared by every run using the engine
flock -w 300 8
flock -s 9

start_engine() {
  local driver="$1"
  rm -f "$run/dockerd.log"
  # setsid: a Ctrl-C in the terminal reaches the tests, not the engine; the trap below stops it.
  setsid dockerd \
    --data-root "$root/data" --exec-root "$run/exec" --host "$sock" --pidfile "$run/dockerd.pid" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false --storage-driver "$driver" --exec-opt native.cgroupdriver=cgroupfs \
    --shutdown-timeout 5 </dev/null >"$run/dockerd.log" 2>&1 8>&- 9>&- &
  local pid=$! deadline=$((SECONDS + START_TIMEOUT))
  until answers "$sock"; do
    if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      kill "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

stop_engine() {
  local pid
  pid="$(cat "$run/dockerd.pid" 2>/dev/null || true)"
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # dockerd leaves its network namespace handle mounted under the exec root.
  umount "$run/exec/netns/default" 2>/dev/null || true
}

finish() {
  local status=$?
  exec 9>&-
  if flock -w 300 8; then
    # Nobody else holds the users' lock: this run was the last one using the engine.
    if flock -n -x "$root/users.lock" true; then
      stop_engine
    fi
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM

if ! answers "$sock"; then
  started=$SECONDS
  if grep -qw overlay /proc/filesystems && start_engine overlay2; then
    :
  elif start_engine vfs; then
    say "overlay2 is not available here; the engine uses vfs (slower, larger)"
  else
    say "dockerd did not start; its log:"
    sed 's/^/  /' "$run/dockerd.log" >&2
    trap - EXIT
    exec 8>&- 9>&-
    run_without "no private Docker engine" "$@"
  fi
  say "private engine up in $((SECONDS - started)) s at $sock"
  # Containers a killed run left behind; nobody else is using this engine yet.
  DOCKER_HOST="$sock" docker container prune -f >/dev/null
fi
build_images "$sock"
flock -u 8

DOCKER_HOST="$sock" "$@" 8>&- 9>&-
