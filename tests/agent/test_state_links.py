"""H3: Stoker's state files are never written, read or removed through a linked `.stoker`.

Whoever can write the data directory can replace `.stoker` with a link to anywhere; the sync
refuses that link, and nothing it writes afterwards (its status) may go through it either.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

CR = """apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata: {name: plant}
spec:
  git: {repo: unused, ref: main}
  gateway: {api: {secretName: k}}
  sync:
    profiles:
      default:
        mappings: [{source: projects, destination: projects}]
"""


def test_H3_a_linked_stoker_directory_is_never_written_through(
    tmp_path: Path, make_repo: Callable[[dict[str, bytes | str]], Path]
) -> None:
    repo = make_repo({"projects/p/project.json": '{"title": "p"}'})
    cr, data, elsewhere = tmp_path / "cr.yaml", tmp_path / "data", tmp_path / "elsewhere"
    cr.write_text(CR)
    data.mkdir()
    elsewhere.mkdir()
    planted = {
        "status.json": '{"result": "Synced", "note": "not Stoker\'s"}',
        "scan-pending.json": '{"changed": ["projects/x"]}',
    }
    for name, text in planted.items():
        (elsewhere / name).write_text(text)
    (data / ".stoker").symlink_to(elsewhere)  # planted by whoever can write the data dir
    done = subprocess.run(
        [
            sys.executable, "-m", "stoker_agent.cli", "sync", "--cr", str(cr),
            "--repo", str(repo), "--ref", "main", "--data-dir", str(data),
            "--gateway-name", "blue",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert ".stoker" in done.stderr
    assert "link" in done.stderr
    assert "Traceback" not in done.stderr
    assert {p.name: p.read_text() for p in elsewhere.iterdir()} == planted
    assert not (data / "projects").exists()
