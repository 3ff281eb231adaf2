"""Content diffs of one file, bounded and with secrets masked before anything is compared.

Secret values are replaced in the whole content of both sides before the diff is computed, so no
cut (of a line, a file or a report) can leave a fragment of one behind. Each value is masked as
written and as JSON writes it (a patch stores values JSON-escaped).

difflib's matcher can take time quadratic in the number of lines, so a side over MAX_LINES lines
or MAX_BYTES bytes is not diffed (the file is summarised by size, with a note), and a diff is cut
after MAX_DIFF_LINES lines of output, with a note.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from stoker_core.fieldwise import FIELDWISE
from stoker_core.secretvalues import Secrets

MAX_BYTES = 512 * 1024  # per side: a larger file is summarised, not diffed
MAX_LINES = 5_000  # per side: difflib stays fast below this
MAX_DIFF_LINES = 400  # lines of unified diff kept per file
MAX_LINE = 400  # characters kept per diff line (a minified JSON is one long line)
MAX_PLAN_LINES = 100_000  # lines compared per plan, both sides: ~10 worst-case files, seconds
CONTEXT = 3


@attrs.define(slots=True)
class Budget:
    """Lines a plan may still compare: the matcher's time grows with lines, so a plan of many
    large changes stops diffing (with a note) instead of running for minutes."""

    lines: int = MAX_PLAN_LINES

    def spend(self, lines: int) -> bool:
        """Take `lines` from the budget if they fit; tell whether they did."""
        if lines > self.lines:
            self.lines = 0  # later small files would make a confusing patchwork: stop here
            return False
        self.lines -= lines
        return True


@attrs.frozen(slots=True, kw_only=True)
class FileDiff:
    """One changed file: text with a unified diff, or binary/too large with sizes only."""

    __eq__, __hash__, __repr__ = FIELDWISE

    path: str
    change: str  # added, modified, deleted
    binary: bool
    size_before: int | None
    size_after: int | None
    lines: tuple[str, ...] = ()  # unified diff lines, without newlines; masked
    note: str = ""  # why the diff is missing or cut

    def to_json(self) -> dict[str, object]:
        """The wire form (docs/schemas/plan.schema.json, `diffs`)."""
        body: dict[str, object] = {
            "path": self.path,
            "change": self.change,
            "binary": self.binary,
            "sizeBefore": self.size_before,
            "sizeAfter": self.size_after,
            "diff": list(self.lines),
        }
        if self.note:
            body["note"] = self.note
        return body


def is_binary(data: bytes) -> bool:
    """Binary: a NUL byte in the first 8 KiB (as git decides), or not UTF-8."""
    if b"\0" in data[:8192]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def diff(
    path: str,
    before: bytes | None,
    after: bytes | None,
    secrets: Secrets,
    budget: Budget | None = None,
) -> FileDiff:
    """The diff of one file between two contents (None: absent on that side)."""
    change = "added" if before is None else "deleted" if after is None else "modified"

    def made(binary: bool = False, lines: tuple[str, ...] = (), note: str = "") -> FileDiff:
        return FileDiff(
            path=path,
            change=change,
            binary=binary,
            size_before=None if before is None else len(before),
            size_after=None if after is None else len(after),
            lines=lines,
            note=note,
        )

    sides = [b for b in (before, after) if b is not None]
    if any(is_binary(b) for b in sides):
        return made(binary=True)
    if any(len(b) > MAX_BYTES or b.count(b"\n") > MAX_LINES for b in sides):
        return made(note=f"not diffed: over {MAX_LINES} lines or {MAX_BYTES // 1024} KiB on a side")
    if budget is not None and not budget.spend(sum(b.count(b"\n") + 1 for b in sides)):
        return made(note=f"not diffed: this plan already compared {MAX_PLAN_LINES:,} lines")
    old, new = (secrets.mask(b.decode("utf-8")) if b is not None else "" for b in (before, after))
    lines = list(_unified(path, old, new, before is None, after is None))
    note = ""
    if old == new and change == "modified":
        note = "the change is only in secret values or line endings"
    if len(lines) > MAX_DIFF_LINES:
        note = f"diff cut after {MAX_DIFF_LINES} of {len(lines)} lines"
        lines = lines[:MAX_DIFF_LINES]
    return made(lines=tuple(lines), note=note)


def _unified(path: str, old: str, new: str, created: bool, removed: bool) -> Iterable[str]:
    import difflib  # only a preview shows a diff: not paid by every sync's start-up

    a = "/dev/null" if created else f"a/{path}"
    b = "/dev/null" if removed else f"b/{path}"
    for line in difflib.unified_diff(
        old.splitlines(), new.splitlines(), a, b, n=CONTEXT, lineterm=""
    ):
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + f" … ({len(line) - MAX_LINE} more characters)"
        yield line
