#!/usr/bin/env bash
# Installs the system programs the test suite drives for real: redis-server, docker-registry
# (the registry Harbor embeds), skopeo (a real registry client), openssl (test PKI),
# docker.io (the real docker client and a dockerd the e2e tests start themselves), docker-compose
# (checks docker-compose.yml and brings it up on that dockerd), podman (the other real client),
# iproute2 (`ip netns`: the HTTPS docker test's network namespace), chromium (the admin status
# page is tested in a headless browser driven by playwright-core), nginx (in front of real
# registries with Harbor's own proxy timeouts, so tests see a node's nginx give up on a slow
# client), haproxy (a real L4 balancer sending PROXY protocol headers) and the Prometheus Python
# client, whose parser checks what /metrics serves.
# As root it uses apt-get; otherwise it names what is missing and stops.
set -euo pipefail

declare -A provides=([redis-server]=redis-server [docker-registry]=docker-registry [skopeo]=skopeo [openssl]=openssl [runuser]=util-linux [dockerd]=docker.io [docker-compose]=docker-compose [podman]=podman [ip]=iproute2 [chromium]=chromium [nginx]=nginx [haproxy]=haproxy)
missing=()
for cmd in "${!provides[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${provides[$cmd]}")
done
# A module, not a command: Debian's python3 must import it.
/usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1 || missing+=(python3-prometheus-client)
[ ${#missing[@]} -eq 0 ] && exit 0
exec bash "$(dirname "$0")/apt-install.sh" "harbor-lb tests" "redis-server docker-registry docker nginx haproxy" "${missing[@]}"
