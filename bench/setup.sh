#!/usr/bin/env bash
# Installs what `npm run bench` drives, from Debian's packages, when it is missing:
#   nginx-light (+ its echo module: the backends read upload bodies with it), haproxy (2.6 on
#   Debian 12), wrk and hey (load generators), redis-server (M5), curl (blob loads), openssl (keys),
#   valgrind (callgrind, for --instructions).
# As root it uses apt-get; otherwise it names what is missing and stops.
set -euo pipefail

declare -A provides=([nginx]=nginx-light [haproxy]=haproxy [wrk]=wrk [hey]=hey [redis-server]=redis-server [curl]=curl [openssl]=openssl [valgrind]=valgrind)
missing=()
for cmd in "${!provides[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${provides[$cmd]}")
done
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo)
[ ${#missing[@]} -eq 0 ] && exit 0
# The bench starts its own servers on free loopback ports.
exec bash "$(dirname "$0")/../scripts/apt-install.sh" "the bench" "nginx haproxy redis-server" "${missing[@]}"
