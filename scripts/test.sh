#!/usr/bin/env bash
# `npm test`: system packages, a fresh build, then unit, integration and end-to-end suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
rm -rf dist
npx tsc -p .
# Node 20's runner takes folders and finds the compiled *.test.js files in them.
# A test waiting on an event that never comes fails after 3 minutes instead of hanging CI.
exec node --test --test-timeout=180000 --test-reporter=spec dist/test/unit dist/test/integration dist/test/e2e
