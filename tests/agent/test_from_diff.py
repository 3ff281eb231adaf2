"""A new commit's desired tree built from its changes (`git diff-tree`), the rest of the manifest
carried forward (issue 18 item 1): real repositories, real data directories, and always the same
files as a sync that builds the tree whole."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, git
from stoker_agent.applying import Applier
from stoker_agent.gitrepo import Repository
from stoker_agent.syncing import SyncResult, read_manifest, sync_commit
from stoker_core import profiles
from stoker_core.manifest import MANIFEST_PATH
from stoker_core.templates import TemplateContext
from stoker_core.validation import load
from support.gateway_data import files_of


def cr(*mappings: dict[str, Any], sync_period: int = 3600) -> dict[str, Any]:
    return {
        "apiVersion": "stoker.io/v1alpha1",
        "kind": "GatewaySync",
        "metadata": {"name": "site", "namespace": "plant"},
        "spec": {
            "git": {"repo": "https://git.example/plant.git", "ref": "main"},
            "gateway": {"api": {"secretName": "ignition-api-key"}},
            "sync": {
                "defaults": {"syncPeriod": sync_period},
                "profiles": {"default": {"mappings": list(mappings)}},
            },
        },
    }


# Plain, templated (naming the commit) and patched files side by side.
CR = cr(
    {"source": "projects", "destination": "projects"},
    {"source": "config", "destination": "config", "template": True},
    {
        "source": "settings.json",
        "destination": "settings.json",
        "patches": [{"set": {"commit": "{{.Commit}}"}}],
    },
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for p in range(4):
        for v in range(5):
            path = repo / f"projects/p{p}/views/v{v}/view.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"p": p, "v": v}))
    (repo / "projects/p0/views/v0/.resources").mkdir()
    (repo / "projects/p0/views/v0/.resources/only-excluded").write_text("x")
    (repo / "config").mkdir()
    (repo / "config/a.txt").write_text("at {{.Commit}}")
    (repo / "config/b.txt").write_text("gateway {{.GatewayName}}")
    (repo / "settings.json").write_text("{}")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    return repo


def sync(
    repo: Path,
    data: Path,
    body: dict[str, Any] = CR,
    gateway: str = "gw",
    *,
    full_check: bool = False,
) -> SyncResult:
    gs = load(body)
    effective = profiles.resolve(gs.spec.sync, None)
    data.mkdir(exist_ok=True)
    with Repository(str(repo)) as repository:
        commit = repository.resolve("main")
        context = TemplateContext(gateway_name=gateway, commit=commit, vars=effective.vars)
        snapshot = repository.snapshot(commit)
        return sync_commit(str(data), snapshot, effective, context, full_check=full_check)


def whole(repo: Path, tmp_path: Path, name: str, **kwargs: Any) -> dict[str, bytes]:
    """The files a sync into an empty directory (the tree built whole) delivers."""
    data = tmp_path / name
    assert not sync(repo, data, **kwargs).from_diff
    return files_of(data)


def commit(repo: Path, message: str, files: dict[str, str | None]) -> None:
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_a_one_file_commit_is_built_from_its_changes_and_lands_as_a_whole_build_would(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    assert not sync(repo, data).from_diff  # nothing recorded yet
    commit(repo, "one view", {"projects/p1/views/v3/view.json": '{"edited": 1}'})
    result = sync(repo, data)
    assert result.from_diff
    assert not result.full_check
    assert sorted(result.plan.modified) == [
        "config/a.txt",  # a template naming the commit: its mapping is built whole
        "projects/p1/views/v3/view.json",
        "settings.json",  # patched with the commit
    ]
    assert result.plan.unchanged == 20
    assert files_of(data) == whole(repo, tmp_path, "whole")
    manifest = read_manifest(str(data))
    assert manifest is not None
    assert manifest.inputs
    assert manifest.skipped == ()


def test_files_added_and_removed_and_an_emptied_folder_are_built_from_the_changes(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    sync(repo, data)
    gone: dict[str, str | None] = {f"projects/p2/views/v{v}/view.json": None for v in range(5)}
    commit(
        repo,
        "add and remove",
        {
            "projects/p3/views/v9/view.json": "{}",
            "projects/p0/views/v0/view.json": None,  # leaves a folder holding an excluded file
            **gone,
        },
    )
    result = sync(repo, data)
    assert result.from_diff
    assert files_of(data) == whole(repo, tmp_path, "whole")
    assert not (data / "projects/p2").exists()


OVERLAPPING = cr(
    {"source": "projects", "destination": "projects"},
    {"source": "projects/p1", "destination": "projects/p1/copy"},
)
ONE_MORE = cr(
    *CR["spec"]["sync"]["profiles"]["default"]["mappings"],
    {"source": "projects/p1", "destination": "p1-copy"},
)


@pytest.mark.parametrize(
    ("why", "before", "after", "gateway"),
    [
        ("a template value changed", CR, CR, "gw2"),
        ("the mappings changed", CR, ONE_MORE, "gw"),
        ("mappings overlap", OVERLAPPING, OVERLAPPING, "gw"),
    ],
)
def test_where_the_changes_cannot_be_exact_the_tree_is_built_whole(
    repo: Path,
    tmp_path: Path,
    why: str,
    before: dict[str, Any],
    after: dict[str, Any],
    gateway: str,
) -> None:
    data = tmp_path / "data"
    sync(repo, data, before)
    commit(repo, "one view", {"projects/p1/views/v3/view.json": '{"edited": 1}'})
    second = sync(repo, data, after, gateway)
    assert not second.from_diff, why
    assert files_of(data) == whole(repo, tmp_path, "whole", body=after, gateway=gateway)


def test_after_a_rollback_the_next_commit_is_built_from_its_changes_exactly(
    repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    sync(repo, data)
    commit(repo, "two", {"projects/p1/views/v3/view.json": '{"two": 2}', "config/c.txt": "new"})
    assert sync(repo, data).from_diff
    with Applier(str(data)) as applier:
        assert applier.rollback()
    commit(repo, "three", {"projects/p2/views/v1/view.json": '{"three": 3}'})
    result = sync(repo, data)
    assert result.from_diff
    assert files_of(data) == whole(repo, tmp_path, "whole")


def killed_sync(repo: Path, data: Path, crash_at: int) -> dict[str, Any] | None:
    """A sync in a child process SIGKILLed at step `crash_at` of its transaction: None when
    it was killed, else what it did."""
    args = {"cr": CR, "repo": str(repo), "commit": git(repo, "rev-parse", "HEAD")}
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "support.syncrun",
            json.dumps({**args, "data_dir": str(data), "crash_at": crash_at}),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode in (0, -9), done.stderr
    return None if done.returncode else json.loads(done.stdout)


def test_after_a_crash_at_any_step_the_next_commit_is_built_from_its_changes_exactly(
    repo: Path, tmp_path: Path
) -> None:
    # support.syncrun renders no commit into templates: every sync here does the same.
    synced = tmp_path / "synced"
    synced.mkdir()
    killed_sync(repo, synced, 10_000)
    commit(repo, "two", {"projects/p1/views/v3/view.json": '{"two": 2}', "config/c.txt": "new"})
    step = 1
    while True:
        data = tmp_path / f"crash{step}"
        shutil.copytree(synced, data, symlinks=True)
        killed = killed_sync(repo, data, step) is None
        with Applier(str(data)) as applier:
            applier.recover()
        commit(repo, f"three {step}", {"projects/p2/views/v1/view.json": f'{{"s": {step}}}'})
        after = killed_sync(repo, data, 10_000)  # the next sync, after the crash was recovered
        assert after is not None
        assert after["from_diff"], f"after a crash at step {step}"
        fresh = tmp_path / f"fresh{step}"
        fresh.mkdir()
        killed_sync(repo, fresh, 10_000)
        assert files_of(data) == files_of(fresh), f"after a crash at step {step}"
        if not killed:
            break
        step += 3


def test_a_record_planted_in_the_manifest_is_never_written_from(repo: Path, tmp_path: Path) -> None:
    # Whoever writes the data directory can edit the manifest: a record it plants where the
    # commit changes something would be a file to write from a blob git does not hold.
    data = tmp_path / "data"
    sync(repo, data)
    base = data / MANIFEST_PATH
    body = json.loads(base.read_text())
    real = body["files"]["projects/p1/views/v3/view.json"]
    body["files"]["projects/p1/views/v3/planted.json"] = ["0" * 40, *real[1:]]
    base.write_text(json.dumps(body))
    commit(repo, "one view", {"projects/p1/views/v3/view.json": '{"edited": 1}'})
    result = sync(repo, data)
    assert not result.from_diff  # the plan rewrote a carried file: built whole instead
    assert not (data / "projects/p1/views/v3/planted.json").exists()
    assert files_of(data) == whole(repo, tmp_path, "whole")


def test_a_mapping_inside_a_folder_another_mapping_excludes_is_not_rewritten_at_every_sync(
    repo: Path, tmp_path: Path
) -> None:
    # projects/p1/cache is excluded from the projects mapping and is where a second mapping
    # delivers: the walk of projects prunes it, so the second one's root is walked on its own.
    commit(repo, "cache", {"cache/c.json": "{}"})
    nested = cr(
        {"source": "projects", "destination": "projects"},
        {"source": "cache", "destination": "projects/p1/cache/c"},
    )
    nested["spec"]["sync"]["defaults"]["excludePatterns"] = ["projects/p1/cache"]
    data = tmp_path / "data"
    assert sync(repo, data, nested).plan.added
    commit(repo, "one view", {"projects/p2/views/v1/view.json": '{"edited": 1}'})
    quick = sync(repo, data, nested)  # the manifest's view (built whole: mappings overlap)
    assert not quick.full_check
    assert quick.plan.modified == ["projects/p2/views/v1/view.json"]
    again = sync(repo, data, nested, full_check=True)
    assert again.full_check
    assert not again.plan.has_changes
    (data / "projects/p1/cache/c/stray.json").write_text("{}")
    (data / "projects/p1/cache/kept.json").write_text("{}")
    swept = sync(repo, data, nested, full_check=True)
    assert swept.plan.deleted == ["projects/p1/cache/c/stray.json"]
    assert (data / "projects/p1/cache/kept.json").exists()
