"""A restart owed stays reported until the gateway has had it.

A sync that changed a restart-only path (modules, `.modl`, `ignition.conf`, `*.vmoptions`)
reports `RestartRequired` and leaves `.stoker/restart-owed.json` (when it was applied). Every
later sync that finds the files in step asks the gateway when it started (`overview` uptime)
and which restart tasks it has pending: while it lists any, or has not started since the
change, the result stays `RestartRequired`; after a restart the marker goes and the result is
the sync's own. With no marker, only a sync that applied files asks for pending tasks, so a
steady gateway costs no request. The rule is `stoker_core.outcomes.restart_owed`.

The marker lives where the gateway can write: it is read as hostile input (bounded, a number
or nothing); forging it can only show a restart as needed, deleting it only hide one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import TYPE_CHECKING

import attrs

from stoker_agent.applying import STATE_DIR
from stoker_agent.datadirs import read_state_file, remove_state_file, write_state_file
from stoker_core import jsontext
from stoker_core.outcomes import restart_owed
from stoker_core.status import SyncRecord

if TYPE_CHECKING:  # imported where a gateway is asked: a sync without one never loads it
    from stoker_agent.gateway import GatewayClient

log = logging.getLogger("stoker.sync")
OWED_FILE = f"{STATE_DIR}/restart-owed.json"
MARKER_LIMIT = 4096  # bytes: the marker holds one number
APPLIED = frozenset({"Synced", "RestartRequired"})  # results after which files changed
SETTLED = APPLIED | {"InSync"}  # results a restart owed turns into RestartRequired


def settle(record: SyncRecord, client: GatewayClient | None, data_dir: str) -> SyncRecord:
    """`record`, as RestartRequired while the gateway still needs a restart; asked through
    the sync's own `client` (None: no gateway), whose connection is open already."""
    if client is None or record.result not in SETTLED:
        return record
    path = os.path.join(data_dir, OWED_FILE)
    since = _since(path)
    if record.result == "RestartRequired" and since is None:
        since = time.time()
        write_state_file(path, json.dumps({"since": since}))
    if since is None and record.result not in APPLIED:
        return record
    pending, started = _ask(client, uptime=since is not None)
    if not restart_owed(since=since, started=started, pending=pending):
        if since is not None:
            remove_state_file(path)
            log.info("the gateway has restarted since the restart-only change: cleared")
        return record
    why = "; ".join(
        part
        for part in (
            f"a restart-only file changed at {_stamp(since)}" if since is not None else "",
            "the gateway has not said when it started" if started is None and since else "",
            f"the gateway lists pending restart tasks: {', '.join(pending)}" if pending else "",
        )
        if part
    )
    return attrs.evolve(record, result="RestartRequired", restart=why)


def _ask(client: GatewayClient, *, uptime: bool) -> tuple[list[str], float | None]:
    """The gateway's pending restart tasks and, if `uptime` (a restart-only change is owed:
    otherwise only the tasks decide, see restart_owed), when it started (None: not asked,
    or it did not say). Every sync that changed files asks: one call fewer matters."""
    from stoker_agent.gateway import GatewayError

    try:
        pending = client.pending_restarts()
    except GatewayError as e:
        log.info("pending restart tasks unknown: %s", e)
        pending = []
    if not uptime:
        return pending, None
    try:
        started: float | None = time.time() - client.uptime()
    except GatewayError as e:
        log.info("gateway start time unknown: %s", e)
        started = None
    return pending, started


def _since(path: str) -> float | None:
    """When the owed restart's change was applied, or None (no marker, or not a number)."""
    try:
        since = jsontext.loads(read_state_file(path, limit=MARKER_LIMIT) or "null")
    except ValueError:  # too long, not UTF-8, not JSON: no marker of ours
        return None
    value = since.get("since") if isinstance(since, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
