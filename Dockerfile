# gpulease: one image for every service (bot, worker, beat, migrations).
#
#   docker build -t gpulease:0.1.0 .
#   docker run --rm gpulease:0.1.0 --help
#
# The default command serves the Slack bot over HTTP on port 3000 (/slack/events, /healthz, /livez,
# /metrics); the same image runs `worker`, `beat` and `db upgrade` (see docker-compose.yml
# and deploy/). Settings are GPULEASE_* environment variables (README, Configuration).
#
# Pin the base by digest in your registry for reproducible builds, e.g.
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> .
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its dependencies into a virtualenv --------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN pip install --upgrade pip setuptools wheel
# Dependencies first, from pyproject.toml alone, so a change to the code reuses this layer.
# Every one ships wheels for this platform (psycopg[binary] included): no compiler needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
# Then the project itself (pyproject.toml names README.md as its long description).
COPY README.md ./
COPY config ./config
COPY leases ./leases
COPY provisioners ./provisioners
COPY workflows ./workflows
COPY bot ./bot
COPY gpulease ./gpulease
COPY sandbox ./sandbox
RUN pip install --no-deps . \
 && pip check \
 && gpulease --help > /dev/null

# --- runtime: the virtualenv, the probe script, an unprivileged user ---------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GPULEASE_LOG_FORMAT=json
COPY deploy/probe.py /usr/local/bin/gpulease-probe
RUN groupadd --system --gid 10001 gpulease \
 && useradd --system --uid 10001 --gid gpulease --home-dir /var/lib/gpulease --no-create-home \
      --shell /usr/sbin/nologin gpulease \
 && install -d -o gpulease -g gpulease -m 0750 /var/lib/gpulease /var/lib/gpulease/beat \
 && chmod 0755 /usr/local/bin/gpulease-probe
COPY --from=build /opt/venv /opt/venv
# /var/lib/gpulease/beat exists so a volume mounted there starts out owned by gpulease.
WORKDIR /var/lib/gpulease
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 3000
ENTRYPOINT ["gpulease"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]
# For the default command (the bot). docker-compose.yml gives worker and beat their own check
# and turns it off for the one-shot migration; Kubernetes ignores it and uses its probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["gpulease-probe", "http", "http://127.0.0.1:3000/healthz"]
