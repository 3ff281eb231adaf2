"""What the benchmarks that build their own repositories share."""

from __future__ import annotations

import os

# git needs an identity to commit; the benchmarks never use the machine's.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def gatewaysync(name: str, mapping: str) -> str:
    """A minimal GatewaySync (YAML) whose `default` profile has the one `mapping` (flow style)."""
    return f"""apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata: {{name: {name}}}
spec:
  git: {{repo: /unused, ref: main}}
  gateway: {{api: {{secretName: k}}}}
  sync:
    profiles:
      default:
        mappings:
          - {mapping}
"""
