"""Content diffs: text diffed, binary summarised, huge inputs bounded, secrets never shown."""

from __future__ import annotations

import json

import pytest

from core.helpers import context, gs_with
from stoker_core import desired, profiles
from stoker_core.diffs import (
    MAX_BYTES,
    MAX_DIFF_LINES,
    MAX_LINES,
    MAX_PLAN_LINES,
    Budget,
    diff,
)
from stoker_core.markup import fence
from stoker_core.previews import markdown
from stoker_core.secretvalues import Secrets
from stoker_core.trees import MemorySnapshot

SECRET = 'pa55-"wörd"\\-Zq8xK'  # a quote, a backslash and a non-ASCII letter: JSON escapes them


def fragments(secret: str, size: int = 6) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def test_a_text_change_is_a_unified_diff() -> None:
    d = diff("p/a.json", b"one\ntwo\n", b"one\nthree\n", Secrets())
    assert d.lines == (
        "--- a/p/a.json",
        "+++ b/p/a.json",
        "@@ -1,2 +1,2 @@",
        " one",
        "-two",
        "+three",
    )
    assert (d.binary, d.size_before, d.size_after, d.note) == (False, 8, 10, "")


def test_a_binary_change_is_summarised_by_size() -> None:
    d = diff("p/logo.png", b"\x89PNG\0\1", b"\x89PNG\0\1\2", Secrets())
    assert (d.binary, d.lines, d.size_before, d.size_after) == (True, (), 6, 7)
    assert diff("p/x", b"caf\xe9", b"cafe", Secrets()).binary  # not UTF-8: binary


def test_a_huge_file_is_not_diffed_and_says_why() -> None:
    big = b"x\n" * (MAX_LINES + 1)
    d = diff("p/big.txt", big, big + b"y\n", Secrets())
    assert d.lines == ()
    assert "not diffed" in d.note


def test_a_huge_single_line_file_is_not_diffed() -> None:
    minified = b'{"a":"' + b"x" * MAX_BYTES + b'"}'
    d = diff("p/min.json", minified, minified + b" ", Secrets())
    assert (d.lines, d.size_after) == ((), MAX_BYTES + 9)
    assert d.note.startswith("not diffed: over")


def test_a_plan_stops_diffing_when_its_line_budget_is_spent() -> None:
    side = b"a\n" * (MAX_LINES - 1)
    budget = Budget()
    diffs = [diff(f"p/{i}", side, side + b"b\n", Secrets(), budget) for i in range(12)]
    done = [d for d in diffs if d.lines]
    cost = MAX_LINES + (MAX_LINES + 1)  # lines compared per file: both sides
    assert len(done) == MAX_PLAN_LINES // cost
    assert diffs[-1].note == f"not diffed: this plan already compared {MAX_PLAN_LINES:,} lines"


def test_a_long_diff_is_cut_with_a_note() -> None:
    new = "".join(f"{i}\n" for i in range(MAX_DIFF_LINES * 2)).encode()
    d = diff("p/many.txt", None, new, Secrets())
    assert len(d.lines) == MAX_DIFF_LINES
    assert d.note == f"diff cut after {MAX_DIFF_LINES} of {MAX_DIFF_LINES * 2 + 3} lines"


@pytest.mark.parametrize("filler", [0, 370], ids=["short line", "line cut inside the secret"])
def test_a_secret_var_patched_into_a_file_never_appears_in_any_output(filler: int) -> None:
    gs = gs_with(
        [
            {
                "source": "cfg",
                "destination": "config/resources/external",
                "patches": [
                    {"file": "**/config.json", "set": {"password": "{{.Vars.dbPassword}}"}}
                ],
            }
        ]
    )
    effective = profiles.resolve(gs.spec.sync, None)
    # With 370 characters before it, the diff's 400-character line cut falls inside the secret.
    note = "x" * filler
    snapshot = MemorySnapshot(
        files={"cfg/ignition/database-connection/db/config.json": f'{{"note":"{note}"}}'.encode()}
    )
    tree = desired.build(effective, snapshot, context(vars={"dbPassword": SECRET}))
    (rendered,) = tree.files.values()
    assert rendered.content is not None
    assert json.loads(rendered.content)["password"] == SECRET
    secrets = Secrets(named={"dbPassword": SECRET})
    d = diff(rendered.path, b'{"note":"x"}', rendered.content, secrets)
    report = {
        "schemaVersion": 1,
        "commit": "a" * 40,
        "ref": "HEAD",
        "profile": "default",
        "gateway": "g",
        "added": [],
        "modified": [d.path],
        "deleted": [],
        "unchanged": 0,
        "skipped": [],
        "resources": [],
        "diffs": [d.to_json()],
    }
    outputs = ["\n".join(d.lines), json.dumps(report), markdown(report), fence(list(d.lines))]
    for text in outputs:
        assert filler or "<secret dbPassword>" in text
        for piece in fragments(SECRET) | fragments(json.dumps(SECRET)[1:-1]):
            assert piece not in text


def test_registered_secrets_are_masked_in_every_json_form() -> None:
    secrets = Secrets(anonymous=("tok\u00e9n-123",))
    assert secrets.mask('{"a":"tok\\u00e9n-123"}') == '{"a":"***"}'
    assert secrets.mask_all({"tok\u00e9n-123": ["x tok\u00e9n-123"]}) == {"***": ["x ***"]}


@pytest.mark.parametrize("short", ["", "abc"])
def test_secrets_too_short_to_mask_are_left_alone(short: str) -> None:
    assert Secrets(named={"v": short}).mask("abcdef") == "abcdef"
