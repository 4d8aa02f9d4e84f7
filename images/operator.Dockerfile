# syntax=docker/dockerfile:1
# The operator image: `llm-operator run` as a non-root user on a read-only root filesystem
# (the chart mounts its config at /etc/llm-operator and an emptyDir at /tmp).
# It installs only the [operator] extra (docs/architecture.md). Build from the repository root:
#   docker build -f images/operator.Dockerfile -t ghcr.io/llmops-dev/llm-operator:0.1.0 .
FROM python:3.11-slim AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[operator]'

FROM python:3.11-slim
# jemalloc (the chart's default allocator, docs/reconciler.md "Memory"), at one path on every
# architecture: the chart preloads /usr/local/lib/libjemalloc.so.2.
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 \
    && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc.so.2$')" /usr/local/lib/libjemalloc.so.2 \
    && rm -rf /var/lib/apt/lists/*
# Installed from the wheels stage without copying them into a layer of this image.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels 'llm-operator[operator]'
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["llm-operator"]
CMD ["run", "--config=/etc/llm-operator/config.yaml"]
