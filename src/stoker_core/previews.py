"""A plan report (one gateway or several) as Markdown fit for a pull-request comment.

Built from the JSON report, so the comment says exactly what `-o json` says. Every name, path and
line of content from the repository goes through `markup` (code spans, long fences, escapes), and
the whole comment stays below GitHub's 65,536 characters: summaries come first, diffs after, and
what does not fit is counted in a closing note.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stoker_core.markup import Capped, code, fence, plain

COMMENT_LIMIT = 65_536  # characters in a GitHub comment
LIMIT = 60_000  # ours: room for a bot's own header and footer
_CHANGES = ("added", "modified", "deleted")


def _plans(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report["gateways"]) if "gateways" in report else [report]


def _commit(ref: str, commit: str) -> str:
    return f"{code(ref)} ({code(commit[:12])})"


def header(report: dict[str, Any]) -> str:
    """The title line: the commit planned and, for a preview, the base it is compared with."""
    line = f"### Stoker plan: {_commit(report['ref'], report['commit'])}"
    base = report.get("base")
    if base:
        line += f" against {_commit(base['ref'], base['commit'])}"
    return line


def totals(plan: dict[str, Any]) -> str:
    """`1 added, 2 modified, 0 deleted, 20 unchanged, 1 skipped`."""
    counts = ", ".join(f"{len(plan[k])} {k}" for k in _CHANGES)
    return f"{counts}, {plan['unchanged']} unchanged, {len(plan['skipped'])} skipped"


def _summary(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield (
        f"**Gateway {code(plan['gateway'])}** (profile {code(plan['profile'])}): {totals(plan)}",
        "gateway summaries",
    )
    for warning in plan.get("warnings", []):
        yield f"- **warning:** {plain(warning['message'])}", "warnings"
    for g in plan["resources"]:
        count = len(g["files"])
        noun = "file" if count == 1 else "files"
        line = f"- {g['kind']} {code(g['name'])}: **{g['change']}** ({count} {noun})"
        yield line, "resource lines"
    for skip in plan["skipped"]:
        line = f"- skipped {code(skip['path'])} ({code(skip['reason'])}): {plain(skip['detail'])}"
        yield line, "skip lines"


def _size(n: int | None) -> str:
    return "absent" if n is None else f"{n:,} bytes"


def _diff_blocks(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for d in plan.get("diffs", []):
        if d["change"] == "deleted":
            continue  # the resource lines say what goes; old content is not for review
        title = f"**{d['change']}** {code(d['path'])}"
        if d["binary"]:
            sizes = f"{_size(d['sizeBefore'])} → {_size(d['sizeAfter'])}"
            yield f"{title}: binary, {sizes}\n", "diffs"
            continue
        block = title
        if d["diff"]:
            block += "\n\n" + fence(d["diff"], "diff")
        if d.get("note"):
            block += f"\n\n_{plain(d['note'])}_"
        yield block + "\n", "diffs"
    if plan.get("diffsLeftOut"):
        yield f"_Diffs of {plan['diffsLeftOut']} more files were not computed._", "notes"


def markdown(report: dict[str, Any], limit: int = LIMIT) -> str:
    """Render a plan report as Markdown of at most `limit` characters (UTF-16 units)."""
    doc = Capped(limit)
    doc.add(header(report), "headers")
    doc.add("")
    plans = _plans(report)
    for plan in plans:
        for block, what in _summary(plan):
            doc.add(block, what)
        doc.add("")
    for plan in plans:
        blocks = list(_diff_blocks(plan))
        if blocks:
            doc.add(f"#### Diffs for {code(plan['gateway'])}\n", "headers")
        for block, what in blocks:
            doc.add(block, what)
    return doc.text(hint="Run `stoker plan --diff` locally for everything.")
