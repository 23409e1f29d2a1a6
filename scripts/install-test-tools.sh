#!/usr/bin/env bash
# Install the Node tools used by the tests, exactly as pinned in tests/http_audit/package-lock.json: the npm
# `graphql-http` package (GraphQL-over-HTTP server audits) with its `graphql` peer, and the `graphql-ws`
# client (with `ws`, Node 20 has no WebSocket client) used by tests/subscriptions.
#
# Idempotent and quiet: skipped when node_modules already matches the lock file (a stamp holds the lock's
# hash); otherwise `npm ci`. Fails loudly (non-zero exit, npm's output on stderr) when node/npm is missing
# or the install fails. Needs: Node 20+ and npm, and the npm registry (only when installing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AUDIT="$ROOT/tests/http_audit"
STAMP="$AUDIT/node_modules/.installed-lock-sha256"

log() { printf '[test-tools] %s\n' "$*" >&2; }

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "ERROR: '$tool' not found; tests/http_audit needs Node 20+ and npm"
    exit 1
  fi
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  log "ERROR: Node $(node --version) is too old; tests/http_audit needs Node 20+"
  exit 1
fi

want="$(sha256sum "$AUDIT/package-lock.json" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -f "$AUDIT/node_modules/graphql-http/package.json" ]]; then
  exit 0
fi

log "installing tests/http_audit node packages (npm ci)"
output="$(cd "$AUDIT" && npm ci --no-audit --no-fund --loglevel=error 2>&1)" || {
  printf '%s\n' "$output" >&2
  log "ERROR: npm ci failed in tests/http_audit"
  exit 1
}
echo "$want" >"$STAMP"
