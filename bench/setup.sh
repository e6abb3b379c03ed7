#!/usr/bin/env bash
# Installs what `npm run bench` drives, from Debian's packages, when it is missing:
#   nginx-light (+ its echo module: the backends read upload bodies with it), haproxy (2.6 on
#   Debian 12), wrk and hey (load generators), redis-server (M5), curl (blob loads), openssl (keys).
# As root it uses apt-get; otherwise it names what is missing and stops.
set -euo pipefail

declare -A provides=([nginx]=nginx-light [haproxy]=haproxy [wrk]=wrk [hey]=hey [redis-server]=redis-server [curl]=curl [openssl]=openssl)
missing=()
for cmd in "${!provides[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${provides[$cmd]}")
done
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "the bench needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the bench needs: ${missing[*]}; this machine has no apt-get, install them by hand" >&2
  exit 1
fi
echo "installing ${missing[*]} (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists are empty: update first. Wait for a lock another install holds.
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's packages may start their services; the bench starts its own on free loopback ports.
for svc in nginx haproxy redis-server; do
  if command -v service >/dev/null 2>&1; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "installed ${missing[*]}" >&2
