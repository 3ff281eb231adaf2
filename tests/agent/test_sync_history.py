"""Standalone `stoker sync` records each sync in .stoker/history.jsonl; `stoker history` prints
it. The file lives where the gateway can write: links, junk and huge files are hostile input,
and a SIGKILL at any point never leaves a torn record that is read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT, git
from stoker_agent import histories
from stoker_core import history
from support.ignition_sim import running
from support.ignition_sim_resources import write_api_token
from support.stokercli import (
    killed_sync_args,
    local_sync,
    run_module,
    run_stoker,
    start_watch,
    sync_args,
)


def entry(n: int, **fields: object) -> history.Entry:
    values: dict[str, object] = {
        "time": f"2026-12-06T08:{n % 60:02d}:00Z",
        "result": "Synced",
        "commit": f"{n:040x}",
        "via": history.STANDALONE,
        "user": "alice",
    }
    values.update(fields)
    return history.Entry(**values)  # type: ignore[arg-type]


def history_file(data: Path) -> Path:
    return data / ".stoker" / "history.jsonl"


SCHEMA = json.loads((ROOT / "docs" / "schemas" / "history.schema.json").read_text())


def shown(data: Path, *extra: str) -> dict[str, object]:
    """`stoker history -o json`, checked against its documented schema."""
    done = run_stoker("history", "--data-dir", str(data), "-o", "json", *extra)
    assert done.returncode == 0, done.stderr
    body: dict[str, object] = json.loads(done.stdout)
    jsonschema.validate(body, SCHEMA)
    return body


def test_every_stoker_sync_is_recorded_with_its_counts_and_who_requested_it(
    example_repo: Path, tmp_path: Path
) -> None:
    data, args = local_sync(example_repo, tmp_path)
    assert run_stoker(*args, "--requested-by", "alice").returncode == 0
    assert run_stoker(*args).returncode == 0  # the OS user by default
    head = git(example_repo, "rev-parse", "HEAD")
    entries = shown(data)["entries"]
    assert isinstance(entries, list)
    newest, first = entries
    assert (first["result"], first["commit"], first["user"]) == ("Synced", head, "alice")
    assert first["via"] == "stoker sync"
    assert first["added"] > 0
    assert first["deleted"] == 0
    assert newest["result"] == "InSync"
    assert newest["added"] == 0
    assert newest["user"] == histories.os_user() != ""


def test_a_dry_run_sync_is_not_recorded(example_repo: Path, tmp_path: Path) -> None:
    data, args = local_sync(example_repo, tmp_path)
    assert run_stoker(*args, "--dry-run").returncode == 2
    assert not history_file(data).exists()
    assert shown(data)["entries"] == []


def test_the_history_keeps_only_history_limit_syncs(example_repo: Path, tmp_path: Path) -> None:
    data, args = local_sync(example_repo, tmp_path)
    for _ in range(3):
        assert run_stoker(*args, "--history-limit", "2").returncode == 0
    assert len(history_file(data).read_text().splitlines()) == 2
    assert [e["result"] for e in shown(data)["entries"]] == ["InSync", "InSync"]  # type: ignore[attr-defined]


def test_appends_past_the_limit_keep_the_newest_entries(tmp_path: Path) -> None:
    for n in range(1, 151):
        histories.append(str(tmp_path), entry(n), limit=100)
    found = histories.read(str(tmp_path))
    assert [e.commit for e in found.entries] == [entry(n).commit for n in range(51, 151)]
    assert len(history_file(tmp_path).read_bytes()) <= history.BYTE_CAP


def test_a_100_mb_history_file_is_read_from_its_end_and_trimmed_by_the_next_sync(
    tmp_path: Path,
) -> None:
    path = history_file(tmp_path)
    path.parent.mkdir()
    with path.open("wb") as handle:
        handle.truncate(100 << 20)  # 100 MB of NULs: one line, never parsed whole
        handle.seek(0, os.SEEK_END)
        handle.write(b"\n" + history.line(entry(1)).encode())
    found = histories.read(str(tmp_path))
    assert found.entries == (entry(1),)
    assert found.cut
    histories.append(str(tmp_path), entry(2), limit=100)
    assert path.stat().st_size < 4096
    assert histories.read(str(tmp_path)).entries == (entry(1), entry(2))


def test_a_symlinked_history_file_is_never_followed(example_repo: Path, tmp_path: Path) -> None:
    data, args = local_sync(example_repo, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not Stoker's\n")
    history_file(data).parent.mkdir()
    history_file(data).symlink_to(outside)
    done = run_stoker("history", "--data-dir", str(data))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.splitlines()) == 1
    assert "symbolic link" in done.stderr
    assert "Traceback" not in done.stderr
    assert run_stoker(*args).returncode == 0
    assert outside.read_text() == "not Stoker's\n"
    assert not history_file(data).is_symlink()
    assert [e["result"] for e in shown(data)["entries"]] == ["Synced"]  # type: ignore[attr-defined]


def test_binary_junk_in_the_history_is_skipped_with_a_warning_and_replaced_by_the_next_sync(
    tmp_path: Path,
) -> None:
    path = history_file(tmp_path)
    path.parent.mkdir()
    path.write_bytes(os.urandom(4096) + b"\n" + history.line(entry(1)).encode() + b"\x00\xff\n")
    done = run_stoker("history", "--data-dir", str(tmp_path))
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    assert "damaged line(s) skipped" in done.stderr
    assert entry(1).commit[:12] in done.stdout
    histories.append(str(tmp_path), entry(2), limit=100)
    found = histories.read(str(tmp_path))
    assert (found.entries, found.damaged) == ((entry(1), entry(2)), 0)


def test_a_ref_with_bidi_characters_is_shown_escaped_in_the_table(tmp_path: Path) -> None:
    histories.append(str(tmp_path), entry(1, ref="main\u202egnp.exe\x1b[2J"), limit=100)
    done = run_stoker("history", "--data-dir", str(tmp_path))
    assert done.returncode == 0
    assert "\u202e" not in done.stdout
    assert "\x1b" not in done.stdout
    assert "main\\u202egnp.exe\\x1b[2J" in done.stdout
    as_yaml = run_stoker("history", "--data-dir", str(tmp_path), "-o", "yaml")
    assert "\u202e" not in as_yaml.stdout
    assert yaml.safe_load(as_yaml.stdout)["entries"][0]["ref"] == "main\u202egnp.exe\x1b[2J"


def test_the_table_is_newest_first_and_limit_shows_the_newest(tmp_path: Path) -> None:
    for n in (1, 2, 3):
        histories.append(str(tmp_path), entry(n, added=n), limit=100)
    lines = run_stoker("history", "--data-dir", str(tmp_path), "--limit", "2").stdout.splitlines()
    assert lines[0].split()[:3] == ["TIME", "RESULT", "COMMIT"]
    assert [line.split()[2] for line in lines[1:]] == [entry(3).commit[:12], entry(2).commit[:12]]
    assert "+3 ~0 -0" in lines[1]


def test_stoker_history_follows_the_cli_conventions(tmp_path: Path) -> None:
    missing = run_stoker("history", "--data-dir", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ")
    assert len(missing.stderr.splitlines()) == 1
    assert run_stoker("history", "--data-dir", str(tmp_path), "--limit", "0").returncode == 64
    empty = run_stoker("history", "--data-dir", str(tmp_path))
    assert empty.returncode == 0
    assert "no syncs recorded" in empty.stdout
    as_yaml = yaml.safe_load(
        run_stoker("history", "--data-dir", str(tmp_path), "-o", "yaml").stdout
    )
    assert as_yaml["entries"] == []
    assert as_yaml["damagedLines"] == 0


# A child appends entry 4 to a history of entries 1-3 and SIGKILLs itself at `point`.
KILLED_APPEND = """
import os, signal, sys
from stoker_agent import datadirs, histories
from stoker_core import history
point, data, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "half-line":
    real = datadirs.write_all
    def half(fd, chunk):
        real(fd, chunk[: len(chunk) // 2])
        die()
    histories.write_all = half
    datadirs.write_all = half
elif point == "before-fsync":
    real_fsync = os.fsync
    os.fsync = die
elif point == "before-rename":
    os.replace = die
entry = history.Entry(time="2026-12-06T09:00:00Z", result="Synced", commit="4" * 40)
histories.append(data, entry, limit=limit)
"""


@pytest.mark.parametrize(
    ("point", "limit"),
    [
        ("half-line", 100),  # an append cut mid-line
        ("before-fsync", 100),  # an append written, not yet durable
        ("half-line", 3),  # a trim's temporary file cut mid-way
        ("before-rename", 3),  # a trim written and fsynced, not yet renamed
    ],
)
def test_a_sigkill_while_recording_never_leaves_a_torn_record_that_is_read_back(
    tmp_path: Path, point: str, limit: int
) -> None:
    for n in (1, 2, 3):
        histories.append(str(tmp_path), entry(n), limit=100)
    done = subprocess.run(
        [sys.executable, "-c", KILLED_APPEND, point, str(tmp_path), str(limit)],
        capture_output=True,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    found = histories.read(str(tmp_path))
    assert not found.damaged
    commits = [e.commit for e in found.entries]
    assert commits[:3] == [entry(n).commit for n in (1, 2, 3)]
    assert commits[3:] in ([], ["4" * 40])  # the killed record is there whole, or not at all
    histories.append(str(tmp_path), entry(5), limit=100)  # the next sync records cleanly
    after = histories.read(str(tmp_path))
    assert after.entries[-1] == entry(5)
    assert not after.torn
    assert not after.damaged


def test_a_sync_killed_mid_apply_leaves_no_record_and_the_next_sync_records_cleanly(
    example_repo: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    token = tmp_path / "api-token"
    token.write_text(write_api_token(data, collection="local") + "\n")
    histories.append(str(data), entry(1), limit=100)
    with running(data) as sim:
        args = killed_sync_args(example_repo, data, sim, token, history=True)
        killed = run_module("support.killedsync", json.dumps(args))
        assert killed.returncode == -9, killed.stderr
        found = histories.read(str(data))
        assert found.entries == (entry(1),)
        assert not found.torn
        rerun = run_stoker(*sync_args(example_repo, data, sim, token))
        assert rerun.returncode == 0, rerun.stderr
    after = histories.read(str(data))
    assert [e.result for e in after.entries] == ["Synced", "Synced"]
    assert not after.torn
    assert not after.damaged


def test_watch_records_a_quiet_pass_once_not_every_interval(
    example_repo: Path, tmp_path: Path
) -> None:
    data, args = local_sync(example_repo, tmp_path)
    proc = start_watch(*args)
    try:
        assert proc.stdout is not None
        results = [json.loads(proc.stdout.readline())["result"] for _ in range(4)]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert results == ["Synced", "InSync", "InSync", "InSync"]
    assert [e.result for e in histories.read(str(data)).entries] == ["Synced", "InSync"]
