# syntax=docker/dockerfile:1
# The hub's container image (docs/deploy.md#container-image).
#
#   docker build -t hub .
#   docker run --rm -p 8000:8000 -e HUB_DATABASE_URL=postgresql://hub:secret@db:5432/hub hub
#
# Two stages around one artefact, the wheel: the first builds it (`pip wheel .`, whose build
# step runs `npm ci` for the explorer's and /journeys' browser libraries and puts the files the
# pages load inside the package), the second installs that wheel into a virtualenv and runs it.
# The runtime image has no Node.js, no npm and no source tree. tests/packaging/test_wheel.py
# checks the same wheel installed the same way (a fresh venv, no Node.js on PATH).

ARG PYTHON_VERSION=3.11
ARG NODE_VERSION=20

FROM node:${NODE_VERSION}-bookworm-slim AS node

# ---- 1. the wheel: Python and Node.js, the source tree ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
WORKDIR /src
COPY pyproject.toml setup.py README.md package.json package-lock.json ./
# hub/schema, hub/resolvers, hub/loaders, hub/seeds and hub/alembic are links to these folders.
COPY hub/ hub/
COPY schema/ schema/
COPY resolvers/ resolvers/
COPY loaders/ loaders/
COPY seeds/ seeds/
COPY alembic/ alembic/
RUN pip wheel . --no-deps -w /dist

# ---- 2. runtime: the wheel installed, with the OpenTelemetry extra ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="hub" \
      org.opencontainers.image.description="GraphQL customer-360 data hub"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /var/lib/hub --create-home hub
COPY --from=wheel /dist/ /tmp/dist/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install "$(echo /tmp/dist/hub-*.whl)[otel]" \
 && rm -rf /tmp/dist
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_DATA_DIR=/var/lib/hub/data \
    HUB_LOG_FORMAT=json
WORKDIR /var/lib/hub
USER 10001:10001
EXPOSE 8000
# Liveness: the process answers. Readiness (database reachable) is /readyz, for the balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `docker stop` sends SIGTERM: uvicorn drains in-flight requests and the lifespan closes pools.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
