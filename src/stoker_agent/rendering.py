"""Text rendering of plans for people: changes grouped by Ignition resource, `+` added,
`~` modified, `-` deleted, `!` skipped, then totals; with `--diff`, each file's diff under it.

Colour only on a terminal (click strips styles when stdout is not a TTY). Every path and line of
content passes `markup.visible`: a file cannot send escapes to the terminal.
"""

from __future__ import annotations

from typing import Any

import click

from stoker_core.markup import visible
from stoker_core.previews import totals

_MARKS = {"added": ("+", "green"), "modified": ("~", "yellow"), "deleted": ("-", "red")}
_DIFF_COLOURS = (("+++", None), ("---", None), ("+", "green"), ("-", "red"), ("@@", "cyan"))


def header(report: dict[str, Any]) -> str:
    """`gateway g  profile p  ref HEAD  commit 3b8e086cffe3  base main 1a2b3c4d5e6f`."""
    line = (
        f"gateway {report['gateway']}  profile {report['profile']}  "
        f"ref {report['ref']}  commit {report['commit'][:12]}"
    )
    base = report.get("base")
    if base:
        line += f"  base {base['ref']} {base['commit'][:12]}"
    return visible(line)


def print_plan(report: dict[str, Any]) -> None:
    """Print a plan report (the JSON object) as a readable listing."""
    click.echo(header(report))
    diffs = {d["path"]: d for d in report.get("diffs", [])}
    for g in report["resources"]:
        mark, colour = _MARKS[g["change"]]
        files = g["files"]
        whole = g["kind"] in ("project", "collection") and len(files) > 1
        count = len(files)
        summary = f"{g['kind']} {g['name']}: {g['change']} ({count} file{'s' * (count != 1)})"
        if whole and (not diffs or g["change"] == "deleted"):
            click.echo(click.style(f"  {mark} {visible(summary)}", fg=colour))
            continue
        click.echo(f"  {visible(summary)}")
        for f in files:
            fmark, fcolour = _MARKS[f["change"]]
            click.echo(click.style(f"    {fmark} {visible(f['path'])}", fg=fcolour))
            if f["path"] in diffs:
                _print_diff(diffs[f["path"]])
    for skip in report["skipped"]:
        line = f"  ! {skip['path']}  ({skip['reason']}: {skip['detail']})"
        click.echo(click.style(visible(line), fg="cyan"))
    if report.get("diffsLeftOut"):
        click.echo(f"  (diffs of {report['diffsLeftOut']} more files were not computed)")
    changed = any(report[key] for key in _MARKS)
    click.echo(("Plan: " if changed else "No changes: ") + totals(report))


def _print_diff(d: dict[str, Any]) -> None:
    if d["binary"]:
        click.echo(f"      binary: {_size(d['sizeBefore'])} -> {_size(d['sizeAfter'])}")
    for line in d["diff"]:
        colour = next((c for prefix, c in _DIFF_COLOURS if line.startswith(prefix)), None)
        click.echo(click.style(f"      {visible(line)}", fg=colour))
    if d.get("note"):
        click.echo(f"      ({visible(d['note'])})")


def _size(n: int | None) -> str:
    return "absent" if n is None else f"{n} bytes"
