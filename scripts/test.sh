#!/usr/bin/env bash
# `npm test`: system packages, a fresh build, then unit, integration and end-to-end suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
rm -rf dist
export PATH="$PWD/node_modules/.bin:$PATH"
npx tsc -p .
# node is Node.js 24 from node_modules/.bin (the `node` devDependency), whatever the machine has.
# A test waiting on an event that never comes fails after 3 minutes instead of hanging CI.
exec node --test --test-timeout=180000 --test-reporter=spec \
  'dist/test/unit/**/*.test.js' 'dist/test/integration/**/*.test.js' 'dist/test/e2e/**/*.test.js'
