"""Where each gateway stands (issue 16 item 2): Synced only at its target commit, RestartRequired
and Drifted in step, a skipped backup in step only beside its primary at the same commit, a
paused profile never; the condition messages are bounded; the restart rule."""

from __future__ import annotations

from typing import Any

import pytest

from stoker_core import conditions
from stoker_core.outcomes import restart_owed
from stoker_core.standings import NAMED, PATHS, Report, Seen, Skip, drift, standings

A, B = "a" * 40, "b" * 40


def seen(result: str = "", commit: str = A, profile: str = "p", **record: Any) -> Seen:
    report = Report.of({"result": result, "commit": commit, **record}) if result else None
    return Seen(profile=profile, has_sidecar=True, target=A, report=report)


@pytest.mark.parametrize(
    ("result", "commit", "status", "in_step"),
    [
        ("Synced", A, "Synced", True),
        ("InSync", A, "Synced", True),
        ("Synced", B, "Pending", False),  # still at another commit: rolling out
        ("RestartRequired", A, "RestartRequired", True),
        ("RestartRequired", B, "Pending", False),
        ("DryRun", A, "Drifted", True),
        ("Error", B, "Error", False),
        ("Rejected", A, "Rejected", False),
        ("Blocked", A, "Blocked", False),
    ],
)
def test_a_report_stands_against_the_commit_the_gateway_should_be_at(
    result: str, commit: str, status: str, in_step: bool
) -> None:
    [where] = standings([seen(result, commit)])
    assert (where.status, where.in_step) == (status, in_step)


def test_no_sidecar_or_no_report_is_never_in_step() -> None:
    bare = Seen(profile="p", has_sidecar=False, target=A, report=Report.of({"result": "Synced"}))
    assert [(s.status, s.in_step) for s in standings([bare, seen()])] == [
        ("MissingSidecar", False),
        ("Pending", False),
    ]


def test_a_skipped_backup_counts_only_beside_its_primary_at_the_same_commit() -> None:
    backup = seen("Skipped", A, skipReason="backup")
    assert [s.in_step for s in standings([seen("Synced", A), backup])] == [True, True]
    assert [s.in_step for s in standings([seen("Synced", B), backup])] == [False, False]
    assert [s.in_step for s in standings([seen("Synced", A, profile="q"), backup])] == [
        True,
        False,
    ]
    assert [s.in_step for s in standings([backup, seen("Skipped", A, skipReason="backup")])] == [
        False,
        False,
    ]  # two backups are not a pair


def test_a_paused_profile_never_counts_though_it_reports_skipped_at_the_commit() -> None:
    paused = seen("Skipped", A, skipReason="paused")
    assert [(s.status, s.in_step) for s in standings([seen("Synced", A), paused])] == [
        ("Synced", True),
        ("Skipped", False),
    ]


def test_agents_before_skip_reason_are_understood_by_their_words() -> None:
    old = Report.of({"result": "Skipped", "error": "Skipped (backup): the master replicates"})
    assert old.skip is Skip.BACKUP
    assert Report.of({"result": "Skipped", "error": "profile is paused"}).skip is Skip.PAUSED
    assert Report.of({"result": "Error", "error": "Skipped (backup)"}).skip is Skip.NONE


def test_hostile_records_are_read_without_error() -> None:
    report = Report.of({"result": 3, "commit": [], "added": {"count": "9", "paths": [1, "x"]}})
    assert (report.result, report.commit, report.differs, report.paths) == ("", "", 0, ("x",))


def test_what_a_rollout_reads_of_a_record_is_read_as_the_agent_wrote_it() -> None:
    health = {"commit": A, "healthyFor": 12.5, "since": "t0", "checkedAt": "t1"}
    record = {"result": "Synced", "commit": A, "readsTargets": True, "failures": 2}
    report = Report.of({**record, "error": "e" * 500, "health": {**health, "unhealthy": True}})
    assert (report.reads_targets, report.failures, len(report.error)) == (True, 2, 200)
    assert report.health is not None
    assert (report.health.commit, report.health.healthy_for, report.health.unhealthy) == (
        A,
        12.5,
        True,
    )
    assert Report.of({"result": "Synced"}).health is None  # an agent of the previous release


