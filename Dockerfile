# syntax=docker/dockerfile:1
# The sfmc_assets code location: the project and its locked dependencies (with the k8s and cloud extras),
# served to Dagster's webserver and daemon over gRPC. Used by the Helm chart's user deployment
# (deploy/helm/values.yaml) and by the runs the K8sRunLauncher starts from it. See docs/deploy.md.
#
#   docker build -t <registry>/sfmc-assets:<tag> .
#
# The install recipe is scripts/install-locked.sh, which CI runs the same way into a fresh venv
# (sfmc_assets_tests/deploy/test_image_install.py), since this file cannot be built there.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
ARG EXTRAS=k8s,cloud
RUN python -m pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    UV=uv PYTHON=/usr/local/bin/python3 bash scripts/install-locked.sh /opt/venv "${EXTRAS}"

FROM ${PYTHON_IMAGE}
# A fixed non-root user: Kubernetes can check it (runAsNonRoot) and the chart's securityContext names it.
RUN groupadd --system --gid 10001 dagster \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/dagster --create-home dagster \
 && mkdir -p /var/lib/sfmc_assets && chown 10001:10001 /var/lib/sfmc_assets
# Same paths as in the build stage: the venv's interpreter links and the editable install point there.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SFMC_ASSETS_HOME=/var/lib/sfmc_assets
WORKDIR /app
USER 10001:10001
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]
# The Helm chart replaces this command with its own `dagster code-server start` and the deployment's
# codeServerArgs (the same module); `docker run -p 4000:4000 <image>` serves the location as it is.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "sfmc_assets.definitions", "--location-name", "sfmc_assets"]
