"""Text rendering of plans for people: `+` added, `~` modified, `-` deleted, with totals.

Colour only on a terminal (click strips styles when stdout is not a TTY).
"""

from __future__ import annotations

from typing import Any

import click

_MARKS = (("added", "+", "green"), ("modified", "~", "yellow"), ("deleted", "-", "red"))


def print_plan(report: dict[str, Any]) -> None:
    """Print a plan report (the JSON object) as a readable listing."""
    click.echo(
        f"gateway {report['gateway']}  profile {report['profile']}  "
        f"ref {report['ref']}  commit {report['commit'][:12]}"
    )
    for key, mark, colour in _MARKS:
        for path in report[key]:
            click.echo(click.style(f"  {mark} {path}", fg=colour))
    for skip in report["skipped"]:
        click.echo(
            click.style(f"  ! {skip['path']}  ({skip['reason']}: {skip['detail']})", fg="cyan")
        )
    counts = ", ".join(f"{len(report[key])} {key}" for key, _, _ in _MARKS)
    total = sum(len(report[key]) for key, _, _ in _MARKS)
    summary = f"{counts}, {report['unchanged']} unchanged, {len(report['skipped'])} skipped"
    click.echo(("No changes: " if total == 0 else "Plan: ") + summary)