@pytest.mark.parametrize(
    "hostile",
    [
        {"readsTargets": "true", "failures": "3", "health": "healthy"},
        {"readsTargets": 1, "failures": True, "health": []},
        {"failures": -4, "health": {"healthyFor": float("nan"), "unhealthy": "yes"}},
        {"failures": 1.5, "health": {"healthyFor": "600", "commit": 7, "problem": ["x"]}},
        {"health": {"healthyFor": -60}},
        {"health": {"healthyFor": True}},
    ],
)
def test_hostile_rollout_fields_read_as_an_agent_that_watched_nothing(
    hostile: dict[str, Any],
) -> None:
    report = Report.of({"result": "Synced", "commit": A, **hostile})
    assert (report.reads_targets, report.failures) == (False, 0)
    health = report.health
    assert health is None or (health.healthy_for, health.unhealthy) == (0.0, False)


def test_a_huge_failure_count_is_bounded() -> None:
    assert Report.of({"failures": 10**30}).failures == 1_000_000


def test_the_drift_message_is_bounded_in_gateways_and_paths() -> None:
    paths = [f"projects/p/{'x' * 300}/{i}.json" for i in range(50)]
    record = {"result": "DryRun", "commit": A, "added": {"count": 50, "paths": paths}}
    many = [seen(**record) for _ in range(NAMED + 3)]
    where = standings(many)
    named = [(f"gw-{i}", w, g.report) for i, (g, w) in enumerate(zip(many, where, strict=True))]
    message = drift(named)
    assert message.count("50 file(s) differ from Git") == NAMED
    assert message.endswith("and 3 more gateway(s)")
    assert message.count("projects/p/") == NAMED * PATHS
    assert len(message) < 4000


def test_ready_holds_for_restart_required_and_dry_run_with_conditions_that_say_so() -> None:
    def gateway(name: str, result: str, **record: Any) -> conditions.Gateway:
        return conditions.Gateway(
            name=name,
            pod=f"{name}-0",
            namespace="ns",
            profile=name,
            has_sidecar=True,
            record={"result": result, "commit": A, **record},
        )

    status = conditions.status(
        generation=1,
        problems=[],
        commit=A,
        ref="main",
        resolve_error=None,
        gateways=[
            gateway("north", "RestartRequired"),
            gateway("south", "DryRun", modified={"count": 2, "paths": ["a.json", "b.json"]}),
        ],
        profile_count=2,
        paused=False,
        now="2026-12-06T00:00:00Z",
        previous={},
    )
    found = {c["type"]: c for c in status["conditions"]}
    assert found["Ready"]["status"] == "True"
    assert found["RestartRequired"]["status"] == "True"
    assert "north" in found["RestartRequired"]["message"]
    assert found["Drifted"]["message"] == "south: 2 file(s) differ from Git (a.json, b.json)"
    assert [g["targetCommit"] for g in status["discoveredGateways"]] == [A, A]
    assert conditions.abnormal(found["RestartRequired"])
    assert not conditions.abnormal(found["Ready"])


@pytest.mark.parametrize(
    ("since", "started", "pending", "owed"),
    [
        (None, None, [], False),
        (None, 100.0, ["module updated"], True),
        (100.0, 50.0, [], True),  # applied after the gateway started: not restarted yet
        (100.0, 150.0, [], False),  # restarted since
        (100.0, None, [], True),  # the gateway cannot say: still owed
        (100.0, 150.0, ["module updated"], True),  # restarted, yet it lists more
    ],
)
def test_a_restart_is_owed_until_the_gateway_started_since_and_lists_none(
    since: float | None, started: float | None, pending: list[str], owed: bool
) -> None:
    assert restart_owed(since=since, started=started, pending=pending) is owed
