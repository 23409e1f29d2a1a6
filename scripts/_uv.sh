# Sourced by scripts/dev and scripts/test: a pinned uv, the locked environment, no interpreter downloads.
set -euo pipefail
export UV_PYTHON_DOWNLOADS=never
UV_VERSION="0.13.9"
if ! python3 -m uv --version 2>/dev/null | grep -q "$UV_VERSION"; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
uv() { python3 -m uv "$@"; }
