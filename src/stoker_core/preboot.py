"""The first sync before the gateway starts (pre-boot): its time bound and the redundancy rule.

In a pod the gateway container starts only once the agent's start-up probe passes, so the
agent's first sync runs while no gateway API exists: nothing to scan (the gateway reads every
file as it boots), no Designer session to check (none can be open), and no redundancy role to
ask. The role is then taken from what is known without the gateway (`role_before_boot`), so a
redundant backup is not written by mistake. The start-up timeout bounds the wait, below the
kubelet's start-up probe limit, so an unreachable Git server never keeps a gateway down.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from stoker_core.discovery import CHART_NAME, ordinal
from stoker_core.errors import InvalidInput
from stoker_core.vocabulary import Label

# The agent's start-up probe (injected): the kubelet starts the gateway once it passes and
# restarts the agent when it has failed for STARTUP_PROBE_SECONDS.
STARTUP_PROBE_PERIOD = 2  # seconds
STARTUP_PROBE_FAILURES = 150
STARTUP_PROBE_SECONDS = STARTUP_PROBE_PERIOD * STARTUP_PROBE_FAILURES
DEFAULT_TIMEOUT = 180  # seconds: the first sync's bound; 2 minutes below the probe's limit
# The agent itself needs time to start and a sync in flight to finish: leave a minute.
MAX_TIMEOUT = STARTUP_PROBE_SECONDS - 60


class Role(enum.StrEnum):
    """A gateway's redundancy role as Ignition reports it (gateway-info `redundancyRole`)."""

    INDEPENDENT = "independent"
    MASTER = "master"
    BACKUP = "backup"


def remembered(text: str | None) -> Role | None:
    """The role the gateway reported the last time it answered (a state file in its data
    directory, so hostile: anything but a known role is ignored)."""
    try:
        return Role((text or "").strip().lower())
    except ValueError:
        return None


def role_before_boot(labels: Mapping[str, str], last: Role | None) -> tuple[Role, str]:
    """The role to assume before the gateway answers, and why: the one it reported last time;
    else the discovery rule's, a pod of the Ignition Helm chart with StatefulSet ordinal N > 0
    is the backup of a redundant pair (its gateway name is `<release>-N`); else independent."""
    if last is not None:
        return last, f"the gateway reported redundancy role {last} when it last answered"
    number = ordinal(labels)
    if labels.get(Label.APP_NAME) == CHART_NAME and number:
        return Role.BACKUP, f"a pod of the Ignition chart with ordinal {number}"
    return Role.INDEPENDENT, "no redundancy role is known"


def skip_reason(labels: Mapping[str, str], last: Role | None, *, apply_on_backup: bool) -> str:
    """Why the pre-boot sync must not write ("" when it may): a backup, unless applyOnBackup."""
    role, why = role_before_boot(labels, last)
    if role is Role.BACKUP and not apply_on_backup:
        return (
            f"Skipped (backup, before the gateway started): {why}; the master replicates to "
            "it (applyOnBackup: true syncs it anyway)"
        )
    return ""


def startup_timeout(text: str | None, *, where: str) -> int:
    """The start-up timeout in whole seconds from `text` (None or "": the default; 0: the
    gateway does not wait for the first sync); refuse what is not a number from 0 to
    MAX_TIMEOUT, naming `where` it came from."""
    if not text:
        return DEFAULT_TIMEOUT
    value = text.strip()
    if not (value.isascii() and value.isdigit() and len(value) < 8) or not (
        0 <= int(value) <= MAX_TIMEOUT
    ):
        raise InvalidInput.one(
            f"start-up timeout {text[:20]!r} is not a number of seconds from 0 to {MAX_TIMEOUT} "
            f"(the kubelet's start-up probe gives up after {STARTUP_PROBE_SECONDS})",
            field=where,
        )
    return int(value)
