"""The manifest on disk (issue 18 item 3): a base and an append-only delta log, so a one-file
change appends one line instead of rewriting the whole record; compacted past a quarter of the
base, migrated from format 2, crash-safe at every step, and a hostile log refused by name."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, commit_tree, git
from core.helpers import manifest_with
from stoker_agent.applying import Applier
from stoker_agent.gitrepo import Repository
from stoker_agent.syncing import read_manifest, sync_commit
from stoker_core import manifestlog, profiles
from stoker_core.manifest import CTIMES_PATH, MANIFEST_PATH, Manifest
from stoker_core.manifestlog import LOG_LIMIT, LOG_PATH
from stoker_core.plans import Reason
from stoker_core.templates import TemplateContext
from stoker_core.validation import load

CR = manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}})


def files(version: int) -> dict[str, bytes | str]:
    """200 files; `version` changes one of them."""
    tree: dict[str, bytes | str] = {
        f"p/proj{i % 5}/v{i}/view.json": f'{{"v": {i}}}' for i in range(200)
    }
    tree["p/proj0/v0/view.json"] = f'{{"v": 0, "edit": {version}}}'
    return tree


def sync(repo: Path, commit: str, data: Path, **kwargs: Any) -> Any:
    effective = profiles.resolve(load(CR).spec.sync, None)
    with Repository(str(repo)) as r:
        return sync_commit(
            str(data), r.snapshot(commit), effective, TemplateContext(gateway_name="gw"), **kwargs
        )


def state(manifest: Manifest | None) -> tuple[str, dict[str, tuple[str, int]]]:
    """What a manifest says, without the stat numbers a fresh copy would differ in."""
    assert manifest is not None
    return manifest.commit, {p: (r.blob, r.mode) for p, r in manifest.records.items()}


@pytest.fixture
def commits(make_repo: Any) -> tuple[Path, list[str]]:
    """A repository and three commits, each changing one file."""
    repo = make_repo(files(0))
    ids = [git(repo, "rev-parse", "HEAD")]
    ids += [commit_tree(repo, files(v), f"edit {v}") for v in (1, 2)]
    return repo, ids


@pytest.fixture
def synced(commits: tuple[Path, list[str]], tmp_path: Path) -> Path:
    repo, ids = commits
    data = tmp_path / "data"
    data.mkdir()
    sync(repo, ids[0], data)
    return data


def test_a_one_file_change_appends_one_line_and_leaves_the_base_untouched(
    commits: tuple[Path, list[str]], synced: Path, tmp_path: Path
) -> None:
    repo, ids = commits
    base = synced / MANIFEST_PATH
    before = base.stat()
    for commit in ids[1:]:
        assert sync(repo, commit, synced).applied
    after = base.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    lines = (synced / LOG_PATH).read_text().splitlines()
    assert len(lines) == 2
    # The first line also saves the ctimes the full apply's renames gave (see with_ctimes);
    # the next holds the changed file and the ctime of the one written before it.
    assert len(lines[1]) < 800
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    sync(repo, ids[2], fresh)
    assert state(read_manifest(str(synced))) == state(read_manifest(str(fresh)))
    again = sync(repo, ids[2], synced)
    assert {op.reason for op in again.plan.operations} == {Reason.UNCHANGED}


def test_the_log_is_folded_into_a_new_base_once_it_outgrows_a_quarter_of_the_base(
    commits: tuple[Path, list[str]], synced: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = commits
    monkeypatch.setattr(manifestlog, "COMPACT_FLOOR", 0)
    generation = read_manifest(str(synced)).generation  # type: ignore[union-attr]
    for v in range(3, 40):
        sync(repo, commit_tree(repo, files(v), f"edit {v}"), synced)
        log = synced / LOG_PATH
        base_size = (synced / MANIFEST_PATH).stat().st_size
        assert not log.exists() or log.stat().st_size <= base_size // 4
    manifest = read_manifest(str(synced))
    assert manifest is not None
    assert manifest.generation != generation
    assert manifest.commit == git(repo, "rev-parse", "HEAD")
    assert manifest.records["projects/proj0/v0/view.json"].blob == git(
        repo, "rev-parse", "HEAD:p/proj0/v0/view.json"
    )


def as_format_2(data: Path, manifest: Manifest | None = None) -> None:
    """Rewrite the base (or `manifest`) as a Stoker of format 2 would have written it."""
    text = (data / MANIFEST_PATH).read_text() if manifest is None else manifest.to_json("g")
    body = json.loads(text)
    body["version"] = 2
    del body["generation"]
    (data / MANIFEST_PATH).write_text(json.dumps(body))


def test_a_manifest_of_format_2_is_read_and_replaced_by_a_base_at_the_first_write(
    commits: tuple[Path, list[str]], synced: Path
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)
    as_format_2(synced, read_manifest(str(synced)))
    (synced / LOG_PATH).unlink()
    assert read_manifest(str(synced)).commit == ids[1]  # type: ignore[union-attr]
    assert sync(repo, ids[2], synced).applied
    body = json.loads((synced / MANIFEST_PATH).read_text())
    assert (body["version"], body["commit"]) == (3, ids[2])
    assert not (synced / LOG_PATH).exists()


def test_a_log_beside_a_base_an_older_stoker_rewrote_is_never_applied(
    commits: tuple[Path, list[str]], synced: Path
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)
    kept = (synced / LOG_PATH).read_text()
    base = json.loads((synced / MANIFEST_PATH).read_text())
    assert base["commit"] == ids[0]  # the change is in the log only
    assert kept
    as_format_2(synced)  # what a downgrade's next write leaves: the log is stale
    assert read_manifest(str(synced)).commit == ids[0]  # type: ignore[union-attr]


def huge(log: Path) -> None:
    with open(log, "wb") as handle:
        handle.truncate(LOG_LIMIT + 1)  # sparse: no disk used


@pytest.mark.parametrize(
    ("case", "plant"),
    [
        ("larger than the limit", huge),
        ("not JSON", lambda log: log.write_text(log.read_text() + "{oops\n")),
        ("lines out of order", lambda log: log.write_text(log.read_text() * 2)),
        (
            "a path that climbs out",
            lambda log: log.write_text(log.read_text().replace("projects/proj0", "../../etc", 1)),
        ),
        ("a directory", lambda log: (log.unlink(), log.mkdir())),
    ],
)
def test_a_hostile_log_is_refused_by_name_and_the_files_hashed_once(
    commits: tuple[Path, list[str]],
    synced: Path,
    caplog: pytest.LogCaptureFixture,
    case: str,
    plant: Any,
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)
    plant(synced / LOG_PATH)
    with caplog.at_level(logging.WARNING, logger="stoker.sync"):
        assert read_manifest(str(synced)) is None
    assert LOG_PATH in caplog.text, case
    if case == "a directory":
        shutil.rmtree(synced / LOG_PATH)  # one a sync could not write to; the rest it can
    result = sync(repo, ids[2], synced)  # hashes what is there, and writes a new base
    assert result.applied
    assert state(read_manifest(str(synced)))[0] == ids[2]


def test_a_linked_log_is_never_followed(
    commits: tuple[Path, list[str]], synced: Path, tmp_path: Path
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)
    outside = tmp_path / "outside.delta"
    outside.write_text((synced / LOG_PATH).read_text())
    (synced / LOG_PATH).unlink()
    (synced / LOG_PATH).symlink_to(outside)
    assert read_manifest(str(synced)) is None
    sync(repo, ids[2], synced)
    assert outside.read_text().count("\n") == 1  # never appended to through the link
    assert state(read_manifest(str(synced)))[0] == ids[2]


def _blocked(signum: int, frame: object) -> None:
    raise TimeoutError("the sync waited on a FIFO")


@pytest.mark.parametrize("planted", [MANIFEST_PATH, LOG_PATH, CTIMES_PATH])
def test_a_fifo_planted_as_a_manifest_file_never_blocks_the_sync(
    commits: tuple[Path, list[str]], synced: Path, planted: str
) -> None:
    # Opening a FIFO to read waits for a writer: the gateway could hang every sync with one.
    repo, ids = commits
    sync(repo, ids[1], synced)  # a base and a log line
    (synced / planted).unlink(missing_ok=True)
    os.mkfifo(synced / planted)
    before = signal.signal(signal.SIGALRM, _blocked)
    signal.alarm(20)  # a blocked open fails the test instead of hanging it
    try:
        manifest = read_manifest(str(synced))
        assert (manifest is None) is (planted != CTIMES_PATH)  # the ctimes are only a help
        sync(repo, ids[2], synced)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert state(read_manifest(str(synced)))[0] == ids[2]


def test_a_torn_last_line_is_ignored_and_cut_off_by_the_next_append(
    commits: tuple[Path, list[str]], synced: Path
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)
    log = synced / LOG_PATH
    whole = log.read_text()
    with open(log, "a") as handle:
        handle.write(whole[: len(whole) // 2])  # a crash in the middle of an append
    assert read_manifest(str(synced)).commit == ids[1]  # type: ignore[union-attr]
    sync(repo, ids[2], synced)
    assert log.read_text().count("\n") == 2
    assert read_manifest(str(synced)).commit == ids[2]  # type: ignore[union-attr]


def crash_run(repo: Path, commit: str, data: Path, crash_at: int) -> int:
    args = {"cr": CR, "repo": str(repo), "commit": commit, "data_dir": str(data)}
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "support.syncrun", json.dumps({**args, "crash_at": crash_at})],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode in (0, -9), done.stderr
    return done.returncode


def test_a_sigkill_at_any_step_of_a_logged_sync_leaves_the_old_or_the_new_manifest(
    commits: tuple[Path, list[str]], synced: Path, tmp_path: Path
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)  # the base and one line: the next sync appends a second
    old = state(read_manifest(str(synced)))
    done = tmp_path / "done"
    shutil.copytree(synced, done, symlinks=True)
    sync(repo, ids[2], done)
    new = state(read_manifest(str(done)))
    seen = set()
    step = 1
    while True:
        data = tmp_path / f"crash{step}"
        shutil.copytree(synced, data, symlinks=True)
        base = (data / MANIFEST_PATH).stat().st_ino
        killed = crash_run(repo, ids[2], data, step) == -9
        with Applier(str(data)) as applier:
            applier.recover()
        now = state(read_manifest(str(data)))
        assert now in (old, new), f"a manifest of neither commit after a SIGKILL at step {step}"
        view = (data / "projects/proj0/v0/view.json").read_text()
        assert ('"edit": 2' in view) == (now == new), f"files and manifest differ at {step}"
        assert (data / MANIFEST_PATH).stat().st_ino == base  # never rewritten
        sync(repo, ids[2], data)
        assert state(read_manifest(str(data))) == new
        if (data / LOG_PATH).exists():  # appended once, never twice (or compacted)
            seqs = [json.loads(line)["seq"] for line in (data / LOG_PATH).read_text().split()]
            assert seqs == list(range(1, len(seqs) + 1))
        seen.add(now == new)
        shutil.rmtree(data)
        if not killed:
            break
        step += 1
    assert seen == {False, True}
    assert step > 5


def test_a_rollback_after_a_logged_sync_restores_the_manifest_it_replaced(
    commits: tuple[Path, list[str]], synced: Path
) -> None:
    repo, ids = commits
    sync(repo, ids[1], synced)
    before = state(read_manifest(str(synced)))
    sync(repo, ids[2], synced)
    with Applier(str(synced)) as applier:
        assert applier.rollback()
    assert state(read_manifest(str(synced))) == before
    assert not sync(repo, ids[1], synced).plan.has_changes
