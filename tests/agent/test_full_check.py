"""The full check (drift, stray files) every `syncPeriod`: off the critical path in a running
agent, in one pass with the apply in a one-shot `stoker sync`, and keyed on what the gateway
cannot fake (issue 18 item 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import yaml

from conftest import EXAMPLES, git
from stoker_agent.loop import AgentLoop
from stoker_agent.standalone import Identity, Outcome, SyncSettings, run_once
from stoker_agent.syncing import FULL_CHECK_FILE
from stoker_agent.watching import RefSource
from stoker_core.manifest import FORMAT_VERSION
from stoker_core.status import SyncRecord
from stoker_core.validation import load

BLUE = "services/ignition-blue/projects/blue"
HOME = "com.inductiveautomation.perspective/views/Home/view.json"
CODE = "projects/blue/ignition/script-python/shifts/code.py"


def settings_for(repo: Path, data: Path) -> SyncSettings:
    body = yaml.safe_load((EXAMPLES / "gatewaysyncs/multiple-profiles.yaml").read_text())
    return SyncSettings(
        gatewaysync=load(body),
        profile="blue",
        identity=Identity(gateway_name="ignition-blue"),
        repo=str(repo),
        ref=None,
        data_dir=str(data),
    )


def fresh(repo: Path, tmp_path: Path) -> tuple[Path, SyncSettings]:
    """A new data directory in `tmp_path` and the settings that sync profile blue into it."""
    data = tmp_path / "data"
    data.mkdir()
    return data, settings_for(repo, data)


def check_due(data: Path) -> None:
    """Date the last full check an hour back: due, without sleeping."""
    then = (data / FULL_CHECK_FILE).stat().st_mtime - 3600
    os.utime(data / FULL_CHECK_FILE, (then, then))


def edit_a_view(repo: Path, note: str) -> None:
    view = repo / BLUE / HOME
    view.write_text(view.read_text().replace("}", f', "note": "{note}"}}', 1))
    git(repo, "commit", "-qam", f"edit a view: {note}")


class Recording:
    """The agent loop's sync: the real run_once, each outcome kept."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[SyncSettings, Outcome]] = []

    def __call__(self, settings: SyncSettings, **kwargs: object) -> Outcome:
        outcome = run_once(settings, **kwargs)  # type: ignore[arg-type]
        self.outcomes.append((settings, outcome))
        return outcome


class Sink:
    def write(self, record: SyncRecord) -> None:
        pass


def test_in_a_running_agent_a_new_commit_goes_first_and_the_due_full_check_runs_right_after(
    example_repo: Path, tmp_path: Path
) -> None:
    data, settings = fresh(example_repo, tmp_path)
    sync = Recording()
    loop = AgentLoop(RefSource(settings), Sink(), sync=sync)
    loop.step()  # the first sync: a full apply
    assert sync.outcomes[-1][1].record.result == "Synced"
    (data / CODE).unlink()  # drift where the next commit changes nothing
    check_due(data)
    edit_a_view(example_repo, "v2")

    delay = loop.step()
    settings, applied = sync.outcomes[-1]
    assert applied.record.result == "Synced"
    assert applied.record.modified == (f"projects/blue/{HOME}",)  # only what the commit changed
    assert applied.record.drift_checked is False
    assert applied.check_deferred
    assert delay == 0.0  # and the check is due at once

    loop.step()
    settings, checked = sync.outcomes[-1]
    assert settings.dry_run  # driftPolicy report: a dry run
    assert settings.periodic_check
    assert checked.record.drift_checked is True
    assert checked.record.drift == ((CODE, "deleted"),)
    assert not checked.check_deferred
    # It counted as the full check: the next commit within syncPeriod needs none.
    edit_a_view(example_repo, "v3")
    loop.step()
    assert sync.outcomes[-1][1].record.drift_checked is False
    assert not sync.outcomes[-1][1].check_deferred
    assert len(sync.outcomes) == 4


def test_a_one_shot_sync_that_must_check_does_it_in_the_same_pass_as_the_apply(
    example_repo: Path, tmp_path: Path
) -> None:
    data, settings = fresh(example_repo, tmp_path)
    run_once(settings)
    (data / CODE).unlink()
    check_due(data)
    edit_a_view(example_repo, "v2")
    outcome = run_once(settings)
    assert outcome.record.drift_checked is True
    assert not outcome.check_deferred
    assert sorted(outcome.record.added + outcome.record.modified) == sorted(
        [CODE, f"projects/blue/{HOME}"]
    )
    # The agent loop's drift check of that commit asks for a full check: never deferred.
    again = run_once(attrs.evolve(settings, defer_check=True, full_check=True))
    assert again.record.result == "InSync"
    assert again.record.drift_checked is True


def test_a_file_changed_in_place_with_its_mtime_put_back_is_still_drift_because_its_ctime_moved(
    example_repo: Path, tmp_path: Path
) -> None:
    data, settings = fresh(example_repo, tmp_path)
    run_once(settings)
    code = data / CODE
    before = code.stat()
    text = code.read_bytes()
    with open(code, "r+b") as handle:  # same inode, same size, other content
        handle.write(b"#" if text[:1] != b"#" else b"$")
    os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns))  # the old mtime put back
    after = code.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    outcome = run_once(attrs.evolve(settings, dry_run=True))  # same commit: a full check
    assert outcome.record.drift == ((CODE, "modified"),)


def test_files_written_by_the_last_sync_are_trusted_unread_at_the_next_check(
    example_repo: Path, tmp_path: Path
) -> None:
    _, settings = fresh(example_repo, tmp_path)
    first = run_once(settings)
    assert first.plan is not None
    again = run_once(settings)
    assert again.plan is not None
    reasons = {str(op.reason) for op in again.plan.operations}
    assert reasons == {"unchanged"}  # none hashed: the side file gave every written file its ctime
    assert not again.plan.needs_transaction(has_manifest=True)


def test_a_manifest_of_format_1_is_read_hashed_once_and_rewritten_in_the_current_format(
    example_repo: Path, tmp_path: Path
) -> None:
    data, settings = fresh(example_repo, tmp_path)
    run_once(settings)
    path = data / ".stoker/manifest.json"
    body = json.loads(path.read_text())
    body["version"] = 1
    body["files"] = {p: fields[:6] for p, fields in body["files"].items()}
    path.write_text(json.dumps(body))
    (data / ".stoker/ctimes.json").unlink()
    migrated = run_once(settings)
    assert migrated.plan is not None
    assert {str(op.reason) for op in migrated.plan.operations if op.path.endswith(".py")} == {
        "verified"
    }
    assert json.loads(path.read_text())["version"] == FORMAT_VERSION
    assert migrated.record.drift == ()
    settled = run_once(settings)
    assert settled.plan is not None
    assert {str(op.reason) for op in settled.plan.operations} == {"unchanged"}
