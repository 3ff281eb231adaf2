"""`stoker sync` end to end: a real repository, a real data directory, the gateway simulator."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import ROOT, commit_tree, git
from stoker_agent.applying import Applier
from support.gateway_data import files_of
from support.ignition_sim import GatewaySimulator
from support.stokercli import (
    BLUE,
    CLI,
    MULTI,
    local_sync,
    run_stoker,
    start_watch,
    sync_args,
    sync_command,
)


def blue_with(tmp_path: Path, **settings: Any) -> Path:
    """The example GatewaySync with these fields (wire names) set on profile blue, as a file."""
    body = yaml.safe_load(MULTI.read_text())
    body["spec"]["sync"]["profiles"]["blue"].update(settings)
    path = tmp_path / "cr.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_sync_delivers_the_commit_and_the_gateway_loads_it(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    done = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    jsonschema.validate(report, json.loads((ROOT / "docs/schemas/sync.schema.json").read_text()))
    assert report["result"] == "Synced"
    assert "projects/blue/project.json" in report["added"]
    assert set(sim.loaded_projects()) == {"blue", "global"}
    kinds = [scan.kind for scan in sim.scans if scan.trigger != "boot"]
    assert kinds == ["projects", "config"]
    status = json.loads((data / ".stoker/status.json").read_text())
    assert status["result"] == "Synced"
    assert status["added"]["count"] == len(report["added"])
    again = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    assert again.returncode == 0
    assert json.loads(again.stdout)["result"] == "InSync"
    assert [s.kind for s in sim.scans if s.trigger != "boot"] == ["projects", "config"]


def test_an_incremental_sync_changes_only_what_the_commit_changed(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    assert run_stoker(*sync_args(example_repo, data, sim, token)).returncode == 0
    home = "com.inductiveautomation.perspective/views/Home/view.json"
    view = example_repo / "services/ignition-blue/projects/blue" / home
    view.write_text(view.read_text().replace("}", ', "note": "v2"}', 1))
    git(example_repo, "commit", "-qam", "edit a view")
    done = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    report = json.loads(done.stdout)
    assert (report["added"], report["deleted"]) == ([], [])
    assert report["modified"] == [
        "projects/blue/com.inductiveautomation.perspective/views/Home/view.json"
    ]
    assert b'"note": "v2"' in (data / report["modified"][0]).read_bytes()


@pytest.mark.parametrize(
    ("breakage", "fragment"),
    [("wrong-token", "401"), ("unreachable", "unreachable"), ("not-json", "not JSON")],
)
def test_gateway_problems_stop_the_sync_before_any_file_changes(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], breakage: str, fragment: str
) -> None:
    sim, data, token = gateway
    before = files_of(data)
    args = sync_args(example_repo, data, sim, token)
    if breakage == "wrong-token":
        token.write_text("stoker:not-the-secret")
    elif breakage == "not-json":
        sim.fail("/", "garbage", times=-1)  # something else answers at the gateway's address
    else:
        sim.stop()
    done = run_stoker(*args)
    assert done.returncode == 1
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert files_of(data) == before
    assert json.loads((data / ".stoker/status.json").read_text())["result"] == "Error"


def test_designer_policy_fail_blocks_with_exit_4(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], tmp_path: Path
) -> None:
    sim, data, token = gateway
    sim.add_designer("alice", "blue")
    args = sync_args(
        example_repo, data, sim, token, cr=blue_with(tmp_path, designerSessionPolicy="fail")
    )
    done = run_stoker(*args)
    assert done.returncode == 4
    assert "alice on blue" in done.stderr
    assert not (data / "projects").exists()


def test_a_profile_can_sync_a_backup_gateway_anyway(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], tmp_path: Path
) -> None:
    sim, data, token = gateway
    sim.redundancy_role = "Backup"
    args = sync_args(example_repo, data, sim, token, cr=blue_with(tmp_path, applyOnBackup=True))
    done = run_stoker(*args)
    assert done.returncode == 0, done.stderr
    assert (data / "projects/blue/project.json").exists()


def test_backup_gateway_is_skipped(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    sim.redundancy_role = "Backup"
    done = run_stoker(*sync_args(example_repo, data, sim, token))
    assert done.returncode == 4
    assert "Skipped (backup)" in done.stderr
    assert not (data / "projects").exists()


def test_a_rejected_commit_is_rolled_back_and_held(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    assert run_stoker(*sync_args(example_repo, data, sim, token)).returncode == 0
    good = files_of(data)
    project = example_repo / "services/ignition-blue/projects/blue/project.json"
    project.write_text(project.read_text().replace("}", ', "description": "broken"}', 1))
    git(example_repo, "commit", "-qam", "a change the gateway refuses")
    sim.refused_projects.add("blue")
    done = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["result"] == "Rejected"
    assert "blue" in report["scan"]
    assert files_of(data) == good
    assert (data / ".stoker/rejected.json").exists()


def test_a_paused_profile_changes_nothing_and_scans_nothing_b10(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path], tmp_path: Path
) -> None:
    sim, data, token = gateway
    args = sync_args(example_repo, data, sim, token, cr=blue_with(tmp_path, paused=True))
    done = run_stoker(*args)
    assert done.returncode == 4, done.stdout + done.stderr
    assert not (data / "projects").exists()
    assert [s for s in sim.scans if s.trigger != "boot"] == []


def test_dry_run_plans_without_writing(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    done = run_stoker(*sync_args(example_repo, data, sim, token, "--dry-run", "--output", "json"))
    assert done.returncode == 2
    assert json.loads(done.stdout)["result"] == "DryRun"
    assert not (data / "projects").exists()


def test_dry_run_in_the_spec_plans_and_changes_nothing(
    example_repo: Path, tmp_path: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    cr = blue_with(tmp_path, dryRun=True)
    args = sync_args(example_repo, data, sim, token, "--output", "json", cr=cr)
    before = files_of(data)
    done = run_stoker(*args)
    assert done.returncode == 2, done.stderr  # changes pending, none made
    report = json.loads(done.stdout)
    assert report["result"] == "DryRun"
    assert "projects/blue/project.json" in report["added"]
    assert files_of(data) == before
    assert [s.kind for s in sim.scans if s.trigger != "boot"] == []


def test_without_a_gateway_url_nothing_is_scanned_and_the_output_says_so(
    example_repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    done = run_stoker(*sync_command(MULTI, example_repo, data, *BLUE))
    assert done.returncode == 0, done.stderr
    assert "not scanned" in done.stdout
    assert (data / "projects/blue/project.json").exists()


def test_a_second_sync_while_one_runs_is_blocked(example_repo: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with Applier(str(data)):
        done = run_stoker(*sync_command(MULTI, example_repo, data, *BLUE))
    assert done.returncode == 4
    assert "another sync holds" in done.stderr


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        (
            {"services/ignition-blue/projects/blue/logo.png": b"\x89PNG\x00{{.GatewayName}}"},
            "binary",
        ),
        ({"services/ignition-blue/projects/blue/project.json": b"not json"}, "not valid JSON"),
    ],
)
def test_bad_repository_content_is_a_clear_error_and_nothing_changes(
    make_repo: Any, tmp_path: Path, files: dict[str, bytes], fragment: str
) -> None:
    repo = make_repo(files)
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR)
    data = tmp_path / "data"
    data.mkdir()
    (data / "projects").mkdir()
    (data / "projects/keep.json").write_text("{}")
    done = run_stoker(*sync_command(cr, repo, data, "--gateway-name", "ignition-blue"))
    assert done.returncode == 1
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr
    assert files_of(data) == {"projects/keep.json": b"{}"}


def test_random_sigkills_of_a_real_sync_leave_the_old_or_the_new_commit(
    make_repo: Any, tmp_path: Path
) -> None:
    old = {f"p/proj{i % 8}/views/v{i}/view.json": f'{{"v": {i}}}' * 20 for i in range(400)}
    repo = make_repo(old)
    old_commit = git(repo, "rev-parse", "HEAD")
    new = {k.replace("proj7", "proj9"): v + " " for k, v in old.items()}
    new_commit = commit_tree(repo, new, "new")
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR.replace("services/{{.GatewayName}}/projects", "p"))
    base = tmp_path / "base"
    base.mkdir()
    args = ["sync", "--cr", str(cr), "--repo", str(repo), "--gateway-name", "g"]
    assert run_stoker(*args, "--data-dir", str(base), "--ref", old_commit).returncode == 0
    expected_old = files_of(base)
    rng = random.Random(1234)
    outcomes = set()
    for attempt in range(20):
        data = tmp_path / f"kill{attempt}"
        subprocess.run(["cp", "-a", str(base), str(data)], check=True)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stoker_agent.cli",
                *args,
                "--data-dir",
                str(data),
                "--ref",
                new_commit,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        Applier(str(data)).recover()
        after = files_of(data)
        if after == expected_old:
            outcomes.add("old")
        else:
            assert after == {f"projects/{k[2:]}": v.encode() for k, v in new.items()}, attempt
            outcomes.add("new")
        assert not (data / ".stoker/txn").exists()
        subprocess.run(["rm", "-rf", str(data)], check=True)
    assert outcomes  # both are acceptable; neither a mix nor a torn file is


CR = """\
apiVersion: stoker.io/v1alpha1
kind: GatewaySync
metadata:
  name: site
