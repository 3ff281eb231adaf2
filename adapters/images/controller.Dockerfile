# Controller, admission webhooks and push receiver: `stoker controller|webhook|receiver`.
# Build from the repository root: docker build -f adapters/images/controller.Dockerfile .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels ".[agent,k8s]"

FROM python:3.11-slim
# git runs `git ls-remote` for ref resolution; nothing else is needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "stoker[agent,k8s]" \
 && rm -rf /wheels
ENV HOME=/tmp PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 9443 9444
ENTRYPOINT ["stoker"]
CMD ["controller"]
