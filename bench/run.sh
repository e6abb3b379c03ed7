#!/usr/bin/env bash
# `npm run bench [-- --quick]`: system packages when missing, npm dependencies when missing, a
# build, then the bench itself (bench/bench.ts). Whatever the bench started is stopped on the way
# out, even if the orchestrator itself is killed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/setup.sh
[ -x node_modules/.bin/tsc ] || npm install --no-audit --no-fund
npx tsc -p .

# The orchestrator appends "pid start-time" of each process it starts to this file, and
# "dir PATH" for its work folders.
export BENCH_PIDFILE
BENCH_PIDFILE=$(mktemp /tmp/harbor-lb-bench-pids.XXXXXX)
cleanup() {
  # The orchestrator stops its processes itself; this catches what a killed orchestrator left,
  # and only those: a pid counts if the process holding it started when ours did.
  while read -r pid started; do
    [ "$pid" != dir ] && [ -r "/proc/$pid/stat" ] || continue
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    set -- ${stat##*) }
    [ "${20:-}" = "$started" ] && kill -TERM "$pid" 2>/dev/null || true
  done < "$BENCH_PIDFILE"
  # Then its work folders ("dir PATH" lines), if it could not remove them itself.
  while read -r tag path; do
    [ "$tag" = dir ] || continue
    case "$path" in /tmp/harbor-lb-bench-*|/dev/shm/harbor-lb-bench-*) rm -rf "$path" ;; esac
  done < "$BENCH_PIDFILE"
  rm -f "$BENCH_PIDFILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
node dist/bench/bench.js "$@"
