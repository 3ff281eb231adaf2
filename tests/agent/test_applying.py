"""The crash-safe applier: exact results, recovery after a crash at every step, rollback,
one writer at a time, no link ever followed, a forged journal refused, and a failure in the
commit phase (or in its rollback) never leaving a half-old, half-new tree."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, commit_tree, git
from core.helpers import manifest_with
from stoker_agent.applying import (
    JOURNAL_VERSION,
    SYNC_FILES,
    Applier,
    ApplyError,
    DataDir,
    write_state_file,
)
from stoker_agent.gitrepo import Repository
from stoker_agent.syncing import read_manifest, sync_commit
from stoker_core import profiles
from stoker_core.errors import Blocked
from stoker_core.plans import Reason
from stoker_core.templates import TemplateContext
from stoker_core.validation import load

CR = manifest_with(
    {
        "default": {
            "mappings": [
                {"source": "p", "destination": "projects"},
                {"source": "c", "destination": "config/resources/core"},
            ]
        }
    }
)


def old_files() -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {}
    for i in range(120):
        files[f"p/proj{i % 6}/views/v{i}/view.json"] = f'{{"v": {i}}}'
    files["p/proj0/typechange"] = "a file that becomes a directory"
    files["c/ignition/system-properties/config.json"] = '{"systemName": "old"}'
    files["p/proj1/run.sh"] = "#!/bin/sh\n"
    return files


def new_files() -> dict[str, bytes | str]:
    files = {k: v for k, v in old_files().items() if "proj5" not in k}  # delete a project
    for i in range(0, 120, 4):
        files[f"p/proj{i % 6}/views/v{i}/view.json"] = f'{{"v": {i}, "changed": true}}'
    for i in range(30):
        files[f"p/proj7/new/n{i}.json"] = "x" * (i * 50)
    del files["p/proj0/typechange"]
    files["p/proj0/typechange/inside.json"] = "{}"
    files["c/ignition/system-properties/config.json"] = '{"systemName": "new"}'
    return files


def tree_of(root: Path) -> dict[str, Any]:
    """Every path under root except Stoker's state: content and exec bit, or 'dir'."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] == ".stoker":
            continue
        for name in dirnames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if rel != ".stoker":
                out[rel] = "dir"
        for name in filenames:
            path = Path(dirpath) / name
            out[os.path.normpath(os.path.join(rel_dir, name))] = (
                path.read_bytes(),
                bool(path.stat().st_mode & 0o111),
            )
    return out


@pytest.fixture
def repo(make_repo: Any) -> tuple[Path, str, str]:
    repo = make_repo(old_files())
    os.chmod(repo / "p/proj1/run.sh", 0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "exec bit")
    old = git(repo, "rev-parse", "HEAD")
    new = commit_tree(repo, new_files(), "new")
    return repo, old, new


def sync(repo: Path, commit: str, data: Path, **kwargs: Any) -> Any:
    gs = load(CR)
    effective = profiles.resolve(gs.spec.sync, None)
    with Repository(str(repo)) as r:
        return sync_commit(
            str(data), r.snapshot(commit), effective, TemplateContext(gateway_name="gw"), **kwargs
        )


@pytest.fixture
def synced_old(repo: tuple[Path, str, str], tmp_path: Path) -> Path:
    """A data directory already synced to the repository's old commit."""
    path, old, _ = repo
    data = tmp_path / "data"
    data.mkdir()
    sync(path, old, data)
    return data


