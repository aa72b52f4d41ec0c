# syntax=docker/dockerfile:1.7
# greenlight's image: the package installed from its wheel on a slim Python, run as a non-root
# user, fit for a read-only root filesystem. The builder stage turns the package and every
# dependency into wheels; the final stage installs only those wheels (no compiler, no source,
# no pip left behind). tests/e2e/test_image.py runs these same commands outside Docker.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY webhook ./webhook
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="greenlight" \
      org.opencontainers.image.description="Carbon-aware admission for Kubernetes Jobs" \
      org.opencontainers.image.licenses="Apache-2.0"
# Nothing is written outside mounted volumes: no bytecode caches, matplotlib's cache and HOME
# in /tmp (an emptyDir in the chart), certificates in /certs (a mounted Secret).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    GREENLIGHT_SERVER__CERT_DIR=/certs
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/greenlight-*.whl \
    && pip uninstall --yes pip
USER 65532:65532
WORKDIR /tmp
EXPOSE 8443 9090
ENTRYPOINT ["greenlight"]
CMD ["serve"]
