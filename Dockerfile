# syntax=docker/dockerfile:1
# The hub's container image (docs/deploy.md#container-image).
#
#   docker build -t hub .
#   docker run --rm -p 8000:8000 -e HUB_DATABASE_URL=postgresql://hub:secret@db:5432/hub hub
#
# Three stages: the explorer's browser libraries from npm, the Python environment, and a slim
# runtime that runs `hub serve` as an unprivileged user. The hub runs from its source layout
# (/app: hub/, alembic/, node_modules/...), installed editable into /opt/venv, because it finds
# its migrations and the explorer's libraries next to the package.

ARG PYTHON_VERSION=3.11
ARG NODE_VERSION=20

# ---- 1. browser libraries of the GraphiQL explorer and /journeys (package.json) ----
FROM node:${NODE_VERSION}-bookworm-slim AS assets
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

# ---- 2. the Python environment: hub and its dependencies, with the OpenTelemetry extra ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY hub/ hub/
COPY schema/ schema/
COPY resolvers/ resolvers/
COPY loaders/ loaders/
COPY seeds/ seeds/
COPY alembic/ alembic/
RUN /opt/venv/bin/pip install -e ".[otel]"

# ---- 3. runtime ----
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="hub" \
      org.opencontainers.image.description="GraphQL customer-360 data hub"
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid hub --home-dir /var/lib/hub --create-home hub
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY --from=assets /app/node_modules /app/node_modules
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HUB_DATA_DIR=/var/lib/hub/data \
    HUB_LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
EXPOSE 8000
# Liveness: the process answers. Readiness (database reachable) is /readyz, for the balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# `docker stop` sends SIGTERM: uvicorn drains in-flight requests and the lifespan closes pools.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hub"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
