"""Repository content in a terminal and in a PR comment: no escapes, no fence breakout, capped."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from stoker_core.markup import ZWSP, Capped, code, fence, plain, units, visible
from stoker_core.previews import markdown

HOSTILE = st.text(
    alphabet=st.sampled_from(
        ["`", "~", "\x1b", "\x9b", "\u202e", "\n", "\r", "@", "<", ">", "a", " ", "|", "\U0001f600"]
    ),
    max_size=60,
)


def closes(line: str, ticks: int) -> bool:
    """Whether a CommonMark line closes a backtick fence of `ticks` backticks."""
    return re.fullmatch(r" {0,3}`{" + str(ticks) + r",}[ \t]*", line) is not None


@given(st.lists(HOSTILE, max_size=8))
def test_no_line_of_content_closes_its_fence(lines: list[str]) -> None:
    block = fence(lines, "diff").split("\n")
    opening = len(block[0]) - len("diff")
    assert block[-1] == "`" * opening
    assert not any(closes(line, opening) for line in block[1:-1])
    assert len(block) == len(lines) + 2  # no content line became two


@given(HOSTILE)
def test_nothing_raw_reaches_a_terminal_or_a_comment(text: str) -> None:
    for out in (visible(text), code(text), fence([text]), plain(text)):
        assert not re.search(r"[\x1b\x9b\u202e\r]", out)
    assert "\n" not in code(text)
    assert "\n" not in plain(text)


@given(HOSTILE)
def test_a_code_span_holds_its_text_literally(text: str) -> None:
    span = code(text)
    ticks = len(span) - len(span.lstrip("`"))
    inner = span[ticks:-ticks]
    assert "`" * ticks not in inner
    assert inner.strip(" ") == visible(text).strip(" ") or inner == " " + visible(text) + " "


def test_prose_holds_no_html_and_notifies_nobody() -> None:
    assert plain("<img src=x> @octocat") == f"\\<img src\\=x\\> @{ZWSP}octocat"


@given(st.lists(st.tuples(HOSTILE, st.integers(0, 5000)), max_size=30), st.integers(500, 5000))
def test_a_capped_document_never_exceeds_its_limit(
    blocks: list[tuple[str, int]], limit: int
) -> None:
    doc = Capped(limit)
    for text, repeat in blocks:
        doc.add(text * (repeat // max(1, len(text))), "blocks")
    assert units(doc.text(hint="Run it locally.")) <= limit


def report(paths: list[str], lines: list[str]) -> dict[str, object]:
    return {
        "schemaVersion": 1,
        "commit": "a" * 40,
        "ref": "main",
        "profile": "p",
        "gateway": "g@h",
        "base": {"ref": "base`ref", "commit": "b" * 40},
        "added": paths,
        "modified": [],
        "deleted": [],
        "unchanged": 0,
        "skipped": [],
        "resources": [
            {
                "kind": "file",
                "name": p,
                "change": "added",
                "files": [{"path": p, "change": "added"}],
            }
            for p in paths
        ],
        "diffs": [
            {
                "path": p,
                "change": "added",
                "binary": False,
                "sizeBefore": None,
                "sizeAfter": 1,
                "diff": lines,
            }
            for p in paths
        ],
    }


@given(st.lists(HOSTILE, min_size=1, max_size=40), st.lists(HOSTILE, max_size=50))
def test_a_markdown_report_is_capped_and_escaped_for_any_content(
    paths: list[str], lines: list[str]
) -> None:
    text = markdown(report(paths * 30, lines), limit=4_000)
    assert units(text) <= 4_000
    assert not re.search(r"[\x1b\x9b\u202e\r]", text)


def test_a_report_over_the_limit_says_what_it_left_out() -> None:
    text = markdown(report([f"p/{i}.json" for i in range(400)], ["+x" * 50]), limit=20_000)
    assert units(text) <= 20_000
    assert "Cut to stay under 20,000 characters: left out" in text
    assert "diffs" in text.rsplit("left out", 1)[1]
    assert "against `base`ref`" not in text
    assert "``base`ref``" in text
