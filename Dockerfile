# syntax=docker/dockerfile:1.7
# HITL Patch Service image: vertice-dev/hitl-patch-service
#
#   docker build -t vertice-dev/hitl-patch-service:0.1.0 .
#
# builder: exports the locked runtime requirements from uv.lock, builds the project wheel, and
#          installs both into /opt/venv (CPU-only xgboost: xgboost-cpu, never the CUDA wheel).
# runtime: slim Python + that venv only; no compiler, no uv, no sources; non-root uid 10001.
# tests/deploy/test_image.py runs this file's builder RUN steps outside Docker and starts the result.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    VIRTUAL_ENV=/opt/venv \
    BUILD_OUT=/tmp/build
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY graphql_api ./graphql_api
COPY db ./db
COPY ml ./ml
RUN --mount=type=cache,target=/root/.cache/uv \
    set -eu; \
    mkdir -p "$BUILD_OUT"; \
    uv export --frozen --no-dev --no-emit-project --format requirements-txt -o "$BUILD_OUT/requirements.txt"; \
    grep -q '^xgboost-cpu==' "$BUILD_OUT/requirements.txt"; \
    if grep -Eq '^(xgboost|nvidia-[a-z0-9-]+)==' "$BUILD_OUT/requirements.txt"; then \
      echo 'the CUDA xgboost wheel must not be installed' >&2; exit 1; \
    fi; \
    uv build --wheel --out-dir "$BUILD_OUT/dist"; \
    uv venv --python "$(python3 -c 'import sys; print(sys.executable)')" "$VIRTUAL_ENV"; \
    uv pip install --python "$VIRTUAL_ENV/bin/python" --require-hashes -r "$BUILD_OUT/requirements.txt"; \
    uv pip install --python "$VIRTUAL_ENV/bin/python" --no-deps "$BUILD_OUT"/dist/*.whl; \
    "$VIRTUAL_ENV/bin/hitl" --help >/dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="hitl-patch-service" \
      org.opencontainers.image.description="Human-in-the-loop gate between generated security patches and production" \
      org.opencontainers.image.licenses="Proprietary"
RUN groupadd --system --gid 10001 hitl \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin hitl
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    HITL_HOST=0.0.0.0 \
    HITL_PORT=8027
# Nothing to write here: the root filesystem can be read-only (the service only writes to /tmp).
WORKDIR /app
USER 10001:10001
EXPOSE 8027
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HITL_PORT', '8027'), timeout=4)"]
CMD ["hitl", "serve", "--host", "0.0.0.0", "--port", "8027"]
