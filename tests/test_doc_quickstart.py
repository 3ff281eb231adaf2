"""The quickstart's GatewaySync fits the example repository it tells you to push: validated and
planned for the gateway `ignition-blue` exactly as the quickstart's commands do."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import ROOT

DOC = (ROOT / "docs" / "quickstart.md").read_text()


def test_the_quickstart_gatewaysync_delivers_the_example_project(
    example_repo: Path, tmp_path: Path
) -> None:
    found = [
        doc
        for body in re.findall(r"```yaml\n(.*?)```", DOC, re.DOTALL)
        for doc in yaml.safe_load_all(body)
        if doc.get("kind") == "GatewaySync"
    ]
    assert len(found) == 1
    cr = tmp_path / "plant.yaml"
    cr.write_text(yaml.safe_dump(found[0]))
    data = tmp_path / "empty-data"
    data.mkdir()
    stoker = [sys.executable, "-m", "stoker_agent.cli"]
    subprocess.run([*stoker, "validate", str(cr)], check=True, capture_output=True)
    done = subprocess.run(
        [
            *stoker,
            "plan",
            "--cr",
            str(cr),
            "--repo",
            str(example_repo),
            "--data-dir",
            str(data),
            "--gateway-name",
            "ignition-blue",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr  # changes pending
    added = yaml.safe_load(done.stdout)["added"]
    assert {"projects/blue/project.json", "projects/global/project.json"} <= set(added)
