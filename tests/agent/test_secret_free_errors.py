"""H6: an error about rendered content names the file, the path in it and the type, never text.

A secret variable (`--var-file`, `varsFrom`) rendered into a file must not come back in an error
message: not in the JSON output, not on stderr, not in `.stoker/status.json`. Masking known
values is not enough, since a cut message can hold half a secret; so no fragment may appear.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SECRET = "Zq7-Wellhead-Pump-Station-Password-0192837465-end"
CR = """apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata: {name: plant}
spec:
  git: {repo: unused, ref: main}
  gateway: {api: {secretName: k}}
  sync:
    profiles:
      default:
        mappings:
          - source: config/db.json
            destination: config/resources/external/db.json
            patches:
              - set:
                  connection: "{{.Vars.password}}"
                  connection.user: "operator"
"""


def fragments(secret: str, size: int = 6) -> set[str]:
    """Every piece of `secret` long enough to help a guess."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.mark.parametrize("output", ["json", "text"])
def test_H6_a_patch_error_never_quotes_a_rendered_secret(
    tmp_path: Path, make_repo: Callable[[dict[str, bytes | str]], Path], output: str
) -> None:
    repo = make_repo({"config/db.json": '{"connection": "placeholder", "pool": 4}'})
    cr, password, data = tmp_path / "cr.yaml", tmp_path / "password", tmp_path / "data"
    cr.write_text(CR)
    password.write_text(SECRET + "\n")
    data.mkdir()
    done = subprocess.run(
        [
            sys.executable, "-m", "stoker_agent.cli", "sync", "--cr", str(cr),
            "--repo", str(repo), "--ref", "main", "--data-dir", str(data),
            "--gateway-name", "blue", "--var-file", f"password={password}", "--output", output,
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1
    everything = done.stdout + done.stderr + (data / ".stoker/status.json").read_text()
    assert "config/resources/external/db.json" in everything  # the file is named...
    assert "connection.user" in everything  # ...and the patch path...
    assert "string" in everything  # ...and the type found there
    assert not [piece for piece in fragments(SECRET) if piece in everything]
    assert "Traceback" not in done.stderr
    assert not (data / "config").exists()
