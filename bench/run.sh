#!/usr/bin/env bash
# harbor-lb side by side with haproxy (and nginx direct) on the same three nginx backends:
#   small GETs (2 KiB, wrk, 64 connections), blob pulls and pushes (256 MiB, 4 streams).
# Loopback only; every load is bounded in time. Needs: nginx, haproxy, wrk, curl (bench/setup.sh).
# Usage: bench/run.sh [seconds-per-wrk-run]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
[ -f dist/src/cli.js ] || npx tsc -p .
for c in nginx haproxy wrk curl redis-server; do command -v $c >/dev/null || { echo "bench needs $c: run bench/setup.sh" >&2; exit 1; }; done

work=$(mktemp -d /tmp/harbor-lb-bench.XXXXXX)
chmod 755 "$work" # nginx workers run as another user
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

head -c 2048 /dev/urandom > "$work/small.bin"
head -c $((256 * 1024 * 1024)) /dev/urandom > "$work/big.bin"
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 100000;
  client_body_temp_path $work/body;
  proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fcgi;
  uwsgi_temp_path $work/uwsgi;
  scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:18081; listen 127.0.0.1:18082; listen 127.0.0.1:18083; root $work;
    location /upload { client_max_body_size 0; return 201; } }
}
NGX
nginx -p "$work" -c "$work/nginx.conf"

cat > "$work/haproxy.cfg" <<HAP
global
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 900s
  timeout server 900s
  http-reuse always
frontend fe
  bind 127.0.0.1:18090
  default_backend be
backend be
  balance leastconn
  server n1 127.0.0.1:18081
  server n2 127.0.0.1:18082
  server n3 127.0.0.1:18083
HAP
haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 & pids+=($!)

redis-server --port 18093 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 & pids+=($!)
# Two harbor-lb configurations on the same nodes: pins in memory, and pins in Redis. Client
# affinity is on (the default), so every request looks up its pin.
for store in memory redis; do
  port=$([ $store = memory ] && echo 18091 || echo 18094)
  cat > "$work/harbor-lb-$store.yaml" <<YML
listen: {address: 127.0.0.1, port: $port}
nodes:
  - {name: n1, url: "http://127.0.0.1:18081"}
  - {name: n2, url: "http://127.0.0.1:18082"}
  - {name: n3, url: "http://127.0.0.1:18083"}
health: {path: /small.bin}
sticky: {store: $store, redis: {url: "redis://127.0.0.1:18093/0"}}
admin: {address: 127.0.0.1, port: $((port + 1))}
log: {level: info}
YML
  # Routing log on, written to a file, as in production.
  node dist/src/cli.js serve --config "$work/harbor-lb-$store.yaml" > "$work/harbor-lb-$store.log" 2>&1 & pids+=($!)
  for i in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$((port + 1))/-/ready" && break; sleep 0.1; done
done

small() {
  # wrk counts error answers as requests too: check one answer first.
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/small.bin")" = 200 ] || { echo "small GET via $1 is not 200" >&2; echo fail; return; }
  wrk -t2 -c64 -d"${secs}s" "http://127.0.0.1:$1/small.bin" | awk '/Requests\/sec/ {print $2}'
}
pull() {
  local port=$1 start end
  start=$(date +%s.%N)
  for i in 1 2 3 4; do curl -sf -o /dev/null "http://127.0.0.1:$port/big.bin" || echo "pull via $port failed" >&2 & done; wait
  end=$(date +%s.%N)
  echo "scale=0; 4 * 256 / ($end - $start)" | bc
}
push() {
  local port=$1 start end
  start=$(date +%s.%N)
  for i in 1 2 3 4; do curl -sf -o /dev/null -X PUT -T "$work/big.bin" "http://127.0.0.1:$port/upload" || echo "push via $port failed" >&2 & done; wait
  end=$(date +%s.%N)
  echo "scale=0; 4 * 256 / ($end - $start)" | bc
}
printf '%-18s %14s %14s %14s\n' target 'GET 2KiB req/s' 'pull MiB/s' 'push MiB/s'
for t in "nginx-direct 18081" "haproxy 18090" "harbor-lb 18091" "harbor-lb-redis 18094"; do
  set -- $t
  small "$2" >/dev/null 2>&1 || true # warm-up
  if [ "$1" = harbor-lb-redis ]; then
    printf '%-18s %14s %14s %14s\n' "$1" "$(small "$2")" - -
  else
    printf '%-18s %14s %14s %14s\n' "$1" "$(small "$2")" "$(pull "$2")" "$(push "$2")"
  fi
done
echo "harbor-lb routing lines written: $(cat "$work"/harbor-lb-*.log | grep -c '"event":"request"')"
