#!/usr/bin/env bash
# Installs the system programs the test suite drives for real: redis-server, docker-registry
# (the registry Harbor embeds), skopeo (a real registry client), openssl (test PKI) and
# docker.io (the real docker client and a dockerd the e2e tests start themselves).
# As root it uses apt-get; otherwise it names what is missing and stops.
set -euo pipefail

declare -A provides=([redis-server]=redis-server [docker-registry]=docker-registry [skopeo]=skopeo [openssl]=openssl [runuser]=util-linux [dockerd]=docker.io)
missing=()
for cmd in "${!provides[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${provides[$cmd]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "harbor-lb tests need these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "harbor-lb tests need: ${missing[*]}; this machine has no apt-get, install them by hand" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists are empty: update first.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's packages may try to start their services; the tests start their own on free ports.
for svc in redis-server docker-registry docker; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "installed ${missing[*]}" >&2
