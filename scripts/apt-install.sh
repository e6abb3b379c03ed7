#!/usr/bin/env bash
# Installs Debian packages for the project's own scripts (the tests' system-deps, the bench's
# setup): apt-get as root, after an update (a fresh machine's lists are empty), waiting for a
# lock another install holds; then stops the services the packages start (the project starts
# its own on free loopback ports). Not root or no apt-get: names what is missing and fails.
# Usage: apt-install.sh WHO "SERVICE ..." PACKAGE...
set -euo pipefail
who=$1
services=$2
shift 2
[ $# -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "$who need these Debian packages: $*" >&2
  echo "install them with: sudo apt-get install -y $*" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$who need: $*; this machine has no apt-get, install them by hand" >&2
  exit 1
fi
echo "installing $* (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "$@" >/dev/null
for svc in $services; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "installed $*" >&2
