"""The quickstart, as written: part 1 (without a cluster) runs line by line against the gateway
simulator and a copy of a gateway's data directory, and its GatewaySync fits the example
repository it tells you to push, validated and planned as its commands do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import GIT_ENV, ROOT
from support.gateway_data import gateway_owned, write_gateway_data
from support.ignition_sim import running

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


QUICK = DOC[DOC.index("## 1. Without a cluster") : DOC.index("## 2. On a kind cluster")]
PLACES = {  # the quickstart's paths on a real machine -> this test's copies
    "/srv/config-repo": "repo",
    "/usr/local/bin/ignition/data": "data",
    "/etc/stoker/api-token": "api-token",
}
VIEW = "projects/blue/com.inductiveautomation.perspective/views/Home/view.json"
SHIFTS = "projects/blue/ignition/script-python/shifts"


def quickstart_commands() -> list[list[str]]:
    """The command blocks of part 1, one list of lines per block, `make demo` left out."""
    blocks = re.findall(r"```\n(.*?)```", QUICK, re.DOTALL)
    return [block.strip().splitlines() for block in blocks if block.strip() != "make demo"]


def test_the_quickstart_without_a_cluster_runs_as_written_and_keeps_the_gateways_own_files(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    token = write_gateway_data(data)  # a gateway with its own core collection, as one has
    (tmp_path / "api-token").write_text(token + "\n")
    owned = gateway_owned(data)
    env = {**os.environ, **GIT_ENV, "HOME": str(tmp_path), "NO_COLOR": "1"}
    first, second = quickstart_commands()
    assert first[0].startswith("export PATH=")
    with running(data) as sim:
        outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = []
        for block in (first, second):
            for line in block:
                command = line.replace("http://localhost:8088", sim.url)
                for place, copy in PLACES.items():
                    command = command.replace(place, str(tmp_path / copy))
                script = f"{first[0]}\n{command}"  # each line in the shell the doc starts with
                done = subprocess.run(
                    ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
                )
                outputs.append((line, done))
            if block is first:
                codes = [done.returncode for _, done in outputs]
                assert codes == [0, 0, 0, 0, 0, 0, 2, 2, 0], outputs
                assert set(sim.loaded_projects()) == {"blue", "global"}
                assert (data / SHIFTS / "code.py").is_file()
                assert "the gateway runs 2 project(s): blue, global" in outputs[-1][1].stdout
                assert "warning:" not in "".join(d.stderr for _, d in outputs)
        last = outputs[-1][1]
        assert [done.returncode for _, done in outputs[-4:]] == [0, 0, 0, 0], outputs[-4:]
        assert f"~ {VIEW}" in last.stdout
        assert f"- {SHIFTS}/code.py" in last.stdout
        assert "Blue Line 2 Overview" in (data / VIEW).read_text()
        assert not (data / SHIFTS).exists()
        assert sim.resource(SHIFTS) is None
        home = sim.resource(str(Path(VIEW).parent))
        assert home is not None
        assert b"Blue Line 2 Overview" in home.data("view.json")
    assert gateway_owned(data) >= owned  # nothing of the gateway's own core or identity deleted
    assert not (data / "projects/QuickStart").exists()  # projects/ belongs to Git, as it says
