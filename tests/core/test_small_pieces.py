"""Durations, the manifest format, errors, the gateway-name rule and plan reports."""

from __future__ import annotations

import json
from collections import UserDict
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.helpers import gs_with, plan_for
from stoker_core.discovery import gateway_name
from stoker_core.durations import format_duration, parse_duration
from stoker_core.errors import ExitCode, InvalidInput, Problem
from stoker_core.manifest import Manifest, Record, parse_records
from stoker_core.paths import first_unclean, folders_above, is_clean, parents
from stoker_core.recorded import full_check_due
from stoker_core.reports import plan_report
from stoker_core.status import HEARTBEAT_SECONDS, SyncRecord, worth_writing
from stoker_core.trees import MemorySnapshot, MemoryTree


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("1m30s", 90), ("250ms", 0.25), ("1h", 3600), ("1.5s", 1.5), ("0", 0)],
)
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "60", "1x", "s", "1m30"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="30s"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (30, "30s"),
        (60, "1m0s"),
        (120, "2m0s"),
        (300, "5m0s"),
        (1.234, "1.234s"),
        (0.85, "850ms"),
        (0, "0s"),
        (3725, "1h2m5s"),
    ],
)
def test_go_duration_formatting(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_manifest_round_trips_and_is_stable() -> None:
    manifest = Manifest(
        commit="c" * 40,
        profile="blue",
        records={
            "b": Record("1" * 40, 2, 3, 4, 0o644, "c" * 40, 9),
            "a": Record("2" * 40, 5, 6, 7, 0o755, "d"),
        },
        dirs=("x/empty",),
    )
    text = manifest.to_json("g1")
    assert Manifest.from_json(text) == manifest
    assert text == Manifest.from_json(text).to_json("g1")
    assert text.index('"a"') < text.index('"b"')


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"version": 99}',
        '{"version": 1, "files": {"a": [1]}}',
        '{"version": 1, "commit": "c", "profile": "p", "files": {"a": ["b", "2", 3, 4, 5, "c"]}}',
        '{"version": 1, "commit": "c", "profile": "p", "files": {"a": ["b", true, 3, 4, 5, "c"]}}',
        '{"version": 1, "commit": "c", "profile": "p", "files": {"a": "abcdef"}}',
        '{"version": 1, "commit": "c", "profile": "p", "files": ["a"]}',
        '{"version": 2, "commit": "c", "profile": "p", "files": {"a": ["b", 2, 3, 4, 5, "c"]}}',
        '{"version": 2, "commit": "c", "profile": "p", "files": {}, "dirs": ["../up"]}',
        '{"version": 2, "commit": "c", "profile": "p", "files": {}, "dirs": [1]}',
        '{"version": 3, "commit": "c", "profile": "p", "files": {}}',
        '{"version": 3, "generation": "", "commit": "c", "profile": "p", "files": {}}',
        '{"version": 4, "generation": "g", "commit": "c", "profile": "p", "files": {}}',
    ],
)
def test_damaged_manifest_is_an_error_naming_the_file(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        Manifest.from_json(text)
    assert info.value.problems[0].path == ".stoker/manifest.json"


def test_a_format_1_manifest_is_read_without_ctimes() -> None:
    text = '{"version": 1, "commit": "c", "profile": "p", "files": {"a": ["b", 2, 3, 4, 5, "c"]}}'
    assert Manifest.from_json(text).records == {"a": Record("b", 2, 3, 4, 5, "c", 0)}


def test_a_newer_manifest_format_is_refused_naming_the_cause() -> None:
    with pytest.raises(InvalidInput, match="written by a newer Stoker"):
        Manifest.from_json('{"version": 4, "commit": "c", "profile": "p", "files": {}}')


def test_the_ctimes_side_file_fills_only_unknown_ctimes_of_the_same_inode() -> None:
    manifest = Manifest(
        records={
            "new": Record("1" * 40, 2, 3, 40, 0o644, "c"),
            "moved": Record("1" * 40, 2, 3, 41, 0o644, "c"),
            "known": Record("1" * 40, 2, 3, 42, 0o644, "c", 7),
            "forged": Record("1" * 40, 2, 3, 43, 0o644, "c"),
        }
    )
    side = json.dumps(
        {
            "ctimes": {
                "new": [40, 100],
                "moved": [99, 100],  # another inode: another file, from another transaction
                "known": [42, 100],
                "forged": [43, True],
                "absent": [44, 100],
            }
        }
    )
    filled = manifest.with_ctimes(side).records
    assert {path: r.ctime_ns for path, r in filled.items()} == {
        "new": 100,
        "moved": 0,
        "known": 7,
        "forged": 0,
    }
    for damaged in ("", "{", "[]", '{"ctimes": []}', '{"ctimes": {"new": 5}}'):
        assert manifest.with_ctimes(damaged) == manifest


def test_errors_carry_exit_codes_and_json_form() -> None:
    error = InvalidInput([Problem(field="spec.git.ref", message="must not be empty")])
    assert error.exit_code is ExitCode.ERROR
    assert not error.retryable
    assert str(error) == "spec.git.ref: must not be empty"
    assert error.problems[0].to_json() == {"field": "spec.git.ref", "message": "must not be empty"}


@pytest.mark.parametrize(
    ("annotations", "labels", "expected"),
    [
        ({"stoker.io/gateway-name": "north"}, {"app.kubernetes.io/name": "ign"}, "north"),
        ({}, {"app.kubernetes.io/name": "ignition"}, "ignition"),
        ({}, {"app.kubernetes.io/name": "ignition", "app.kubernetes.io/instance": "a"}, "a"),
        ({}, {}, "ignition-0"),
    ],
)
def test_one_gateway_name_rule_for_agent_and_controller_d2(
    annotations: dict[str, str], labels: dict[str, str], expected: str
) -> None:
    assert gateway_name(annotations, labels, "ignition-0") == expected


def test_dotted_label_keys_are_reached_with_index_d12() -> None:
    gs = gs_with(
        [{"source": "p", "destination": 'sites/{{index .Labels "topology.kubernetes.io/zone"}}'}]
    )
    from core.helpers import context

    ctx = context(labels={"topology.kubernetes.io/zone": "east"})
    plan = plan_for(gs, MemorySnapshot(files={"p/a": b""}), MemoryTree(), ctx=ctx)
    assert plan.added == ["sites/east/a"]


def test_plan_report_is_byte_identical_for_the_same_inputs() -> None:
    gs = gs_with([{"source": "p", "destination": "projects"}])
    snap = MemorySnapshot(files={f"p/{n}": b"x" for n in ("b", "a", "Z", "é")})
    reports = [
        json.dumps(
            plan_report(
                plan_for(gs, snap, MemoryTree()), ref="main", profile="default", gateway="g"
            )
        )
        for _ in range(2)
    ]
    assert reports[0] == reports[1]
    assert json.loads(reports[0])["added"] == [
        "projects/Z",
        "projects/a",
        "projects/b",
        "projects/é",
    ]


@pytest.mark.parametrize(
    ("last", "now", "asked", "due"),
    [
        (None, 100.0, False, True),  # never checked: check everything
        (100.0, 110.0, True, True),  # asked (the agent's drift check, --full-check)
        (100.0, 110.0, False, False),  # a new commit 10 s after a full check: its changes
        (100.0, 130.0, False, True),  # syncPeriod (30 s) elapsed: full again
        (100.0, 90.0, False, True),  # the clock went back: do not trust the record
    ],
)
def test_when_a_full_drift_check_is_due(
    last: float | None, now: float, asked: bool, due: bool
) -> None:
    assert full_check_due(last_full_check=last, now=now, sync_period=30, asked=asked) is due


def test_a_status_is_written_when_it_says_something_new_or_as_a_heartbeat() -> None:
    first = SyncRecord(result="InSync", commit="c1", time="t1", duration_seconds=0.2)
    again = SyncRecord(result="InSync", commit="c1", time="t2", duration_seconds=0.3)
    drift = SyncRecord(result="InSync", commit="c1", time="t3", drift=(("a.json", "modified"),))
    assert worth_writing(None, first, written_at=0, now=0)
    assert not worth_writing(first, again, written_at=0, now=30)  # only the clock moved
    assert worth_writing(first, drift, written_at=0, now=30)
    assert worth_writing(first, again, written_at=0, now=HEARTBEAT_SECONDS)


@pytest.mark.parametrize(
    ("path", "clean"),
    [
        ("projects/a.json", True),
        ("a..b/.hidden/...", True),  # dots inside names are names
        ("projects/../x", False),
        ("..", False),
        ("a/./b", False),
        ("a//b", False),
        ("/etc/passwd", False),
        ("a/", False),
        ("", False),
        ("a\x00b", False),
    ],
)
def test_only_paths_of_plain_names_are_clean(path: str, clean: bool) -> None:
    assert is_clean(path) is clean


def test_a_manifest_naming_a_path_that_climbs_is_damaged() -> None:
    text = json.dumps(
        {
            "version": 1,
            "commit": "c",
            "profile": "p",
            "files": {"projects/../../etc/x": ["b", 1, 2, 3, 420, "c"]},
        }
    )
    with pytest.raises(InvalidInput, match="damaged manifest"):
        Manifest.from_json(text)


@given(st.lists(st.sampled_from(["", ".", "..", "a", ".a", "a.", "..a", "a\x00"]), max_size=4))
def test_a_path_is_clean_exactly_when_every_part_is_a_name(parts: list[str]) -> None:
    path = "/".join(parts)
    names = path != "" and all(part not in ("", ".", "..") for part in path.split("/"))
    assert is_clean(path) is (names and "\x00" not in path)


PARTS = st.lists(st.sampled_from(["", ".", "..", "a", ".a", "a.", "..a", "a\x00", "/"]), max_size=3)


@given(st.lists(PARTS.map("/".join), max_size=6))
def test_the_first_unclean_of_many_paths_is_the_first_that_is_not_clean(
    paths: list[str],
) -> None:
    # One search of the joined paths stands for a check per path (a commit's every path).
    expected = next((i for i, path in enumerate(paths) if not is_clean(path)), -1)
    assert first_unclean(paths) == expected


@given(st.lists(st.lists(st.sampled_from(["a", "b", "a-", "ab", ""]), max_size=5).map("/".join)))
def test_the_folders_above_many_paths_are_each_path_s_parents_together(paths: list[str]) -> None:
    # A level at a time (set operations) stands for a climb per path (a tree's every file).
    assert folders_above(paths) == {folder for path in paths for folder in parents(path)} - {""}


FIELD = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.text("ab", max_size=2),
    st.lists(st.none(), max_size=1),
)
GOOD = st.tuples(st.text("ab"), *[st.integers()] * 4, st.text("ab"), st.integers()).map(list)
FIELDS = st.one_of(GOOD, st.lists(FIELD, min_size=6, max_size=8), FIELD)


def _outcome(read: Callable[[], object]) -> object:
    try:
        return read()
    except (ValueError, TypeError, AttributeError) as e:
        return type(e), str(e)


@given(st.dictionaries(st.text("ab/", min_size=1), FIELDS, max_size=5))
def test_records_checked_a_column_at_a_time_are_those_read_one_by_one(
    files: dict[str, Any],
) -> None:
    # A manifest's records are checked in bulk (a few passes in C); any odd shape is read
    # again one record at a time, so the records, or the refusal, stay what they were.
    one_by_one = _outcome(lambda: parse_records(UserDict(files)))
    assert _outcome(lambda: parse_records(files)) == one_by_one
