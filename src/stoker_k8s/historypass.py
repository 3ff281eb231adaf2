"""status.history for one reconcile: the controller's inputs handed to
stoker_core.fleethistory (which decides everything), the result put into the status it writes.

It lives in status, so a controller restart or a new leader reads it back and goes on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stoker_core import conditions, fleethistory
from stoker_core.model import DEFAULT_HISTORY, GatewaySync
from stoker_core.standings import Standing


def recorded(
    status: dict[str, Any],
    previous: Mapping[str, Any],
    gs: GatewaySync | None,
    *,
    ref: str,
    published: str,
    gateways: Sequence[conditions.Gateway],
    asked: fleethistory.Asked,
    now: float,
) -> dict[str, Any]:
    """`status` with its history: `published` (what the agents were given this pass; a
    rollout's commit is read from `status["rollout"]`) recorded, each gateway's standing at its
    target. An invalid spec keeps the history as it was."""
    if gs is None:
        return kept(status, previous)
    standings = conditions.standing(gateways, published)
    seen = [_seen(g, s, published) for g, s in zip(gateways, standings, strict=True)]
    rollout = status.get("rollout")
    history = fleethistory.advance(
        previous.get("history"),
        commit=published,
        ref=ref,
        asked=asked,
        gateways=seen,
        now=now,
        limit=gs.spec.history_limit or DEFAULT_HISTORY,
        rollout=rollout if isinstance(rollout, Mapping) else None,
        steps=fleethistory.step_names(gs.spec.rollout),
    )
    if not history and "history" not in previous:
        return status  # nothing published yet: no empty list to write
    return {**status, "history": history}


def kept(status: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
    """`status` with the history as it was (a pass that publishes nothing: an invalid spec, a
    namespace not served), so the status written equals the stored one."""
    history = previous.get("history")
    return {**status, "history": history} if history is not None else status


def _seen(g: conditions.Gateway, where: Standing, published: str) -> fleethistory.Seen:
    """One gateway as the history reads it: its target and standing, its agent's report."""
    report = g.report()
    return fleethistory.Seen(
        name=g.name,
        target=g.target or published,
        status=where.status,
        in_step=where.in_step,
        reported=report.commit if report is not None else "",
        result=report.result if report is not None else "",
    )
