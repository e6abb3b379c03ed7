#!/usr/bin/env bash
# Installs what bench/run.sh compares against (Debian packages).
set -euo pipefail
need=()
for c in nginx haproxy wrk curl bc redis-server; do command -v $c >/dev/null || need+=($c); done
[ ${#need[@]} -eq 0 ] && exit 0
pkgs=(); for c in "${need[@]}"; do case $c in nginx) pkgs+=(nginx-light);; *) pkgs+=($c);; esac; done
[ "$(id -u)" -eq 0 ] || { echo "bench needs: ${pkgs[*]} (sudo apt-get install -y ${pkgs[*]})" >&2; exit 1; }
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
