"""The health window's rules (stoker_core.healthchecks, issue 17): the pace of the checks,
what a check finds wrong, two failures in a row, and when the window is over."""

from __future__ import annotations

import pytest

from stoker_core.healthchecks import Findings, Window, checked, interval, over, problem, start

A = "a" * 40
FINE = Findings(loaded=frozenset({"blue", "global"}), expected=frozenset({"blue"}), restarts=0)


@pytest.mark.parametrize(("length", "every"), [(1, 2), (6, 2), (30, 5), (60, 10), (3600, 10)])
def test_checks_come_every_sixth_of_the_window_between_2_and_10_seconds(
    length: float, every: float
) -> None:
    assert interval(length) == every


def test_a_check_names_everything_it_found_wrong() -> None:
    assert problem(FINE, restarts_before=0) == ""
    wrong = Findings(
        info_error="reading gateway info: 503",
        loaded=frozenset(),
        expected=frozenset(f"p{i}" for i in range(8)),
        restarts=3,
    )
    assert problem(wrong, restarts_before=1) == (
        "gateway-info did not answer: reading gateway info: 503; projects not loaded: p0, p1, "
        "p2, p3, p4 and 3 more; the gateway container restarted (restartCount 1 → 3)"
    )
    unanswered = Findings(projects_error="listing projects: 503", expected=frozenset({"blue"}))
    assert problem(unanswered, restarts_before=None) == (
        "the project list did not answer: listing projects: 503"
    )
    assert len(problem(Findings(info_error="x" * 1000), restarts_before=None)) == 200


def window(length: float = 30) -> Window:
    return start(key="k", commit=A, length=length, now=100, stamp="t0", restarts=None)


def test_healthy_for_counts_from_the_sync_and_the_window_ends_when_it_reaches_the_length() -> None:
    w = window()
    for at in (105, 110, 115, 120, 125):
        w = checked(w, FINE, now=at, stamp="t")
        assert not over(w)
    w = checked(w, FINE, now=130, stamp="t")
    assert (w.healthy_for, w.unhealthy, over(w)) == (30, False, True)


def test_one_failure_starts_the_count_again_and_two_in_a_row_are_unhealthy() -> None:
    w = checked(window(), FINE, now=105, stamp="t")
    w = checked(w, Findings(info_error="503"), now=110, stamp="t")
    assert (w.healthy_for, w.unhealthy, w.due) == (0, False, 115)
    w = checked(w, FINE, now=115, stamp="t")
    w = checked(w, FINE, now=120, stamp="t")
    assert (w.healthy_for, w.problem) == (5, "")
    w = checked(w, Findings(info_error="503"), now=125, stamp="t")
    w = checked(w, Findings(info_error="503"), now=130, stamp="t")
    assert (w.unhealthy, over(w)) == (True, True)
    assert w.problem == "gateway-info did not answer: 503"


def test_a_restart_count_first_seen_at_a_check_is_the_baseline() -> None:
    w = checked(window(), FINE, now=105, stamp="t")  # the count was unknown at the sync
    assert w.restarts == 0
    w = checked(w, restarted(1), now=110, stamp="t")
    assert "restarted (restartCount 0 → 1)" in w.problem


def restarted(count: int) -> Findings:
    return Findings(loaded=FINE.loaded, expected=FINE.expected, restarts=count)


def test_checks_keep_the_window_pace_when_each_check_takes_time() -> None:
    # Each check here finishes 0.3 s after it was due: the next stays on the window's grid, so a
    # 10 s window is over at the check due 10 s after the sync (the rollout benchmark saw each
    # window end a second late, a batch at a time).
    w = window(length=10)
    dues = []
    while not over(w):
        dues.append(w.due)
        w = checked(w, FINE, now=w.due + 0.3, stamp="t")
    assert dues == [102, 104, 106, 108, 110]
    late = checked(window(length=10), FINE, now=107, stamp="t")  # the loop was busy meanwhile
    assert late.due == 109  # an interval on from now, not a burst of the checks it missed
