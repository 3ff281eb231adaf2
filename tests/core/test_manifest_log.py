"""The manifest's delta log rules (stoker_core.manifestlog): replaying, staleness, damage named
by the file, appending idempotently, when to compact, and a Stoker of format 2 refusing a base of
format 3 by its version."""

from __future__ import annotations

import json
import subprocess
import types
from pathlib import Path

import pytest

from stoker_core import manifestlog
from stoker_core.errors import InvalidInput
from stoker_core.manifest import Manifest, Record
from stoker_core.manifestlog import LOG_PATH, Append, append_plan, compact_due, delta_line, replay

ROOT = Path(__file__).resolve().parents[2]
FORMAT_2_READER = "be3eaa6"  # the last commit whose manifest.py knew only formats 1 and 2


def record(blob: str, ctime: int = 5) -> Record:
    return Record(blob, 1, 2, 3, 0o644, "c1", ctime)


def base() -> Manifest:
    records = {"projects/a.json": record("a"), "projects/b.json": record("b")}
    text = Manifest(commit="c1", profile="p", records=records).to_json("g1")
    return Manifest.from_json(text)


def test_a_line_replayed_on_its_base_gives_the_new_manifest_and_twice_changes_nothing() -> None:
    old = base()
    new = Manifest(
        commit="c2",
        profile="p",
        records={"projects/a.json": record("a2"), "projects/c.json": record("c")},
        dirs=("projects/empty",),
    )
    line = delta_line(old, new)
    assert json.loads(line)["del"] == ["projects/b.json"]
    assert set(json.loads(line)["set"]) == {"projects/a.json", "projects/c.json"}
    replayed = replay(old, line)
    assert replayed == new
    assert (replayed.seq, replayed.log_bytes) == (1, len(line))
    twice = line + line.replace('"seq":1', '"seq":2')
    assert replay(old, twice) == new  # the same entry again


def test_a_record_whose_ctime_came_from_the_side_file_is_saved_by_the_next_line() -> None:
    old = Manifest.from_json(
        Manifest(records={"projects/a.json": record("a", ctime=0)}).to_json("g1")
    )
    filled = old.with_ctimes('{"ctimes": {"projects/a.json": [3, 99]}}')
    line = delta_line(filled, filled)
    assert json.loads(line)["set"]["projects/a.json"][6] == 99


def test_a_log_of_another_base_is_stale_and_ignored() -> None:
    other = delta_line(base(), base()).replace('"base":"g1"', '"base":"g0"')
    assert replay(base(), other) == base()


@pytest.mark.parametrize(
    ("case", "text"),
    [
        ("not JSON", "{oops\n"),
        ("a gap in seq", delta_line(base(), base()).replace('"seq":1', '"seq":2')),
        (
            "a path that climbs out",
            delta_line(base(), base()).replace('"del":[]', '"del":["../x"]'),
        ),
        (
            "a record of the wrong shape",
            '{"base":"g1","seq":1,"commit":"c","profile":"p","dirs":[],"set":{"a":[1]},"del":[]}\n',
        ),
        (
            "another base after the first line",
            delta_line(base(), base())
            + delta_line(base(), base())
            .replace('"base":"g1"', '"base":"g0"')
            .replace('"seq":1', '"seq":2'),
        ),
    ],
)
def test_a_damaged_log_is_refused_naming_the_file(case: str, text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        replay(base(), text)
    assert info.value.problems[0].path == LOG_PATH, case


def test_a_torn_last_line_was_never_committed() -> None:
    line = delta_line(base(), Manifest(commit="c2", profile="p"))
    assert replay(base(), line[:-1]) == base()
    assert append_plan(line[:-1], line) == Append(0, True)
    assert append_plan(line + line[:10], line) == Append(len(line), False)  # cut, already there


def test_appending_skips_a_line_already_last_and_replaces_a_log_of_another_base() -> None:
    first = delta_line(base(), base())
    second = delta_line(replay(base(), first), Manifest(commit="c2", profile="p"))
    assert append_plan(first, second) == Append(len(first), True)
    assert append_plan(first + second, second) == Append(len(first + second), False)
    stale = first.replace('"base":"g1"', '"base":"g0"')
    assert append_plan(stale, second).replace


def test_a_whole_base_is_written_first_and_once_the_log_passes_a_quarter_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert compact_due(Manifest(), 10)  # no base yet, or one of format 2: the migration
    monkeypatch.setattr(manifestlog, "COMPACT_FLOOR", 0)
    current = base()
    quarter = current.base_bytes // 4
    assert not compact_due(current, quarter)
    assert compact_due(current, quarter + 1)


def format_2_reader() -> types.ModuleType:
    """manifest.py as Stoker shipped it before format 3, run against today's core."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{FORMAT_2_READER}:src/stoker_core/manifest.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("manifest_format_2")
    exec(compile(source, "manifest_format_2.py", "exec"), module.__dict__)
    return module


def test_a_stoker_of_format_2_refuses_a_base_of_format_3_as_written_by_a_newer_one() -> None:
    old = format_2_reader()
    with pytest.raises(InvalidInput, match="unknown manifest version 3: written by a newer"):
        old.Manifest.from_json(base().to_json("g1"))
