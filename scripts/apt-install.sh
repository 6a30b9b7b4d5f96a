#!/usr/bin/env bash
# Install one Debian package with apt-get, without letting it start its system service.
#
# usage: apt-install.sh WHO PACKAGE BINARY FALLBACK HINT [APT-GET INSTALL OPTION...]
#   WHO       the name messages start with (the calling script)
#   PACKAGE   the Debian package
#   BINARY    the command the package must bring (looked up on PATH, else at FALLBACK)
#   HINT      what to do on a machine without apt-get
# The callers (setup-redis.sh, setup-docker.sh) check first whether BINARY is already there. A
# policy-rc.d guard keeps the package's post-install step from starting its service: the tests run
# their own servers, on their own ports and sockets.
set -euo pipefail

who=$1 package=$2 binary=$3 fallback=$4 hint=$5
shift 5

command -v apt-get >/dev/null 2>&1 || {
  echo "$who: no apt-get here; $hint" >&2
  exit 1
}

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "$who: installing $package needs root or sudo" >&2; exit 1; }
  sudo=sudo
fi

# invoke-rc.d and deb-systemd-invoke skip starting services while policy-rc.d exits 101.
guard=/usr/sbin/policy-rc.d
if [ ! -e "$guard" ]; then
  trap '$sudo rm -f "$guard"' EXIT
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
  $sudo chmod 755 "$guard"
fi

echo "$who: installing $package with apt-get (first run only)" >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" "$package" >/dev/null
command -v "$binary" >/dev/null 2>&1 || [ -x "$fallback" ] || {
  echo "$who: apt-get finished but no $binary binary appeared" >&2
  exit 1
}
