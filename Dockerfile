# One image for all four Tuanlian services. The command picks the service:
#
#   docker build -t tuanlian:local .
#   docker run --rm -e TUANLIAN_DATABASE_URL=... -e TUANLIAN_NATS_URL=... \
#       -p 8101:8101 tuanlian:local tuanlian serve contacts
#
# deploy/docker-compose.yml runs the whole stack (NATS JetStream, Postgres and the four services).
# Needs BuildKit (the default builder since Docker 23) for the uv cache mounts.

ARG PYTHON_IMAGE=python:3.11-slim

# --------------------------------------------------------------------------------------------
# builder: resolve nothing, install exactly what uv.lock says into /app/.venv
# --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

# The uv that wrote uv.lock (lock revision 5); pinned so that `--frozen` reads it the same way.
ARG UV_VERSION=0.13.8
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# 1) Third-party dependencies only. uv needs every workspace member's pyproject.toml to read the
#    lock, not their sources, so this layer is rebuilt only when a pyproject.toml or uv.lock changes.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/pyproject.toml
COPY cli/pyproject.toml cli/pyproject.toml
COPY services/contacts/pyproject.toml services/contacts/pyproject.toml
COPY services/wishes/pyproject.toml services/wishes/pyproject.toml
COPY services/scoring/pyproject.toml services/scoring/pyproject.toml
COPY services/notify/pyproject.toml services/notify/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace

# 2) The workspace members themselves, installed as ordinary (non-editable) wheels so that the
#    runtime stage needs nothing but the virtualenv. --frozen: fail rather than re-resolve if
#    uv.lock is out of date with a pyproject.toml.
COPY shared shared
COPY cli cli
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
 && /app/.venv/bin/tuanlian serve --help > /dev/null

# --------------------------------------------------------------------------------------------
# runtime: the virtualenv, a non-root user, nothing else
# --------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="tuanlian" \
      org.opencontainers.image.description="Tuanlian (团联) services: contacts, wishes, scoring, notify"

# A fixed numeric uid/gid so that volume ownership and `runAsNonRoot` policies are predictable.
# /data is TUANLIAN_HOME; /data/keys holds the token signing key that contacts creates on first
# start. It exists in the image, owned by the service user, so that a named volume mounted there
# is initialised with that ownership and mode.
RUN groupadd --system --gid 10001 tuanlian \
 && useradd --system --uid 10001 --gid tuanlian --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin tuanlian \
 && mkdir -p /data/keys \
 && chown -R tuanlian:tuanlian /data \
 && chmod 0700 /data/keys

COPY --from=builder /app/.venv /app/.venv
COPY deploy/healthcheck.py /app/healthcheck.py

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TUANLIAN_HOME=/data \
    TUANLIAN_HOST=0.0.0.0

USER 10001:10001
WORKDIR /data

# contacts, wishes, scoring, notify (tuanlian.shared.settings.DEFAULT_PORTS)
EXPOSE 8101 8102 8103 8104

# GET /healthz on the port of whichever service this container runs (slim has no curl: urllib).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "/app/healthcheck.py"]

# Override with `tuanlian serve wishes|scoring|notify` for the other services.
CMD ["tuanlian", "serve", "contacts"]
