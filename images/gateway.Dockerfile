# syntax=docker/dockerfile:1
# The gateway sidecar image: `llm-gateway` in front of the engine in every model pod, as a
# non-root user on a read-only root filesystem (the operator passes --config and --port).
# It installs only the [gateway] extra (docs/architecture.md). Build from the repository root:
#   docker build -f images/gateway.Dockerfile -t ghcr.io/llmops-dev/llm-gateway:0.1.0 .
FROM python:3.11-slim AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[gateway]'

FROM python:3.11-slim
# Installed from the wheels stage without copying them into a layer of this image.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels 'llm-operator[gateway]'
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["llm-gateway"]