def test_apply_makes_the_directory_equal_the_commit_and_records_a_manifest(
    repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    path, old, new = repo
    data = tmp_path / "data"
    data.mkdir()
    (data / "db").mkdir()
    (data / "db" / "config.idb").write_bytes(b"gateway state")
    first = sync(path, old, data)
    assert first.applied
    assert (data / "projects/proj1/run.sh").stat().st_mode & 0o111
    second = sync(path, new, data)
    assert second.applied
    expected = {f"projects/{k[2:]}" for k in new_files() if k.startswith("p/")}
    actual = {k for k, v in tree_of(data / "projects").items() if v != "dir"}
    assert {f"projects/{k}" for k in actual} == expected
    assert (data / "db" / "config.idb").read_bytes() == b"gateway state"
    assert not (data / ".stoker" / "txn").exists()
    manifest = read_manifest(str(data))
    assert manifest is not None
    assert manifest.commit == new
    assert len(manifest.records) == len(new_files())
    again = sync(path, new, data)
    assert not again.applied
    assert not again.plan.has_changes


def test_a_no_change_sync_reads_no_file_content(
    repo: tuple[Path, str, str], synced_old: Path
) -> None:
    path, old, _ = repo
    data = synced_old
    os.chmod(data / "projects/proj0/views/v0/view.json", 0o000)  # reading it would fail
    try:
        result = sync(path, old, data)
    finally:
        os.chmod(data / "projects/proj0/views/v0/view.json", 0o644)
    assert not result.applied
    if os.geteuid() != 0:  # root reads anything; the manifest check still ran without error
        assert result.plan.unchanged == len(old_files())


def test_a_touched_but_equal_file_is_read_once_then_trusted_again(
    repo: tuple[Path, str, str], synced_old: Path
) -> None:
    path, old, _ = repo
    data = synced_old
    touched = data / "projects/proj0/views/v0/view.json"
    os.utime(touched, ns=(1, 1))  # as a copy by another tool would: same bytes, new stat
    first = sync(path, old, data)
    reasons = {op.path: op.reason for op in first.plan.operations}
    assert reasons["projects/proj0/views/v0/view.json"] is Reason.VERIFIED
    assert not first.plan.has_changes
    record = read_manifest(str(data)).records["projects/proj0/views/v0/view.json"]
    assert record.mtime_ns == 1  # the manifest follows the file, so the next sync trusts it
    second = sync(path, old, data)
    assert {op.reason for op in second.plan.operations} == {Reason.UNCHANGED}


def crash_run(
    repo: Path, commit: str, data: Path, crash_at: int | None
) -> subprocess.CompletedProcess[str]:
    args = {
        "cr": CR,
        "repo": str(repo),
        "commit": commit,
        "data_dir": str(data),
        "crash_at": crash_at,
    }
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    return subprocess.run(
        [sys.executable, "-m", "support.syncrun", json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_a_crash_after_any_step_leaves_the_old_or_the_new_commit_exactly(
    repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    path, old, new = repo
    base = tmp_path / "base"
    base.mkdir()
    sync(path, old, base)
    expected_old = tree_of(base)
    done = tmp_path / "done"
    shutil.copytree(base, done, symlinks=True)
    sync(path, new, done)
    expected_new = tree_of(done)
    assert expected_old != expected_new
    outcomes = []
    step = 1
    while True:
        data = tmp_path / f"crash{step}"
        shutil.copytree(base, data, symlinks=True)
        run = crash_run(path, new, data, step)
        crashed = run.returncode == -9
        assert crashed or run.returncode == 0, run.stderr
        assert Applier(str(data)).recover() in ("none", "rolled-back", "rolled-forward")
        after = tree_of(data)
        assert after in (expected_old, expected_new), f"torn state after crash at step {step}"
        assert not (data / ".stoker" / "txn").exists()
        sync(path, new, data)  # the next sync converges from either state
        assert tree_of(data) == expected_new
        outcomes.append(after == expected_new)
        shutil.rmtree(data)
        if not crashed:
            break
        step += 1
    assert step > 50  # every journaled change was a crash point
    assert outcomes[0] is False
    assert outcomes[-1] is True


def test_rollback_restores_exactly_what_the_last_sync_replaced(
    repo: tuple[Path, str, str], synced_old: Path
) -> None:
    path, old, new = repo
    data = synced_old
    before = tree_of(data)
    sync(path, new, data)
    with Applier(str(data)) as applier:
        assert applier.rollback() is True
        assert applier.rollback() is False  # only the last transaction can be undone
    assert tree_of(data) == before
    assert not sync(path, old, data).plan.has_changes  # the manifest matches the restored files


def test_a_second_writer_is_blocked(tmp_path: Path) -> None:
    with Applier(str(tmp_path)), pytest.raises(Blocked, match="another sync holds"):
        Applier(str(tmp_path)).lock()


def test_interrupted_prepare_is_dropped_and_legacy_staging_removed(tmp_path: Path) -> None:
    (tmp_path / ".stoker/txn/new").mkdir(parents=True)
    (tmp_path / ".stoker/txn/new/0").write_bytes(b"half")
    (tmp_path / ".sync-staging/projects").mkdir(parents=True)
    assert Applier(str(tmp_path)).recover() == "rolled-back"
    assert not (tmp_path / ".stoker/txn").exists()
    assert not (tmp_path / ".sync-staging").exists()


def test_a_link_swapped_in_after_planning_is_never_followed(
    repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    path, old, _ = repo
    data = tmp_path / "data"
    outside = tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    gs = load(CR)
    effective = profiles.resolve(gs.spec.sync, None)
    from stoker_agent.localtree import LocalTree
    from stoker_core import desired, planning

    with Repository(str(path)) as r:
        snap = r.snapshot(old)
        plan = planning.plan(
            desired.build(effective, snap, TemplateContext(gateway_name="gw")), LocalTree(str(data))
        )
        (data / "projects").symlink_to(outside)  # swapped in between plan and apply
        with Applier(str(data)) as applier, pytest.raises(ApplyError, match="symbolic link"):
            applier.apply(plan, lambda op: [op.content or b""], profile="default", previous=None)
    assert list(outside.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing ownership needs root")
def test_new_files_take_the_owner_of_their_directory(
    repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    path, old, _ = repo
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 4321, 4321)
    sync(path, old, data)
    for dirpath, dirnames, filenames in os.walk(data / "projects"):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            assert (st.st_uid, st.st_gid) == (4321, 4321), name


def memory_tree_of(root: Path) -> Any:
    """The live directory as a MemoryTree (the oracle's input)."""
    from stoker_core.trees import EXECUTABLE, REGULAR, MemoryTree

    tree = MemoryTree()
    for rel, value in tree_of(root).items():
        if value == "dir":
            tree.mkdir(rel)
        else:
            tree.put(rel, value[0], EXECUTABLE if value[1] else REGULAR)
    return tree


def test_the_real_applier_agrees_with_the_pure_oracle(
    repo: tuple[Path, str, str], tmp_path: Path
) -> None:
    from stoker_agent.localtree import LocalTree
    from stoker_core import desired, planning
    from stoker_core.plans import apply_to

    path, old, new = repo
    data = tmp_path / "data"
    data.mkdir()
    sync(path, old, data)
    (data / "projects/proj2/stray.json").write_text("not in git")
    gs = load(CR)
    effective = profiles.resolve(gs.spec.sync, None)
    with Repository(str(path)) as r:
        snap = r.snapshot(new)
        tree = desired.build(effective, snap, TemplateContext(gateway_name="gw"))
        plan = planning.plan(tree, LocalTree(str(data)), read_manifest(str(data)))
        blobs = {f.blob: snap.read(f.source) for f in tree.files.values()}
        expected = apply_to(plan, memory_tree_of(data), blobs)
    sync(path, new, data)
    actual = memory_tree_of(data)
    assert actual.content() == expected.content()
    assert {p: m & 0o111 for p, (_, m) in actual.files.items()} == {
        p: m & 0o111 for p, (_, m) in expected.files.items()
    }
    assert actual.dirs == expected.dirs


@pytest.mark.parametrize(
    "journal",
    [
        "{not json",
        json.dumps({"version": 1, "state": "half-done", "changes": []}),
        json.dumps({"version": 1, "state": "committing", "changes": [["write"]]}),
    ],
)
def test_a_damaged_journal_is_refused_by_name_and_nothing_is_dropped(
    tmp_path: Path, journal: str
) -> None:
    data = tmp_path / "data"
    (data / "projects").mkdir(parents=True)
    (data / "projects/a.json").write_text("half-applied")
    txn = data / ".stoker/txn"
    for part in ("new", "old"):
        (txn / part).mkdir(parents=True)
    (txn / "old/0").write_text("the file it replaced")
    (txn / "journal.json").write_text(journal)
    with Applier(str(data)) as applier, pytest.raises(ApplyError) as refused:
        applier.recover()
    message = str(refused.value)
    assert message.startswith(".stoker/txn/journal.json: damaged journal;")
    assert "remove .stoker/txn" in message
    # Which files were already replaced is unknown: everything stays for a person to judge.
    assert (txn / "old/0").read_text() == "the file it replaced"
    assert (data / "projects/a.json").read_text() == "half-applied"


def test_a_transaction_that_never_wrote_its_journal_is_dropped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    txn = data / ".stoker/txn"
    (txn / "new").mkdir(parents=True)
    (txn / "new/0").write_text("staged, never moved")
    (txn / "journal.json.tmp").write_text('{"version": 1, "sta')  # crashed while writing it
    with Applier(str(data)) as applier:
        assert applier.recover() == "rolled-back"
    assert not txn.exists()


@pytest.mark.parametrize("rel", ["projects/../../outside.txt", "..", "projects/./x", "a//b"])
def test_the_applier_never_resolves_a_part_that_is_not_a_name(tmp_path: Path, rel: str) -> None:
    """The second line of defence: even a plan holding such a path cannot climb out."""
    data = tmp_path / "outer/data"
    (data / "projects").mkdir(parents=True)
    tree = DataDir(str(data))
    try:
        with pytest.raises(ApplyError, match="is not a file name"):
            tree.split(rel, create=True)
    finally:
        tree.close()
    assert sorted(p.name for p in (tmp_path / "outer").iterdir()) == ["data"]


@pytest.mark.parametrize("link", [".stoker", ".stoker/txn", ".stoker/last"])
def test_a_state_directory_that_is_a_link_is_refused_and_its_target_untouched(
    tmp_path: Path, link: str
) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (data / ".stoker").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("keep")
    if link == ".stoker":
        (data / ".stoker").rmdir()
    (data / link).symlink_to(elsewhere)
    with pytest.raises(ApplyError, match="is a symbolic link, not a directory"):
        Applier(str(data)).lock()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious"]


def test_a_dangling_state_link_is_refused_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".stoker").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ApplyError, match="is a symbolic link, not a directory"):
        Applier(str(data)).lock()
    assert not (tmp_path / "nowhere").exists()


def test_state_files_are_never_written_through_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep")
    state = tmp_path / "data/.stoker"
    state.mkdir(parents=True)
    (state / "status.json.tmp").symlink_to(outside)  # a leftover name, planted as a link
    (state / "manifest.json").symlink_to(outside)
    write_state_file(str(state / "status.json"), "{}")
    write_state_file(str(state / "manifest.json"), "{}")
    assert outside.read_text() == "keep"
    assert (state / "status.json").read_text() == "{}"
    assert not (state / "manifest.json").is_symlink()


# -- H2: nothing under .stoker is followed, and a forged journal is refused by name -----------


def forge(data: Path, changes: list[list[Any]], *, where: str = "txn") -> Path:
    """A transaction directory holding a journal someone other than Stoker wrote."""
    txn = data / ".stoker" / where
    txn.mkdir(parents=True, exist_ok=True)
    body = {"version": JOURNAL_VERSION, "state": "committing", "rolledBack": False}
    (txn / "journal.json").write_text(json.dumps({**body, "changes": changes}))
    return txn


def test_H2_a_linked_txn_old_never_moves_a_gateway_file_out_of_the_data_directory(
    tmp_path: Path,
) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "projects").mkdir(parents=True)
    outside.mkdir()
    (data / "projects/a.json").write_text("the gateway's")
    txn = forge(data, [["delete", "projects/a.json", 0, 0, 0]])
    (txn / "new").mkdir()
    (txn / "old").symlink_to(outside)
    with pytest.raises(ApplyError, match=r"^\.stoker/txn/old: is a symbolic link"):
        Applier(str(data)).recover()
    assert list(outside.iterdir()) == []
    assert (data / "projects/a.json").read_text() == "the gateway's"


def test_H2_a_linked_txn_new_never_pulls_an_outside_file_in(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "projects").mkdir(parents=True)
    outside.mkdir()
    (outside / "0").write_text("secret")
    inode = (outside / "0").stat().st_ino  # a forger can learn it; it does not help
    txn = forge(data, [["write", "projects/stolen.json", 0o644, 0, inode]])
    (txn / "old").mkdir()
    (txn / "new").symlink_to(outside)
    with pytest.raises(ApplyError, match=r"^\.stoker/txn/new: is a symbolic link"):
        Applier(str(data)).recover()
    assert (outside / "0").read_text() == "secret"
    assert not (data / "projects/stolen.json").exists()


def test_H2_a_linked_last_old_never_feeds_a_rollback(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "projects").mkdir(parents=True)
    outside.mkdir()
    (outside / "0").write_text("secret")
    (data / "projects/a.json").write_text("synced")
    last = forge(data, [["write", "projects/a.json", 0o644, 0, 0]], where="last")
    (last / "new").mkdir()
    (last / "old").symlink_to(outside)
    (last / "manifest.old.json").write_text("{}")
    with Applier(str(data)) as applier, pytest.raises(ApplyError, match="symbolic link"):
        applier.rollback()
    assert (outside / "0").stat().st_nlink == 1  # not linked into the data directory
    assert (data / "projects/a.json").read_text() == "synced"


@pytest.mark.parametrize(
    ("case", "bad"),
    [
        ("Stoker's own state", 0),
        ("a path that climbs out", 0),
        ("a staged file of another inode", 0),
        ("a staged directory", 0),
        ("one slot twice", 1),
    ],
)
def test_H2_a_journal_naming_what_its_transaction_did_not_stage_is_refused_by_name(
    tmp_path: Path, case: str, bad: int
) -> None:
    data = tmp_path / "data"
    (data / "projects").mkdir(parents=True)
    (data / "projects/a.json").write_text("the gateway's")
    (data / "projects/b.json").write_text("the gateway's too")
    txn = data / ".stoker/txn"
    (txn / "old").mkdir(parents=True)
    (txn / "new").mkdir()
    if case == "a staged directory":
        (txn / "new/0").mkdir()
    else:
        (txn / "new/0").write_text("planted")
    staged = (txn / "new/0").stat().st_ino
    changes = {
        "Stoker's own state": [["write", ".stoker/manifest.json", 0o644, 0, staged]],
        "a path that climbs out": [["delete", "projects/../../outside", 0, 0, 0]],
        "a staged file of another inode": [["write", "projects/a.json", 0o644, 0, staged + 1]],
        "a staged directory": [["write", "projects/a.json", 0o644, 0, staged]],
        "one slot twice": [
            ["delete", "projects/a.json", 0, 1, 0],
            ["delete", "projects/b.json", 0, 1, 0],
        ],
    }[case]
    forge(data, changes)
    with Applier(str(data)) as applier, pytest.raises(ApplyError) as refused:
        applier.recover()
    message = str(refused.value)
    assert message.startswith(f'.stoker/txn/journal.json: change {bad} names "'), message
    assert "Stoker did not write this journal" in message
    assert (data / "projects/a.json").read_text() == "the gateway's"
    assert (data / "projects/b.json").read_text() == "the gateway's too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# -- H5: a failure in the commit phase rolls back; a failing rollback is finished later --------


def chattr(flag: str, *paths: Path) -> None:
    """+i makes directories immutable: the kernel then refuses every change in them, to root
    too (a real EPERM, as a read-only or foreign-owned folder gives)."""
    subprocess.run(["chattr", flag, *map(str, paths)], check=True)


def test_H5_a_failure_in_the_commit_phase_rolls_back_to_the_old_commit(
    repo: tuple[Path, str, str], synced_old: Path
) -> None:
    path, old, new = repo
    data = synced_old
    before = tree_of(data)
    late = data / "projects/proj2/views/v116"  # its view.json is among the last changes
    locked: list[int] = []

    def progress(done: int, total: int) -> None:
        if done > total // 2 and not locked:  # the commit's first change is done
            chattr("+i", late)
            locked.append(done)

    try:
        with pytest.raises(ApplyError) as failed:
            sync(path, new, data, progress=progress)
    finally:
        chattr("-i", late)
    assert locked
    message = str(failed.value)
    assert message.startswith("projects/proj2/views/v116/view.json: Operation not permitted")
    assert "rolled back to the previous commit, nothing changed" in message
    assert tree_of(data) == before
    assert not (data / ".stoker/txn").exists()
    assert not sync(path, old, data).plan.has_changes  # the manifest still matches
    assert sync(path, new, data).applied


def test_H5_when_the_rollback_fails_too_the_next_start_finishes_it(
    repo: tuple[Path, str, str], synced_old: Path
) -> None:
    path, _, new = repo
    data = synced_old
    before = tree_of(data)
    early = data / "projects/proj0/views/v0"  # changed among the first writes
    late = data / "projects/proj2/views/v116"
    locked: list[int] = []

    def progress(done: int, total: int) -> None:
        if not locked and b"changed" in (early / "view.json").read_bytes():
            chattr("+i", early, late)  # the commit fails at `late`, undoing `early` fails
            locked.append(done)

    try:
        with pytest.raises(ApplyError) as failed:
            sync(path, new, data, progress=progress)
        message = str(failed.value)
        assert message.startswith(
            "applying the commit failed at projects/proj2/views/v116/view.json: Operation not "
            "permitted; then rolling back failed at projects/proj0/views/v0/view.json: "
            "Operation not permitted; the data directory is partly at the previous commit"
        ), message
        assert "finishes the rollback on its next run" in message
        assert (data / ".stoker/txn/undo.json").exists()
        assert tree_of(data) != before  # said plainly: this one file is still new
        with Applier(str(data)) as applier, pytest.raises(ApplyError, match="rolling back"):
            applier.recover()  # still immutable: still kept, still said
    finally:
        chattr("-i", early, late)
    with Applier(str(data)) as applier:
        assert applier.recover() == "rolled-back"
    assert tree_of(data) == before
    assert not (data / ".stoker/txn").exists()
    assert sync(path, new, data).applied


def test_H5_a_crash_while_rolling_back_is_finished_on_the_next_start(
    repo: tuple[Path, str, str], synced_old: Path, tmp_path: Path
) -> None:
    path, _, new = repo
    before = tree_of(synced_old)
    done = tmp_path / "done"
    shutil.copytree(synced_old, done, symlinks=True)
    sync(path, new, done)
    after = tree_of(done)
    undoing = 0
    for crash_at in range(60, 400, 23):  # from inside the commit to past its rollback
        data = tmp_path / f"crash{crash_at}"
        shutil.copytree(synced_old, data, symlinks=True)
        late = data / "projects/proj2/views/v116"
        chattr("+i", late)  # the commit fails here, and rolls back
        try:
            run = crash_run(path, new, data, crash_at)
        finally:
            chattr("-i", late)
        assert run.returncode in (-9, 1), run.stderr
        undoing += (data / ".stoker/txn/undo.json").exists()
        assert Applier(str(data)).recover() in ("rolled-back", "rolled-forward", "none")
        assert tree_of(data) in (before, after), f"torn state after a crash at step {crash_at}"
        assert not (data / ".stoker/txn").exists()
        shutil.rmtree(data)
    assert undoing  # some crash did hit the rollback


@contextlib.contextmanager
def small_volume(path: Path, **options: str) -> Iterator[Path]:
    """A tmpfs of its own (size, nr_inodes), unmounted afterwards."""
    path.mkdir()
    opts = ",".join(f"{k}={v}" for k, v in options.items())
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_inodes(path: Path, free: int) -> None:
    """Leave exactly `free` inodes on the tmpfs holding `path`."""
    st = os.statvfs(path)
    used = st.f_files - st.f_ffree
    mount = path.parent
    subprocess.run(["mount", "-o", f"remount,nr_inodes={used + free}", str(mount)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small volume needs root")
def test_H5_running_out_of_inodes_anywhere_leaves_the_old_or_the_new_commit(
    make_repo: Any, tmp_path: Path
) -> None:
    # Few new files but many new folders: staging fits, creating the folders may not.
    path = make_repo({"p/x.json": "old", "p/gone/y.json": "old"})
    old = git(path, "rev-parse", "HEAD")
    new = commit_tree(path, {"p/x.json": "new", "p/a/b/c/d/e/f/z.json": "new"}, "deep")
    done = tmp_path / "done"
    done.mkdir()
    sync(path, new, done)
    expected_new = tree_of(done)
    with small_volume(tmp_path / "vol", size="64m", nr_inodes="10000") as vol:
        data = vol / "data"
        data.mkdir()
        sync(path, old, data)
        expected_old = tree_of(data)
        failures: list[str] = []
        for free in range(0, 100):
            free_inodes(data, free)
            error = None
            try:
                sync(path, new, data)
            except ApplyError as e:
                error = str(e)
            assert not (data / ".stoker/txn").exists()
            if error is None:
                assert tree_of(data) == expected_new
                break
            failures.append(error)
            assert tree_of(data) == expected_old, f"torn with {free} free inodes: {error}"
        else:
            pytest.fail("100 free inodes were not enough")
    assert any("while staging it" in f for f in failures)
    assert any(
        f.startswith("projects/a/b/") and "rolled back to the previous commit" in f
        for f in failures
    ), failures


def test_H2_a_linked_manifest_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text('{"version": 1, "commit": "c", "profile": "p", "files": {}}')
    state = tmp_path / "data/.stoker"
    state.mkdir(parents=True)
    (state / "manifest.json").symlink_to(outside)
    assert read_manifest(str(tmp_path / "data")) is None


@pytest.mark.parametrize(
    ("plant", "named"),
    [
        (lambda p: p.write_text("x"), "a file"),
        (lambda p: os.mkfifo(p), "a FIFO"),
    ],
)
def test_a_state_folder_that_is_not_a_folder_is_refused_by_what_it_is(
    tmp_path: Path, plant: Any, named: str
) -> None:
    # A FIFO at .stoker/txn was refused as "a symbolic link", which sent the user looking for one.
    data = tmp_path / "data"
    (data / ".stoker").mkdir(parents=True)
    plant(data / ".stoker/txn")
    with pytest.raises(ApplyError, match=f"txn is {named}, not a directory"):
        Applier(str(data)).lock()


MAPPING = {"source": "p", "destination": "projects"}


@pytest.mark.parametrize("name", [rel.removeprefix(".stoker/") for rel in SYNC_FILES])
def test_a_directory_planted_at_a_file_the_sync_writes_is_refused_before_anything_changes(
    tmp_path: Path, make_repo: Any, name: str
) -> None:
    # Writing such a file replaces it by a rename, which a directory refuses: found only then,
    # after the data directory had changed, under a message that named another path (or none)
    # and, for the manifest's log, at every later run (the interrupted transaction's finish).
    repo = make_repo({"p/a/view.json": '{"v": 1}'})
    cr = tmp_path / "cr.yaml"
    cr.write_text(json.dumps(manifest_with({"default": {"mappings": [MAPPING]}})))
    data = tmp_path / "data"
    data.mkdir()
    sync = [sys.executable, "-m", "stoker_agent.cli", "sync", "--cr", str(cr), "--repo"]
    sync += [str(repo), "--data-dir", str(data), "--gateway-name", "gw"]
    assert subprocess.run(sync, capture_output=True).returncode == 0
    planted = data / ".stoker" / name
    if planted.exists():
        planted.unlink()
    (planted / "inside").mkdir(parents=True)  # not empty: nothing may remove it
    commit_tree(repo, {"p/a/view.json": '{"v": 2}'}, "two")
    done = subprocess.run(sync, capture_output=True, text=True)
    assert done.returncode == 1
    assert f".stoker/{name} is a directory, not a file" in done.stderr
    assert "remove it" in done.stderr
    assert "Traceback" not in done.stderr
    assert (data / "projects/a/view.json").read_text() == '{"v": 1}'  # nothing changed
    shutil.rmtree(planted)
    assert subprocess.run(sync, capture_output=True).returncode == 0
    assert (data / "projects/a/view.json").read_text() == '{"v": 2}'


def test_a_status_that_cannot_be_written_over_a_planted_directory_is_said(
    tmp_path: Path, make_repo: Any
) -> None:
    # It was a debug line: the last status.json stood, or a directory did, and nobody was told.
    repo = make_repo({"p/a/view.json": '{"v": 1}'})
    cr = tmp_path / "cr.yaml"
    cr.write_text(json.dumps(manifest_with({"default": {"mappings": [MAPPING]}})))
    data = tmp_path / "data"
    (data / ".stoker/status.json/inside").mkdir(parents=True)
    sync = [sys.executable, "-m", "stoker_agent.cli", "sync", "--cr", str(cr), "--repo"]
    sync += [str(repo), "--data-dir", str(data), "--gateway-name", "gw"]
    done = subprocess.run(sync, capture_output=True, text=True)
    assert done.returncode == 0
    assert ".stoker/status.json is a directory, not a file" in done.stderr
    assert (data / "projects/a/view.json").read_text() == '{"v": 1}'
