"""The sync history's records and rules (stoker_core.history): read back as hostile input."""

from __future__ import annotations

import json

from stoker_core import history
from stoker_core.status import SyncRecord


def entry(n: int = 1, **fields: object) -> history.Entry:
    values: dict[str, object] = {
        "time": f"2026-12-06T08:{n % 60:02d}:00Z",
        "result": "Synced",
        "commit": f"{n:040x}",
        "ref": "main",
        "via": history.STANDALONE,
        "user": "alice",
    }
    values.update(fields)
    return history.Entry(**values)  # type: ignore[arg-type]


def text_of(*entries: history.Entry) -> bytes:
    return "".join(history.line(e) for e in entries).encode()


def test_a_record_written_is_read_back_with_every_field() -> None:
    written = history.Entry(
        time="2026-12-06T08:00:00Z",
        result="Rejected",
        commit="a" * 40,
        ref="release/1.2",
        gateway="gw-1",
        profile="blue",
        added=3,
        modified=2,
        deleted=1,
        duration_seconds=1.25,
        dry_run=False,
        error="rolled back: project blue failed to load",
        via="receiver",
        user="",
        source="github",
        delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        approved_by="bob",
    )
    assert history.parse(text_of(written)).entries == (written,)


def test_the_standalone_record_counts_changes_and_names_stoker_sync_and_the_user() -> None:
    record = SyncRecord(
        result="Synced",
        commit="c" * 40,
        ref="main",
        added=("a", "b"),
        modified=("m",),
        deleted=(),
        time="2026-12-06T08:00:00Z",
        duration_seconds=0.5,
    )
    made = history.from_record(record, via=history.STANDALONE, user="alice")
    assert (made.added, made.modified, made.deleted) == (2, 1, 0)
    assert (made.via, made.user, made.commit, made.result) == (
        "stoker sync",
        "alice",
        "c" * 40,
        "Synced",
    )


def test_a_torn_last_line_is_never_read_back() -> None:
    whole = text_of(entry(1), entry(2))
    torn = whole + history.line(entry(3)).encode()[:-10]
    found = history.parse(torn)
    assert [e.commit for e in found.entries] == [entry(1).commit, entry(2).commit]
    assert found.torn
    assert not found.damaged


def test_a_last_line_complete_but_for_its_newline_is_still_torn() -> None:
    found = history.parse(text_of(entry(1)) + history.line(entry(2)).encode().rstrip(b"\n"))
    assert [e.commit for e in found.entries] == [entry(1).commit]
    assert found.torn


def test_binary_junk_lines_are_counted_as_damaged_and_the_records_around_them_are_read() -> None:
    junk = bytes(range(256)) + b"\n" + b"\xff\xfe\x00garbage\n" + b"[1,2,3]\n" + b"{}\n"
    found = history.parse(text_of(entry(1)) + junk + text_of(entry(2)))
    assert [e.commit for e in found.entries] == [entry(1).commit, entry(2).commit]
    assert found.damaged == 5  # bytes 0..9 end at the newline byte 10: two lines from range()


def test_a_line_of_10_mb_is_counted_as_damaged() -> None:
    huge = b'{"schemaVersion":1,"time":"t","result":"Synced","ref":"' + b"x" * 10_000_000 + b'"}\n'
    found = history.parse(huge + text_of(entry(1)))
    assert found.damaged == 1
    assert [e.commit for e in found.entries] == [entry(1).commit]


def test_unknown_fields_are_ignored_and_a_field_of_the_wrong_type_makes_a_line_damaged() -> None:
    body = history.to_json(entry(1))
    newer = json.dumps({**body, "rolloutStep": "line-1"}).encode() + b"\n"
    wrong = json.dumps({**body, "added": "3"}).encode() + b"\n"
    negative = json.dumps({**body, "deleted": -1}).encode() + b"\n"
    flag = json.dumps({**body, "dryRun": 1}).encode() + b"\n"
    missing = json.dumps({k: v for k, v in body.items() if k != "result"}).encode() + b"\n"
    other = json.dumps({**body, "schemaVersion": 2}).encode() + b"\n"
    found = history.parse(newer + wrong + negative + flag + missing + other)
    assert found.entries == (entry(1),)
    assert found.damaged == 5


def test_a_string_over_its_bound_makes_a_line_damaged() -> None:
    body = history.to_json(entry(1))
    long_ref = json.dumps({**body, "ref": "r" * (history.MAX_TEXT + 1)}).encode() + b"\n"
    assert history.parse(long_ref).damaged == 1


def test_deeply_nested_json_is_damaged_not_a_traceback() -> None:
    assert history.parse(b"[" * 100_000 + b"\n").damaged == 1


def test_an_entry_of_long_non_ascii_fields_still_fits_one_line_and_reads_back() -> None:
    wide = "\U0001f600\u202e" * 300
    text = history.line(entry(1, ref=wide, user=wide, gateway=wide, profile=wide, error=wide))
    assert len(text.encode()) <= history.MAX_LINE
    [read] = history.parse(text.encode()).entries
    assert read.ref.startswith("\U0001f600\u202e")


def test_a_clean_history_within_bounds_is_appended_to_not_rewritten() -> None:
    found = history.parse(text_of(entry(1), entry(2)))
    assert history.rewrite(found, history.line(entry(3)), limit=3) is None


def test_the_history_keeps_the_newest_entries_up_to_the_limit() -> None:
    found = history.parse(text_of(*(entry(n) for n in range(1, 6))))
    text = history.rewrite(found, history.line(entry(6)), limit=3)
    assert text is not None
    assert [e.commit for e in history.parse(text.encode()).entries] == [
        entry(n).commit for n in (4, 5, 6)
    ]


def test_the_history_keeps_the_newest_entries_within_the_byte_cap() -> None:
    found = history.parse(text_of(*(entry(n) for n in range(1, 6))))
    one = len(history.line(entry(6)).encode())
    text = history.rewrite(found, history.line(entry(6)), limit=100, cap=2 * one + 1)
    assert text is not None
    assert len(text.encode()) <= 2 * one + 1
    assert [e.commit for e in history.parse(text.encode()).entries] == [
        entry(5).commit,
        entry(6).commit,
    ]


def test_a_torn_or_damaged_history_is_rewritten_without_the_bad_lines() -> None:
    found = history.parse(text_of(entry(1)) + b"junk\n" + history.line(entry(2)).encode()[:9])
    text = history.rewrite(found, history.line(entry(3)), limit=100)
    assert text == "".join(history.line(e) for e in (entry(1), entry(3)))


def test_a_history_read_only_in_part_is_rewritten_and_its_partial_first_line_dropped() -> None:
    found = history.parse(history.line(entry(1)).encode()[5:] + text_of(entry(2)), cut=True)
    assert found.entries == (entry(2),)
    assert not found.damaged
    assert history.rewrite(found, history.line(entry(3)), limit=100) is not None


def test_a_quiet_watch_pass_that_repeats_the_last_entry_is_not_recorded() -> None:
    found = history.parse(text_of(entry(1, result="InSync")))
    assert history.repeats_last(found, entry(1, result="InSync", time="later"))
    assert not history.repeats_last(found, entry(1, result="InSync", modified=1))
    assert not history.repeats_last(found, entry(1, result="Error", error="gone"))
    assert not history.repeats_last(found, entry(2, result="InSync"))
