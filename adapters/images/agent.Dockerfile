# The sync agent sidecar: `stoker agent`. Non-root, works with readOnlyRootFilesystem
# (writes only to /tmp, /repo and the gateway's data volume), git and ssh included.
# Build from the repository root: docker build -f adapters/images/agent.Dockerfile .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels ".[agent,k8s]"

FROM python:3.11-slim
# libnss-wrapper gives ssh a passwd entry when the pod's UID has none (the gateway's UID).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client libnss-wrapper ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "stoker[agent,k8s]" \
 && rm -rf /wheels
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1
USER 65534:65534
EXPOSE 8082
ENTRYPOINT ["stoker"]
CMD ["agent"]
