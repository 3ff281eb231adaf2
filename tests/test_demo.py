"""`make demo` (examples/demo.sh, examples/demo.py): after every step the data directory, the
status file and the simulator hold what the step says; one commit id per step; every path the
printed commands name still exists when the demo ends."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from conftest import EXAMPLES, ROOT
from support.gateway_data import gateway_owned

VIEW = "projects/blue/com.inductiveautomation.perspective/views/Home/view.json"
SHIFTS = "projects/blue/ignition/script-python/shifts"
DEV = "config/resources/dev/ignition/system-properties/config.json"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo", EXAMPLES / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def status(demo: Any) -> dict[str, Any]:
    return json.loads((demo.data / ".stoker/status.json").read_text())


def head(demo: Any) -> str:
    return str(demo.git("rev-parse", "HEAD"))


def dry_run(demo: Any) -> subprocess.CompletedProcess[str]:
    args = ["sync", *demo.identity(), "--data-dir", str(demo.data), "--dry-run", "-o", "json"]
    return subprocess.run(
        [sys.executable, "-m", "stoker_agent.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_demo_step_leaves_the_state_it_announces(tmp_path: Path) -> None:
    module = load_demo()
    seen: dict[str, Any] = {}
    core_before: set[str] = set()

    def check(step: str, demo: Any) -> None:
        nonlocal core_before
        seen[step] = True
        data = demo.data
        if step == "plan":
            assert demo.codes == {"plan-blue": 2, "plan-red": 2}
            assert not (data / "projects").exists()  # a plan writes nothing
            core_before = gateway_owned(data)
            assert "config/resources/core/ignition/security-properties/config.json" in core_before
            return
        assert gateway_owned(data) >= core_before  # no gateway-owned file is ever deleted
        loaded = set(demo.sim.loaded_projects())
        if step == "first":
            assert status(demo)["result"] == "Synced"
            assert status(demo)["commit"] == head(demo)
            assert loaded == {"blue", "global"}
            assert (data / SHIFTS / "code.py").is_file()
            assert (data / DEV).is_file()
            stamped = json.loads((data / SHIFTS / "resource.json").read_text())["attributes"]
            assert stamped["lastModification"]["actor"] == "external"  # the gateway's stamp
            again = dry_run(demo)
            assert again.returncode == 0, again.stdout + again.stderr
            assert json.loads(again.stdout)["drift"] == []  # stamps are neither drift nor change
        elif step == "change":
            assert "Blue Line 2 Overview" in (data / VIEW).read_text()
            assert status(demo)["modified"]["paths"] == [VIEW]
            assert status(demo)["commit"] == head(demo)
            home = demo.sim.resource("projects/blue/com.inductiveautomation.perspective/views/Home")
            assert b"Blue Line 2 Overview" in home.data("view.json")
        elif step == "delete":
            assert not (data / SHIFTS).exists()
            assert demo.sim.resource(SHIFTS) is None
            assert status(demo)["deleted"]["count"] == 2
            assert loaded == {"blue", "global"}
        elif step == "refuse":
            assert demo.codes["refuse"] == 1
            assert (data / DEV).is_file()  # nothing deleted
            assert status(demo)["result"] == "Error"
            assert "allowEmpty" in status(demo)["error"]
        elif step == "reverted":
            assert status(demo)["result"] == "InSync"
            assert status(demo)["commit"] == head(demo)
        elif step == "reject":
            assert demo.codes["reject"] == 3
            assert status(demo)["result"] == "Rejected"
            assert status(demo)["commit"] == head(demo)
            on_disk = json.loads((data / "projects/blue/project.json").read_text())
            assert "description" not in on_disk or "module" not in on_disk["description"]
            assert (data / ".stoker/rejected.json").is_file()
            assert "blue" not in loaded  # the simulator refused it: the reason for the rollback

    assert module.main(tmp_path / "demo", check) == 0
    assert list(seen) == ["plan", "first", "change", "delete", "refuse", "reverted", "reject"]


def test_the_demo_script_prints_one_commit_id_per_step_and_no_dangling_paths(
    tmp_path: Path,
) -> None:
    work = tmp_path / "demo"
    done = subprocess.run(
        ["bash", str(EXAMPLES / "demo.sh"), "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    out = done.stdout
    committed = re.findall(r"-> commit ([0-9a-f]{12})", out)
    assert len(set(committed)) == len(committed) == 6
    last, synced = "", 0
    for line in out.splitlines():  # each sync or plan names the commit made just before it
        if made := re.search(r"-> commit ([0-9a-f]{12})", line):
            last = made.group(1)
        elif shown := re.search(r"ref HEAD  commit ([0-9a-f]{12})", line):
            assert shown.group(1) == last, line
            synced += 1
    assert synced == 7  # two plans; syncs of the first commit, change, deletion, revert, reject
    for line in (x for x in out.splitlines() if x.startswith("$ .venv/bin/stoker ")):
        for path in re.findall(r"--(?:cr|repo|data-dir|api-token-file) (\S+)", line):
            assert (ROOT / path).exists(), f"{path} named in {line!r} is gone"
    assert "projects did not load: blue" in out
    assert "the gateway runs 2 project(s): blue, global" in out
    history = out.split("every sync this gateway received", 1)[1]
    results = re.findall(r"^  \S+Z\s+(\w+)\s+([0-9a-f]{12})", history, re.MULTILINE)
    # newest first: the rejected commit, the revert, the refusal, the deletion, change, first
    assert [r for r, _ in results] == ["Rejected", "InSync", "Error", "Synced", "Synced", "Synced"]
    assert results[0][1] == last  # the rejected commit is the last one made
