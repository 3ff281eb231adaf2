"""The health window (issue 17): after a sync leaves its gateway in step at a commit, the agent
checks the gateway until it has held for the rollout's `healthWindow`; these are the rules,
pure. The agent gathers what each check sees (`stoker_agent.healthwindow`) and reports the
window in its status (`status.HealthReport`); the controller reads it (`rollouts.observe`).

- A check passes when gateway-info answers (it does only while the gateway runs), the project
  list answers and holds every project the commit delivers (one the scan refused is missing),
  and the gateway container has not restarted since the window began.
- Checks run every `clamp(window / 6, 2 s, 10 s)` from the start of the window (a check's own
  time does not push the next ones later). `healthyFor` counts from the start of the
  window while checks pass; a failed check sets it back to 0 and it counts again from the next
  check that passes. Two failed checks in a row make the gateway unhealthy at the commit.
- The window is over when `healthyFor` reaches the window, or when the gateway is unhealthy:
  no more checks; the last report stays in the status.
"""

from __future__ import annotations

import attrs

from stoker_core.status import HealthReport, cut

MIN_INTERVAL = 2.0  # seconds between checks, at least (a gateway is not polled harder)
MAX_INTERVAL = 10.0  # and at most (a long window still sees a failure within seconds)
FAILED_IN_A_ROW = 2  # failed checks in a row that make the gateway unhealthy (one is a blip)
NAMED = 5  # missing projects named in a problem


@attrs.frozen(slots=True, kw_only=True)
class Findings:
    """What one check saw: an error text per call that did not answer ("": it answered)."""

    info_error: str = ""
    projects_error: str = ""
    loaded: frozenset[str] = frozenset()  # the projects the gateway lists
    expected: frozenset[str] = frozenset()  # the projects the commit delivers
    restarts: int | None = None  # the gateway container's restart count (None: unknown)


@attrs.frozen(slots=True, kw_only=True)
class Window:
    """One health window: what was synced, the clock readings and what the checks found."""

    key: str  # the sync it follows (commit and effective profile): another one ends it
    commit: str
    length: float  # seconds
    started: float  # monotonic seconds
    since: str  # RFC3339, for people
    restarts: int | None  # the gateway container's restart count when the window began
    due: float  # monotonic seconds of the next check
    healthy_from: float | None  # start of the current run of passing checks (None: failing)
    healthy_for: float = 0.0
    failed: int = 0  # checks failed in a row
    checked_at: str = ""
    unhealthy: bool = False
    problem: str = ""


def interval(length: float) -> float:
    """Seconds between two checks of a window of `length` seconds."""
    return min(max(length / 6, MIN_INTERVAL), MAX_INTERVAL)


def start(
    *, key: str, commit: str, length: float, now: float, stamp: str, restarts: int | None
) -> Window:
    """A window beginning now, right after the sync that found the gateway in step."""
    return Window(
        key=key,
        commit=commit,
        length=length,
        started=now,
        since=stamp,
        restarts=restarts,
        due=now + interval(length),
        healthy_from=now,
    )


def problem(findings: Findings, *, restarts_before: int | None) -> str:
    """What is wrong with the gateway, as one sentence ("" when the check passes)."""
    found = []
    if findings.info_error:
        found.append(f"gateway-info did not answer: {findings.info_error}")
    if findings.projects_error:
        found.append(f"the project list did not answer: {findings.projects_error}")
    else:
        missing = sorted(findings.expected - findings.loaded)
        if missing:
            more = f" and {len(missing) - NAMED} more" if len(missing) > NAMED else ""
            found.append(f"projects not loaded: {', '.join(missing[:NAMED])}{more}")
    now, before = findings.restarts, restarts_before
    if now is not None and before is not None and now > before:
        found.append(f"the gateway container restarted (restartCount {before} → {now})")
    return cut("; ".join(found))


def checked(window: Window, findings: Findings, *, now: float, stamp: str) -> Window:
    """`window` after a check at `now` that saw `findings`."""
    baseline = window.restarts if window.restarts is not None else findings.restarts
    wrong = problem(findings, restarts_before=baseline)
    window = attrs.evolve(window, restarts=baseline, checked_at=stamp, due=_next_due(window, now))
    if wrong:
        failed = window.failed + 1
        return attrs.evolve(
            window,
            healthy_from=None,
            healthy_for=0.0,
            failed=failed,
            unhealthy=failed >= FAILED_IN_A_ROW,
            problem=wrong,
        )
    began = window.healthy_from if window.healthy_from is not None else now
    return attrs.evolve(window, healthy_from=began, healthy_for=now - began, failed=0, problem="")


def _next_due(window: Window, now: float) -> float:
    """The check after one that finished at `now`: on the window's grid (the time a check takes
    does not push the rest, and the end, later), or an interval on from `now` when the agent
    fell a whole interval behind (no burst of missed checks)."""
    step = interval(window.length)
    due = window.due + step
    return due if due > now else now + step


def over(window: Window) -> bool:
    """Whether the window needs no more checks: it has held long enough, or it failed."""
    return window.unhealthy or window.healthy_for >= window.length


def report(window: Window) -> HealthReport:
    """The window as the agent's status says it."""
    return HealthReport(
        commit=window.commit,
        healthy_for=window.healthy_for,
        since=window.since,
        checked_at=window.checked_at,
        unhealthy=window.unhealthy,
        problem=window.problem,
    )
