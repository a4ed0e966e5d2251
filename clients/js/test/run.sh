#!/usr/bin/env bash
# Runs node test files of clients/js against a real relay and database,
# after installing what they need: Node.js 20+ and npm (scripts/install-node,
# Debian's packages when missing), the development database
# (scripts/install-db), the relay binary (cargo build), and the npm
# devDependencies (npm ci, skipped when package-lock.json has not changed).
# Prints node's spec report, then one line "NAME: N passed, N failed".
# Usage: clients/js/test/run.sh NAME 'GLOB'...   (relative to clients/js)
set -euo pipefail
name="$1"
shift
cd "$(dirname "$0")/../../.."

node_bin="$(scripts/install-node)"
[ -z "$node_bin" ] || PATH="$node_bin:$PATH"
scripts/install-db
cargo build --locked --quiet --bin roomcast

cd clients/js
stamp=node_modules/.roomcast-lock-sha256
lock_sum="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >"$stamp"
fi

# Node 22 has a global WebSocket; Node 20 needs the flag.
flags=()
if [ "$(node -p 'typeof WebSocket')" = "undefined" ]; then
  flags+=(--experimental-websocket)
fi

# Node 20's runner does not expand globs itself.
files=()
for pattern in "$@"; do
  # shellcheck disable=SC2206
  files+=($pattern)
done

tap="$(mktemp)"
trap 'rm -f "$tap"' EXIT
status=0
# One file at a time: each starts its own database and relays, and two
# cores are better spent on one run than on two.
NODE_NO_WARNINGS=1 node "${flags[@]}" --test --test-concurrency=1 --test-timeout=120000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  "${files[@]}" || status=$?
passed="$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -1)"
failed="$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -1)"
echo "$name: ${passed:-0} passed, ${failed:-0} failed"
if [ "$status" -eq 0 ] && [ "${passed:-0}" -eq 0 ]; then
  echo "$name: no test ran" >&2
  exit 1
fi
exit "$status"
