"""`stoker history --data-dir`: the syncs `stoker sync` recorded in a data directory, newest
first."""

from __future__ import annotations

import os

import click

from stoker_agent.commands.common import emit
from stoker_agent.histories import HISTORY_FILE, read
from stoker_core import history
from stoker_core.errors import InvalidInput
from stoker_core.markup import visible

COLUMNS = ("TIME", "RESULT", "COMMIT", "REF", "CHANGES", "DURATION", "REQUESTED BY")


def show(data_dir: str, limit: int | None, output: str) -> None:
    """Show the syncs recorded in DATA_DIR's .stoker/history.jsonl, newest first (`stoker
    history --data-dir`; the command lives in stoker_k8s.commands.history beside the
    GatewaySync's, and imports no Kubernetes client for this)."""
    if not os.path.isdir(data_dir):
        raise InvalidInput.one(
            "no such directory: give the gateway's data directory", path=data_dir
        )
    found = read(data_dir)
    entries = list(reversed(found.entries))[:limit]
    for warning in _warnings(found):
        click.echo(f"warning: {HISTORY_FILE}: {warning}", err=True)
    if output != "text":
        emit(
            {
                "schemaVersion": history.SCHEMA_VERSION,
                "entries": [history.to_json(e) for e in entries],
                "damagedLines": found.damaged,
                "tornLastLine": found.torn,
                "olderNotRead": found.cut,
            },
            output,
        )
        return
    if not entries:
        click.echo(f"no syncs recorded in {visible(os.path.join(data_dir, HISTORY_FILE))}")
        return
    rows = [COLUMNS, *(_row(e) for e in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _row(entry: history.Entry) -> tuple[str, ...]:
    """One table row; every cell from the file is shown with its control and bidi escaped."""
    by = entry.user or entry.approved_by or entry.source or entry.via or "-"
    if entry.via and entry.via != history.STANDALONE:
        by = f"{entry.via}: {by}"
    result = entry.result + (" (dry run)" if entry.dry_run and entry.result != "DryRun" else "")
    cells = (
        entry.time,
        result,
        entry.commit[:12] or "-",
        entry.ref or "HEAD",
        f"+{entry.added} ~{entry.modified} -{entry.deleted}",
        f"{entry.duration_seconds:.1f}s",
        by,
    )
    return tuple(visible(cell) for cell in cells)


def _warnings(found: history.History) -> list[str]:
    """What the reader skipped, said once each on stderr."""
    said = []
    if found.damaged:
        said.append(f"{found.damaged} damaged line(s) skipped")
    if found.torn:
        said.append("an unfinished last line (a sync stopped while recording) skipped")
    if found.cut:
        said.append(f"larger than {history.READ_LIMIT} bytes: only the newest entries read")
    return said
