"""H1: nothing the gateway can write makes git run code or read configuration as the sync user.

The old standalone mirror lived in `DATA/.stoker/git`, so a gateway could plant hooks,
`core.fsmonitor`, `core.sshCommand`, filters, includes and alternates there. These tests plant
each of them in the old place and in the data directory, run real `stoker sync` processes
against a real git daemon, and check that no planted program ran and that the old mirror is gone.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from support.gitservers import BareRepo, GitDaemon

SRC = Path(__file__).resolve().parents[2] / "src"
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
FILES = {"projects/p/project.json": '{"title": "p"}'}


def planted_program(where: Path, marker: Path) -> Path:
    """An executable that leaves `marker` behind if anything runs it."""
    script = where / "evil.sh"
    script.write_text(f'#!/bin/sh\necho "$0 $*" >> {marker}\nexit 0\n')
    script.chmod(0o755)
    return script


def plant_repository(git_dir: Path, program: Path) -> None:
    """A bare repository whose hooks, configuration and attributes all name `program`."""
    subprocess.run(["git", "init", "--quiet", "--bare", str(git_dir)], check=True)
    hooks = git_dir / "hooks"
    for hook in ("reference-transaction", "post-checkout", "pre-auto-gc", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\nexec {program} hook {hook}\n")
        (hooks / hook).chmod(0o755)
    included = git_dir / "evil.inc"
    included.write_text(f"[core]\n\thooksPath = {hooks}\n\tpager = {program}\n")
    with (git_dir / "config").open("a") as config:
        config.write(
            f"[core]\n\tfsmonitor = {program}\n\tsshCommand = {program}\n"
            f"\tgitProxy = {program}\n[include]\n\tpath = {included}\n"
            f'[filter "evil"]\n\tsmudge = {program}\n\tclean = {program}\n'
            f"[credential]\n\thelper = !{program}\n[safe]\n\tdirectory = *\n"
        )
    (git_dir / "info").mkdir(exist_ok=True)
    (git_dir / "info/attributes").write_text("* filter=evil\n")
    alternate = git_dir.parent / "alternate-objects"
    alternate.mkdir(exist_ok=True)
    (git_dir / "objects/info/alternates").write_text(f"{alternate}\n")


def stoker_sync(
    cr: Path, url: str, data: Path, home: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("STOKER_MIRROR_DIR", None)
    return subprocess.run(
        [
            sys.executable, "-m", "stoker_agent.cli", "sync", "--cr", str(cr), "--repo", url,
            "--ref", "main", "--data-dir", str(data), "--gateway-name", "blue",
            "--output", "json", *extra,
        ],
        cwd=data,  # a repository planted in the caller's directory must not be read either
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path, git_root: Path) -> tuple[Path, Path, Path, Path]:
    BareRepo.create(git_root, "plant", FILES)
    cr = tmp_path / "cr.yaml"
    cr.write_text(CR)
    data, home = tmp_path / "data", tmp_path / "home"
    (data / ".stoker").mkdir(parents=True)
    home.mkdir(mode=0o700)
    return cr, data, home, tmp_path / "ran"


def test_H1_nothing_planted_in_the_old_mirror_or_the_data_directory_runs(
    git_daemon: GitDaemon, setup: tuple[Path, Path, Path, Path]
) -> None:
    cr, data, home, marker = setup
    program = planted_program(data, marker)
    plant_repository(data / ".stoker/git", program)  # the old mirror's place
    plant_repository(data / ".git", program)  # discovered from the caller's directory
    (data / ".gitconfig").write_text(f"[core]\n\tfsmonitor = {program}\n")
    for _ in range(2):  # the first sync fetches, the second finds the commit in the mirror
        done = stoker_sync(cr, git_daemon.url_for("plant"), data, home)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] in ("Synced", "InSync")
        assert not marker.exists(), marker.read_text()
    assert (data / "projects/p/project.json").read_text() == '{"title": "p"}'
    assert not (data / ".stoker/git").exists()  # removed, never used
    mirrors = list((home / ".cache/stoker/mirrors").iterdir())
    assert len(mirrors) == 1
    assert stat.S_IMODE(mirrors[0].stat().st_mode) == 0o700
    assert not (mirrors[0] / "objects/info/alternates").exists()


def test_H1_a_link_at_the_old_mirror_place_is_removed_and_its_target_kept(
    git_daemon: GitDaemon, setup: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    cr, data, home, _ = setup
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("not Stoker's")
    (data / ".stoker/git").symlink_to(elsewhere)  # planted by whoever can write the data dir
    done = stoker_sync(cr, git_daemon.url_for("plant"), data, home)
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(data / ".stoker/git")
    assert [p.name for p in elsewhere.iterdir()] == ["keep"]


@pytest.mark.parametrize("inside", ["data", "data/.stoker/mirror", "data/projects"])
def test_H1_a_mirror_directory_inside_the_data_directory_is_refused(
    git_daemon: GitDaemon, setup: tuple[Path, Path, Path, Path], tmp_path: Path, inside: str
) -> None:
    cr, data, home, _ = setup
    done = stoker_sync(
        cr, git_daemon.url_for("plant"), data, home, "--mirror-dir", str(tmp_path / inside)
    )
    assert done.returncode != 0
    assert "--mirror-dir" in done.stderr
    assert "inside the data directory" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (data / "projects").exists()


def test_H1_a_mirror_under_a_directory_others_can_write_is_refused(
    git_daemon: GitDaemon, setup: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    cr, data, home, _ = setup
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # not sticky: anyone could swap the mirror for their own
    done = stoker_sync(
        cr, git_daemon.url_for("plant"), data, home, "--mirror-dir", str(shared / "m")
    )
    assert done.returncode != 0
    assert str(shared) in done.stderr
    assert "another user" in done.stderr
    assert "Traceback" not in done.stderr


def test_H1_git_started_by_stoker_reads_no_configuration_from_home_or_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stoker_agent import gitexec  # here, so the other tests also run on older code

    hostile = tmp_path / "hostile"
    subprocess.run(["git", "init", "--quiet", str(hostile)], check=True)
    subprocess.run(["git", "-C", str(hostile), "config", "stoker.planted", "repo"], check=True)
    (hostile / ".gitconfig").write_text("[stoker]\n\tplanted = home\n")
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("HOME", str(hostile))
    monkeypatch.setenv("GIT_DIR", str(hostile / ".git"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'stoker.planted=env'")
    done = gitexec.run(["config", "--get", "stoker.planted"], capture_output=True, text=True)
    assert done.returncode == 1, done.stdout  # not found anywhere git looked
    hooks = gitexec.run(["config", "--get", "core.hooksPath"], capture_output=True, text=True)
    assert hooks.stdout.strip() == os.devnull


def test_H1_every_git_process_in_the_code_is_started_by_gitexec() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "gitexec.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            starts_git = (
                isinstance(node, ast.List | ast.Tuple)
                and node.elts
                and isinstance(node.elts[0], ast.Constant)
                and node.elts[0].value == "git"
            )
            imports_gitpython = isinstance(node, ast.Import) and any(
                alias.name == "git" for alias in node.names
            )
            imports_gitpython |= isinstance(node, ast.ImportFrom) and node.module == "git"
            if starts_git or imports_gitpython:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")  # type: ignore[attr-defined]
    assert offenders == [], "start git through stoker_agent.gitexec: " + ", ".join(offenders)
