"""Repository text made safe to show: on a terminal, and in Markdown posted as a PR comment.

Everything that comes from a repository, a CR or a gateway (paths, names, file content) is
hostile: it may hold terminal escapes, text that closes a code fence, raw HTML, or @-mentions that
would notify people. Content goes into code spans and fenced blocks whose backtick run is longer
than any in the content; control and bidirectional-override characters are shown as escapes,
never sent; anything outside code is escaped character by character.
"""

from __future__ import annotations

import re

import attrs

# C0 (but tab), DEL, C1, and the bidi overrides and isolates ("Trojan Source").
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_BACKTICKS = re.compile(r"`+")
_PLAIN_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+\-.!|<>&~=:\"']")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
ZWSP = "\u200b"  # zero-width space: "@\u200bname" shows as @name and notifies nobody


def visible(text: str) -> str:
    """Return `text` with control and bidi characters shown as escapes (`\\x1b`, `\\u202e`)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def hides_anything(text: str) -> bool:
    """Whether `text`, read as lines, holds a control or bidi character a terminal would act on."""
    return any(_UNSAFE.search(line) for line in text.split("\n"))


def _longest_run(text: str) -> int:
    return max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=0)


def code(text: str) -> str:
    """An inline code span holding `text` literally (one line, nothing rendered)."""
    text = visible(text)
    ticks = "`" * (_longest_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    # A mention or HTML inside a code span is shown as text: GitHub renders neither there.
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fence(lines: list[str], info: str = "") -> str:
    """A fenced code block holding `lines` literally: its fence is longer than any backtick run
    in them, so no line can close it."""
    body = [visible(line) for line in lines]
    ticks = "`" * max(3, max((_longest_run(line) for line in body), default=0) + 1)
    return "\n".join([ticks + info, *body, ticks])


def plain(text: str) -> str:
    """Prose from outside (a skip's detail) as Markdown text: nothing in it is markup, no
    HTML, no mention."""
    text = _PLAIN_SPECIAL.sub(lambda m: "\\" + m.group(), visible(text))
    return _MENTION.sub("@" + ZWSP, text)


def units(text: str) -> int:
    """Length as GitHub counts a comment: UTF-16 code units (astral characters count two)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


@attrs.define(slots=True)
class Capped:
    """A document built from blocks that never grows past `limit` units: a block that does not
    fit is left out and counted, and a closing note says what was left out."""

    limit: int
    reserve: int = 400  # kept for the closing note
    blocks: list[str] = attrs.field(factory=list)
    size: int = 0
    left_out: dict[str, int] = attrs.field(factory=dict)

    def add(self, block: str, what: str = "") -> bool:
        """Append `block` (and a newline) if it fits; otherwise count it under `what`."""
        cost = units(block) + 1
        if not self.left_out and self.size + cost <= self.limit - self.reserve:
            self.blocks.append(block)
            self.size += cost
            return True
        if what:
            self.left_out[what] = self.left_out.get(what, 0) + 1
        return False

    def text(self, hint: str = "") -> str:
        """The document, with the closing note when something was left out."""
        out = "\n".join(self.blocks) + "\n"
        if self.left_out:
            parts = ", ".join(f"{n} {what}" for what, n in sorted(self.left_out.items()))
            note = f"\n_Cut to stay under {self.limit:,} characters: left out {parts}."
            note += f" {hint}_\n" if hint else "_\n"
            out += note[: self.reserve]
        return out