spec:
  git:
    repo: https://git.example/plant.git
    ref: main
  gateway:
    api:
      secretName: ignition-api-key
  sync:
    profiles:
      default:
        mappings:
          - source: "services/{{.GatewayName}}/projects"
            destination: projects
            template: true
            patches:
              - file: "*/project.json"
                set:
                  title: "{{.GatewayName}}"
"""


def test_drift_is_reported_and_gateway_stamps_are_not_drift(
    example_repo: Path, tmp_path: Path
) -> None:
    data, args = local_sync(example_repo, tmp_path)
    assert run_stoker(*args).returncode == 0
    code = data / "projects/blue/ignition/script-python/shifts/code.py"
    code.write_text("# edited on the gateway\n")
    (data / "projects/blue/project.json").unlink()
    stamped = data / "config/resources/dev/ignition/system-properties/resource.json"
    body = json.loads(stamped.read_text())
    body["attributes"]["lastModification"] = {
        "actor": "external",
        "timestamp": "2026-11-27T00:00:00Z",
    }
    body["attributes"]["lastModificationSignature"] = "f" * 64
    stamped.write_text(json.dumps(body, indent=4))
    done = run_stoker(*args, "--dry-run", "--output", "json")
    assert done.returncode == 2
    drift = {d["path"]: d["kind"] for d in json.loads(done.stdout)["drift"]}
    assert drift == {
        "projects/blue/ignition/script-python/shifts/code.py": "modified",
        "projects/blue/project.json": "deleted",
    }
    restored = run_stoker(*args, "--output", "json")
    assert json.loads(restored.stdout)["result"] == "Synced"
    assert code.read_text() != "# edited on the gateway\n"
    assert json.loads(stamped.read_text())["attributes"]["lastModificationSignature"] == "f" * 64


def test_a_new_commit_within_sync_period_is_planned_from_its_changes_then_fully_checked(
    example_repo: Path, tmp_path: Path
) -> None:
    data, args = local_sync(example_repo, tmp_path)
    assert json.loads(run_stoker(*args, "--output", "json").stdout)["driftChecked"] is True
    # Drift in a folder the next commit does not touch (folders on the way to a changed file
    # are always listed for real, so drift there is seen at once).
    gone = data / "projects/blue/ignition/script-python/shifts/code.py"
    gone.unlink()
    stray = data / "projects/blue/ignition/script-python/stray.txt"
    stray.write_text("left by hand\n")
    home = "com.inductiveautomation.perspective/views/Home/view.json"
    view = example_repo / "services/ignition-blue/projects/blue" / home
    view.write_text(view.read_text().replace("}", ', "note": "v2"}', 1))
    git(example_repo, "commit", "-qam", "edit a view")

    quick = json.loads(run_stoker(*args, "--output", "json").stdout)
    assert quick["driftChecked"] is False
    assert quick["desiredFromDiff"] is False  # profile blue's mappings overlap: built whole
    assert (quick["modified"], quick["added"], quick["deleted"]) == (
        [f"projects/blue/{home}"],
        [],
        [],
    )
    assert not gone.exists()  # left for the full check, which the status says did not run
    status = json.loads((data / ".stoker/status.json").read_text())
    assert status["driftChecked"] is False

    # The same commit again, within syncPeriod: every recorded file is stat'd (the deleted one
    # is restored, and the folders on its way listed: the stray file there is found); no other
    # folder is listed (a stray file elsewhere waits for the full check).
    far = data / "projects/blue" / home.replace("view.json", "stray.txt")
    far.write_text("left by hand too\n")
    resync = json.loads(run_stoker(*args, "--output", "json").stdout)
    assert resync["driftChecked"] is False
    assert (resync["added"], resync["deleted"]) == (
        [gone.relative_to(data).as_posix()],
        [stray.relative_to(data).as_posix()],
    )
    assert gone.exists()
    assert far.exists()

    full = json.loads(run_stoker(*args, "--full-check", "--output", "json").stdout)
    assert full["driftChecked"] is True
    assert (full["added"], full["deleted"]) == ([], [far.relative_to(data).as_posix()])
    assert not far.exists()


def test_a_resync_within_sync_period_stats_every_recorded_file_never_through_a_link(
    example_repo: Path, tmp_path: Path
) -> None:
    data, args = local_sync(example_repo, tmp_path)
    assert run_stoker(*args).returncode == 0
    code = data / "projects/blue/ignition/script-python/shifts/code.py"
    mode = code.stat().st_mode
    code.chmod(mode | 0o111)  # the executable bit: only its ctime tells
    project = data / "projects/blue/project.json"
    kept, before = project.read_bytes(), project.stat()
    project.write_bytes(kept[:-1] + b" ")  # edited, same size, mtime put back: its ctime tells
    os.utime(project, ns=(before.st_atime_ns, before.st_mtime_ns))
    # A managed folder moved out of the data directory and a link left in its place: what is
    # below it stats the same through the link, so it is never stat'd through one.
    views = data / "projects/blue/com.inductiveautomation.perspective/views"
    moved = tmp_path / "moved-views"
    views.rename(moved)
    views.symlink_to(moved)

    resync = run_stoker(*args, "--output", "json")
    report = json.loads(resync.stdout)
    assert report["driftChecked"] is False
    assert report["desiredFromDiff"] is False or report["result"] != "InSync"
    assert not views.is_symlink()  # replaced by the folder the commit holds
    assert project.read_bytes() == kept
    assert code.stat().st_mode & 0o111 == mode & 0o111
    assert sorted(p.name for p in moved.rglob("*")) == sorted(p.name for p in views.rglob("*")), (
        "the moved folder is left alone"
    )


def test_a_new_commit_after_sync_period_gets_a_full_check(
    example_repo: Path, tmp_path: Path
) -> None:
    data, args = local_sync(example_repo, tmp_path)
    assert run_stoker(*args).returncode == 0
    (data / "projects/blue/project.json").unlink()
    last = data / ".stoker/full-check"
    old = last.stat().st_mtime - 3600  # the last full check was an hour ago
    os.utime(last, (old, old))
    (example_repo / "services/ignition-blue/projects/blue/extra.json").write_text("{}")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "add a file")
    report = json.loads(run_stoker(*args, "--output", "json").stdout)
    assert report["driftChecked"] is True
    assert sorted(report["added"]) == ["projects/blue/extra.json", "projects/blue/project.json"]


def test_a_failed_scan_is_retried_not_sticky_b11(
    example_repo: Path, gateway: tuple[GatewaySimulator, Path, Path]
) -> None:
    sim, data, token = gateway
    sim.fail("/data/api/v1/scan/projects", 503, times=-1)
    failed = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["result"] == "Error"
    assert (data / "projects/blue/project.json").exists()  # applied; only the scan failed
    sim.clear_faults()
    retried = run_stoker(*sync_args(example_repo, data, sim, token, "--output", "json"))
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["result"] == "Synced"
    assert "blue" in sim.loaded_projects()
    assert not (data / ".stoker/scan-pending.json").exists()


def test_paths_that_need_a_restart_are_reported_as_restart_required(
    make_repo: Any, gateway: tuple[GatewaySimulator, Path, Path], tmp_path: Path
) -> None:
    sim, data, token = gateway
    repo = make_repo({"cfg/modules.json": '{"perspective": "3.3.3"}'})
    cr = tmp_path / "cr.yaml"
    cr.write_text(
        CR.replace('"services/{{.GatewayName}}/projects"', "cfg/modules.json")
        .replace("destination: projects", "destination: modules.json")
        .replace("template: true", "template: false")
        .split("            patches:")[0]
    )
    done = run_stoker(
        *sync_command(cr, repo, data, "--gateway-name", "g"),
        "--gateway-url",
        sim.url,
        "--api-token-file",
        str(token),
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    # Failed once, under load, with its output lost: a failure now shows what the sync said.
    assert json.loads(done.stdout)["result"] == "RestartRequired", done.stdout + done.stderr


def test_watch_prints_one_json_line_per_sync_and_follows_new_commits(
    example_repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    proc = start_watch(*sync_command(MULTI, example_repo, data, *BLUE))
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["result"] == "Synced"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["time"])
        project = example_repo / "services/ignition-blue/projects/blue/project.json"
        project.write_text(project.read_text().replace("}", ', "description": "v2"}', 1))
        git(example_repo, "commit", "-qam", "v2")
        for _ in range(20):
            line = json.loads(proc.stdout.readline())
            if line["result"] == "Synced":
                break
        assert line["modified"] == ["projects/blue/project.json"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(
    ("policy", "result", "restored"), [("report", "DryRun", False), ("restore", "Synced", True)]
)
def test_watch_runs_the_agents_loop_so_drift_follows_the_drift_policy(
    example_repo: Path, tmp_path: Path, policy: str, result: str, restored: bool
) -> None:
    cr = yaml.safe_load_all(MULTI.read_text())
    docs = list(cr)
    for doc in docs:
        doc["spec"]["sync"].setdefault("defaults", {})["driftPolicy"] = policy
    cr_file = tmp_path / "cr.yaml"
    cr_file.write_text(yaml.safe_dump_all(docs))
    data = tmp_path / "data"
    data.mkdir()
    proc = start_watch(*sync_command(cr_file, example_repo, data, *BLUE))
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["result"] == "Synced"
        managed = data / "projects/blue/project.json"
        wanted = managed.read_bytes()
        managed.write_text("edited by hand")
        for _ in range(20):
            line = json.loads(proc.stdout.readline())
            if line["drift"]:
                break
        assert line["result"] == result
        assert line["drift"] == [{"path": "projects/blue/project.json", "kind": "modified"}]
        assert (managed.read_bytes() == wanted) is restored
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0  # SIGTERM: the sync in progress ends, then the loop
        if proc.stdout is not None:
            proc.stdout.close()


def test_on_a_terminal_sync_shows_progress_and_still_reports(
    example_repo: Path, tmp_path: Path
) -> None:
    import pty

    data = tmp_path / "data"
    data.mkdir()
    args = [*CLI, *sync_command(MULTI, example_repo, data, *BLUE)]
    pid, fd = pty.fork()
    if pid == 0:  # the child runs stoker with a terminal as stdout
        os.execv(sys.executable, args)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert b"applying" in output
    assert b"result: Synced" in output


def _tree(repo: Path, entries: list[tuple[str, str, str]]) -> str:
    """Write a tree object straight into the repository, entry names unchecked (`git mktree`
    accepts ".." though git itself never writes one): how a crafted commit is made."""
    text = "".join(f"{mode} {kind} {oid}\t{name}\n" for mode, kind, oid, name in entries)
    done = subprocess.run(
        ["git", "mktree"], cwd=repo, input=text, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_a_crafted_commit_whose_paths_climb_with_dot_dot_is_refused_and_nothing_leaves(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "crafted"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo,
        input="pwned\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    inner = _tree(repo, [("100644", "blob", blob, "escaped.txt")])
    up = _tree(repo, [("040000", "tree", _tree(repo, [("040000", "tree", inner, "..")]), "..")])
    top = _tree(repo, [("040000", "tree", up, "projects")])
    git(repo, "update-ref", "refs/heads/main", git(repo, "commit-tree", top, "-m", "crafted"))
    assert "projects/../../escaped.txt" in git(repo, "ls-tree", "-r", "main")
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR.replace('"services/{{.GatewayName}}/projects"', "projects"))
    outer = tmp_path / "outer"
    data = outer / "data"
    (data / "projects").mkdir(parents=True)
    done = run_stoker(*sync_command(cr, repo, data, "--gateway-name", "ignition-blue"))
    assert done.returncode == 1
    assert "error: projects/..: this path in commit" in done.stderr  # the first such entry
    assert "crafted or is corrupt" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in outer.iterdir()) == ["data"]
    assert not (tmp_path / "escaped.txt").exists()
    assert files_of(data / "projects") == {}
