# syntax=docker/dockerfile:1.7
# greenlight's image: the package installed from its wheel on a slim Python, run as a non-root
# user, fit for a read-only root filesystem. The builder stage turns the package and its runtime
# dependencies (no extras: the simulator/dev extras stay out) into wheels; the final stage
# installs only those wheels (no compiler, no source, no pip left behind). webhook/devtools/
# (local control plane, demo, load generator, benches) never reaches the build: .dockerignore.
# tests/unit/test_image.py runs these same commands outside Docker.
#
# PYTHON_IMAGE is any Python >= 3.11 whose `pip` on PATH installs into a prefix whose bin/ is on
# PATH: the official python images (/usr/local), or the Debian-python base that
# hack/build-image.sh assembles where no registry is reachable (a venv at /opt/venv on PATH).
# Both stages must use the same base (the wheels are built for its Python).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
# Optional build secrets (never stored in a layer): a pip config (index, proxy, timeouts) and
# the CA bundle it names as /run/secrets/pipcert. hack/build-image.sh passes the host's own pip
# configuration this way; a plain `docker build` passes none and pip uses its defaults.
# CONTEXT_DIGEST (hack/build-image.sh: a hash of the Dockerfile and the build context; Docker
# needs none) works around buildah/podman 1.28 (Debian 12): their layer cache ignores what a
# `from=builder` bind mount holds, so a source change would reuse a stale install below, and a
# cached builder stage cannot be mounted at all. Declared in both stages, it reruns both RUNs
# together whenever anything they depend on changes.
ARG CONTEXT_DIGEST=
RUN --mount=type=secret,id=pipconf,target=/etc/pip.conf --mount=type=secret,id=pipcert \
    pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="greenlight" \
      org.opencontainers.image.description="Carbon-aware admission for Kubernetes Jobs" \
      org.opencontainers.image.licenses="Apache-2.0"
# Nothing is written outside mounted volumes: no bytecode caches, HOME in /tmp (an emptyDir in
# the chart), certificates in /certs (a mounted Secret).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    GREENLIGHT_SERVER__CERT_DIR=/certs
# See the builder stage: the install reruns whenever the wheels are rebuilt.
ARG CONTEXT_DIGEST=
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/greenlight-*.whl \
    && pip uninstall --yes pip
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443 9090
ENTRYPOINT ["greenlight"]
CMD ["serve"]
