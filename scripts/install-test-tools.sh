#!/usr/bin/env bash
# Install the Node tools used by the tests, exactly as pinned in their package-lock.json files:
# tests/http_audit (the npm `graphql-http` package, GraphQL-over-HTTP server audits, with its `graphql` peer,
# and the `graphql-ws` client, with `ws` as Node 20 has no WebSocket client, used by tests/subscriptions) and
# tests/sso/idp (`oidc-provider`, the real OpenID provider of the single sign-on tests); and the browser the
# console tests drive (tests/console, tests/sso): Debian's `chromium` and `chromium-driver`.
#
# Idempotent and quiet: each directory is skipped when its node_modules already matches its lock file (a stamp
# holds the lock's hash); otherwise `npm ci`. Fails loudly (non-zero exit, npm's output on stderr) when node/npm is missing
# or the install fails. Needs: Node 20+ and npm, and the npm registry (only when installing). The browser:
# skipped when both binaries are on PATH; otherwise `apt-get update` and `apt-get install` (as root, no
# prompt; waits for a dpkg lock another install holds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Each directory with the package its install is checked by.
NODE_DIRS=("tests/http_audit:graphql-http" "tests/sso/idp:oidc-provider")

log() { printf '[test-tools] %s\n' "$*" >&2; }

install_node_packages() {
  for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      log "ERROR: '$tool' not found; the tests need Node 20+ and npm"
      exit 1
    fi
  done
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if (( node_major < 20 )); then
    log "ERROR: Node $(node --version) is too old; the tests need Node 20+"
    exit 1
  fi
  local entry
  for entry in "${NODE_DIRS[@]}"; do
    install_node_dir "${entry%%:*}" "${entry#*:}"
  done
}

install_node_dir() {
  local where="$1" package="$2"
  local dir="$ROOT/$where" stamp="$ROOT/$where/node_modules/.installed-lock-sha256" want output
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -f "$dir/node_modules/$package/package.json" ]]; then
    return 0
  fi
  log "installing $where node packages (npm ci)"
  output="$(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error 2>&1)" || {
    printf '%s\n' "$output" >&2
    log "ERROR: npm ci failed in $where"
    exit 1
  }
  echo "$want" >"$stamp"
}

install_browser() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if [[ "$(id -u)" != "0" ]]; then
    log "ERROR: chromium and chromium-driver are missing and installing them needs root (apt-get)"
    exit 1
  fi
  log "installing chromium and chromium-driver (apt-get)"
  local output apt=(apt-get -q -y -o DPkg::Lock::Timeout=600)
  output="$( { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update \
    && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends chromium chromium-driver; } 2>&1 )" || {
    printf '%s\n' "$output" >&2
    log "ERROR: apt-get could not install chromium and chromium-driver"
    exit 1
  }
}
install_node_packages
install_browser
