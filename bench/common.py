"""What the benchmarks that build their own repositories share."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`."""
    return subprocess.run(
        ["git", "-c", "gc.auto=0", *args],
        cwd=repo,
        env=GIT_ENV,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
