#!/usr/bin/env bash
# Install the offline deployment-check tools used by tests/deploy into .cache/deploy-tools/.
#
#   kubernetes-validate  own venv   .cache/deploy-tools/kubernetes-validate/bin/kubernetes-validate
#   checkov              own venv   .cache/deploy-tools/checkov/bin/checkov
#                        (checkov pins an older `packaging`: never install it into the project venv)
#   promtool             Debian's `prometheus` package, unpacked (no daemon is installed or started)
#                                   .cache/deploy-tools/debian/usr/bin/promtool
#                        and its server, which tests/monitoring starts on 127.0.0.1 for a run
#                                   .cache/deploy-tools/debian/usr/bin/prometheus
#   ShellCheck           Debian's `shellcheck` package, unpacked (lints deploy/deploy.sh)
#                                   .cache/deploy-tools/debian/usr/bin/shellcheck
#
# Idempotent: a tool already present at its pinned version is left alone. Re-run with
# DEPLOY_TOOLS_FORCE=1 to reinstall everything. Needs: uv or python3 (venv), apt-get, dpkg-deb.
set -euo pipefail

KUBERNETES_VALIDATE_VERSION="1.37.0"
CHECKOV_VERSION="3.3.30"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${DEPLOY_TOOLS_DIR:-$ROOT/.cache/deploy-tools}"
DEB_ROOT="$TOOLS/debian"
mkdir -p "$TOOLS" "$DEB_ROOT"

log() { printf '[deploy-tools] %s\n' "$*" >&2; }

if [[ "${DEPLOY_TOOLS_FORCE:-0}" == "1" ]]; then
  log "DEPLOY_TOOLS_FORCE=1: removing $TOOLS"
  rm -rf "${TOOLS:?}"/*
  mkdir -p "$DEB_ROOT"
fi

# A real interpreter path (not a pyenv shim) so the venvs keep working.
PYTHON="$(python3 -c 'import sys; print(sys.executable)')"
# uv when there is one (faster; scripts/_uv.sh installs it as a module), else venv + pip.
UV=()
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
  UV=(python3 -m uv)
fi

# install_pip_tool NAME VERSION: NAME==VERSION into $TOOLS/NAME (its own venv).
install_pip_tool() {
  local name="$1" version="$2" venv="$TOOLS/$1" stamp="$TOOLS/$1/.installed-version"
  if [[ -x "$venv/bin/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
    log "$name $version already installed"
    return 0
  fi
  log "installing $name==$version into $venv"
  rm -rf "$venv"
  if [[ ${#UV[@]} -gt 0 ]]; then
    "${UV[@]}" venv --quiet --python "$PYTHON" "$venv"
    # --no-config and an explicit --python: never touches the project's environment or lock.
    VIRTUAL_ENV="$venv" "${UV[@]}" pip install --quiet --no-config --python "$venv/bin/python" "$name==$version"
  else
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$name==$version"
  fi
  echo "$version" >"$stamp"
}

# install_deb PACKAGE BINARY: unpack Debian's PACKAGE into $DEB_ROOT so usr/bin/BINARY exists.
install_deb() {
  local pkg="$1" bin="$2" stamp="$DEB_ROOT/.installed-$1"
  local candidate
  candidate="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [[ -x "$DEB_ROOT/usr/bin/$bin" && -f "$stamp" ]] && \
     [[ -z "$candidate" || "$candidate" == "(none)" || "$(cat "$stamp")" == "$candidate" ]]; then
    log "$pkg $(cat "$stamp") already unpacked"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  log "downloading Debian package $pkg"
  if ! (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1); then
    log "apt-get download $pkg failed; running apt-get update and retrying"
    apt-get update -q >/dev/null
    (cd "$tmp" && apt-get download -q "$pkg" >/dev/null)
  fi
  local deb
  deb="$(ls "$tmp"/"$pkg"_*.deb)"
  dpkg-deb -x "$deb" "$DEB_ROOT"
  dpkg-deb -f "$deb" Version >"$stamp"
  log "unpacked $(basename "$deb")"
}

install_pip_tool kubernetes-validate "$KUBERNETES_VALIDATE_VERSION"
install_pip_tool checkov "$CHECKOV_VERSION"
install_deb prometheus promtool
install_deb shellcheck shellcheck

# Smoke-check every tool so a broken install fails here, not in the middle of the tests.
"$TOOLS/kubernetes-validate/bin/kubernetes-validate" --version >/dev/null
"$TOOLS/checkov/bin/checkov" --version >/dev/null
"$DEB_ROOT/usr/bin/promtool" --version >/dev/null 2>&1
"$DEB_ROOT/usr/bin/prometheus" --version >/dev/null 2>&1
"$DEB_ROOT/usr/bin/shellcheck" --version >/dev/null
log "ok: kubernetes-validate $KUBERNETES_VALIDATE_VERSION, checkov $CHECKOV_VERSION," \
    "prometheus $(cat "$DEB_ROOT/.installed-prometheus"), shellcheck $(cat "$DEB_ROOT/.installed-shellcheck")"
