# Controller, admission webhooks and push receiver: `stoker controller|webhook|receiver`.
# Rendered from adapters/images/images.toml by adapters/images/recipe.py (edit those,
# then run `python adapters/images/recipe.py --write`); the offline build uses the same
# recipe. Build from the repository root:
#   docker build -f adapters/images/controller.Dockerfile .
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --wheel-dir /wheels ".[k8s]"

FROM debian:bookworm-slim
# git runs `git ls-remote` for ref resolution; nothing else is needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates git openssh-client \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/stoker \
 && /opt/stoker/bin/pip install --no-cache-dir --no-index --find-links /wheels "stoker[k8s]" \
 && rm -rf /wheels
ENV PATH=/opt/stoker/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 9443 9444
ENTRYPOINT ["stoker"]
CMD ["controller"]
