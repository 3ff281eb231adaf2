"""A GatewaySync's status.history (stoker_core.fleethistory): who asked for each commit, its
steps and outcomes, read back as hostile input, bounded in entries and bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stoker_core import fleethistory, rolloutstate
from stoker_core.fleethistory import BYTE_CAP, Asked, Seen, advance, read
from stoker_core.rolloutstate import COMPLETE, Halt, State
from stoker_core.vocabulary import Annotation

A, B, C = "a" * 40, "b" * 40, "c" * 40
T0 = 1_796_544_800.0  # 2026-12-06T08:13:20Z


def seen(name: str, target: str, status: str = "Pending", reported: str | None = None) -> Seen:
    """A gateway whose agent reports `status` at its target (`reported`: about another commit;
    a Pending one reports nothing yet)."""
    about = (target if status != "Pending" else "") if reported is None else reported
    return Seen(
        name=name,
        target=target,
        status=status,
        in_step=status == "Synced",
        reported=about,
        result=status,
    )


def step(
    previous: Any, commit: str, *gateways: Seen, at: float = 0.0, **kw: Any
) -> list[dict[str, Any]]:
    kw.setdefault("asked", Asked())
    kw.setdefault("ref", "main")
    return advance(previous, commit=commit, gateways=gateways, now=T0 + at, **kw)


def test_a_commit_published_without_a_rollout_is_one_step_done_when_every_gateway_is_in_step() -> (
    None
):
    first = step(None, A, seen("g1", A), seen("g2", A))
    assert [e["commit"] for e in first] == [A]
    assert first[0]["outcome"] == "Progressing"
    assert first[0]["steps"] == [
        {"name": "all", "startedAt": "2026-12-06T08:13:20Z", "finishedAt": ""}
    ]
    half = step(first, A, seen("g1", A, "Synced"), seen("g2", A), at=10)
    assert half[0]["outcome"] == "Progressing"
    done = step(half, A, seen("g1", A, "Synced"), seen("g2", A, "Synced"), at=20)
    assert done[0]["outcome"] == "Complete"
    assert done[0]["steps"][0]["finishedAt"] == "2026-12-06T08:13:40Z"
    assert done[0]["gateways"] == [
        {"name": "g1", "outcome": "Synced", "at": "2026-12-06T08:13:30Z"},
        {"name": "g2", "outcome": "Synced", "at": "2026-12-06T08:13:40Z"},
    ]
    # nothing changed: the same history, so the controller writes no status
    assert step(done, A, seen("g1", A, "Synced"), seen("g2", A, "Synced"), at=99) == done


def test_a_newer_commit_supersedes_an_unfinished_one_and_a_complete_one_stays_complete() -> None:
    one = step(step(None, A, seen("g", A, "Synced")), B, seen("g", B))
    assert [(e["commit"], e["outcome"]) for e in one] == [(A, "Complete"), (B, "Progressing")]
    two = step(one, C, seen("g", C), at=5)
    assert [(e["commit"], e["outcome"]) for e in two] == [
        (A, "Complete"),
        (B, "Superseded"),
        (C, "Progressing"),
    ]


def test_the_first_commit_is_asked_for_by_the_spec_a_later_one_by_polling_or_a_new_ref() -> None:
    first = step(None, A)
    assert first[0]["requestedBy"]["via"] == "spec"
    polled = step(first, B, at=60)
    assert polled[-1]["requestedBy"]["via"] == "polling"
    moved = step(polled, C, ref="release", at=120)
    assert moved[-1]["requestedBy"]["via"] == "spec"


def receiver_marks(at: str = "2026-12-06T08:14:00Z", delivery: str = "d-1") -> dict[str, str]:
    return {
        Annotation.REFRESH_REQUESTED_AT: at,
        Annotation.REFRESH_REQUESTED_BY: "github",
        Annotation.REFRESH_DELIVERY: delivery,
    }


def test_a_push_through_the_receiver_is_recorded_with_its_source_and_delivery() -> None:
    first = step(None, A)
    pushed = step(first, B, asked=Asked(annotations=receiver_marks(), refreshed=True), at=45)
    assert pushed[-1]["requestedBy"] == {
        "via": "receiver",
        "source": "github",
        "delivery": "d-1",
        "user": "",
        "at": "2026-12-06T08:14:00Z",
    }
    # the same mark still on the GatewaySync does not claim the next commit polling finds
    again = step(pushed, C, asked=Asked(annotations=receiver_marks(), refreshed=True), at=90)
    assert again[-1]["requestedBy"]["via"] == "polling"


def test_a_receiver_mark_older_than_the_last_commit_does_not_claim_a_new_one() -> None:
    first = step(None, A, at=600)  # published 08:23:20, after the mark of 08:14:00
    later = step(first, B, asked=Asked(annotations=receiver_marks(), refreshed=True), at=700)
    assert later[-1]["requestedBy"]["via"] == "polling"


def test_a_requested_ref_names_the_receiver_or_says_it_was_set_by_hand() -> None:
    marks: dict[str, str] = {
        Annotation.REQUESTED_REF: "v2",
        Annotation.REQUESTED_BY: "argocd",
        Annotation.REQUESTED_AT: "2026-12-06T08:14:00Z",
        Annotation.REQUESTED_DELIVERY: "sha256:0123456789abcdef",
    }
    first = step(None, A)
    by_cd = step(first, B, ref="v2", asked=Asked(annotations=marks), at=60)
    assert by_cd[-1]["requestedBy"]["via"] == "receiver"
    assert by_cd[-1]["requestedBy"]["source"] == "argocd"
    assert by_cd[-1]["requestedBy"]["delivery"] == "sha256:0123456789abcdef"
    by_hand: dict[str, str] = {Annotation.REQUESTED_REF: "v3"}
    handed = step(by_cd, C, ref="v3", asked=Asked(annotations=by_hand), at=120)
    assert handed[-1]["requestedBy"]["via"] == "requested-ref"


def test_hostile_receiver_marks_are_not_copied_into_the_history() -> None:
    marks: dict[str, str] = {
        Annotation.REFRESH_REQUESTED_AT: "yesterday",
        Annotation.REFRESH_REQUESTED_BY: "evil\u202e",
        Annotation.REFRESH_DELIVERY: "x" * 5000,
    }
    got = step(None, A, asked=Asked(annotations=marks, refreshed=True))
    assert got[0]["requestedBy"] == {
        "via": "receiver",
        "source": "",
        "delivery": "",
        "user": "",
        "at": "",
    }


def rollout_record(state: State, **extra: Any) -> dict[str, Any]:
    return {**rolloutstate.dump(state), **extra}


def test_a_rollout_gives_the_steps_their_times_the_approvers_and_the_halt() -> None:
    steps = ["test", "lines", "unselected"]
    waiting = State(commit=B, baseline=A)
    record = rollout_record(waiting, awaiting="rollout", approvedBy={})
    first = step(step(None, A), B, rollout=record, steps=steps, at=10)
    assert first[-1]["outcome"] == "AwaitingApproval"
    moving = State(commit=B, baseline=A, moved=("t1",), started=(T0 + 20,), approvals=("rollout",))
    record = rollout_record(moving, awaiting="", approvedBy={"rollout": "alice"})
    second = step(first, B, seen("t1", B), seen("l1", A), rollout=record, steps=steps, at=20)
    assert second[-1]["outcome"] == "Progressing"
    assert second[-1]["approvedBy"] == [{"gate": "rollout", "user": "alice"}]
    assert second[-1]["steps"] == [
        {"name": "test", "startedAt": "2026-12-06T08:13:40Z", "finishedAt": ""}
    ]
    # a gateway held back stays out of the new commit's entry
    assert [g["name"] for g in second[-1]["gateways"]] == ["t1"]
    assert [g["name"] for g in second[0]["gateways"]] == ["l1"]
    halt = Halt(gateway="l1", commit=B, error="rejected", at=T0 + 90)
    halted = attrs_evolve(moving, finished=(T0 + 50,), started=(T0 + 20, T0 + 60), halted=halt)
    record = rollout_record(halted, awaiting="", approvedBy={"rollout": "alice"})
    third = step(
        second, B, seen("t1", B, "Synced"), seen("l1", B, "Rejected"), rollout=record, steps=steps
    )
    assert third[-1]["outcome"] == "Halted"
    assert [s["name"] for s in third[-1]["steps"]] == ["test", "lines"]
    assert {g["name"]: g["outcome"] for g in third[-1]["gateways"]} == {
        "t1": "Synced",
        "l1": "Rejected",
    }
    done = attrs_evolve(moving, step=COMPLETE, halted=None)
    assert step(third, B, rollout=rollout_record(done))[-1]["outcome"] == "Complete"


def test_a_gateway_sent_back_after_rejecting_a_commit_keeps_its_rejection_in_that_entry() -> None:
    before = step(None, A, seen("g", A, "Synced"))
    given = step(before, B, seen("g", B, "Synced", reported=A), at=10)
    assert given[-1]["gateways"][0]["outcome"] == "Pending"  # given B, still reports A
    assert given[0]["gateways"][0]["outcome"] == "Synced"
    # the halt sends it back to A; its agent's last word is still about B
    back = step(given, B, seen("g", A, "Rejected", reported=B), at=20)
    assert back[-1]["gateways"][0]["outcome"] == "Rejected"
    assert back[0]["gateways"] == given[0]["gateways"]  # A's entry says nothing new
    # a gateway never given B is not named in B's entry, whatever it reports
    other = step(back, B, seen("g", A, "Rejected", reported=B), seen("h", A, "Error", B), at=30)
    assert [g["name"] for g in other[-1]["gateways"]] == ["g"]


def attrs_evolve(state: State, **changes: Any) -> State:
    import attrs

    return attrs.evolve(state, **changes)


def test_a_damaged_rollout_record_reads_as_no_rollout() -> None:
    got = step(None, A, seen("g", A, "Synced"), rollout={"commit": 7})
    assert got[-1]["outcome"] == "Complete"
    odd = rollout_record(State(commit=A, baseline=A, started=(1e300, -5.0)))
    got = step(None, A, rollout=odd)
    assert [s["startedAt"] for s in got[-1]["steps"]] == ["", ""]
    assert read(got).damaged == 0


def test_a_damaged_or_hand_written_history_is_read_defensively() -> None:
    good = step(None, A, seen("g", A, "Synced"))[0]
    hostile: list[Any] = [
        "not an entry",
        {"commit": 5},
        {"commit": B, "gateways": "all"},
        {"commit": C, "ref": "x" * 10_000},
        {"commit": B, "gateways": [{"name": "g", "at": 3}]},
        {"ref": "main"},  # no commit
        good,
    ]
    found = read(hostile)
    assert [e.commit for e in found.entries] == [A]
    assert found.damaged == 6
    assert read({"entries": []}).damaged == 1
    assert read(None) == fleethistory.Read()
    # a reconcile goes on from what could be read
    assert [e["commit"] for e in step(hostile, B)] == [A, B]


def test_the_history_keeps_the_newest_entries_up_to_its_limit() -> None:
    history = None
    for i in range(15):
        history = step(history, f"{i:040x}", at=i * 60, limit=4)
    assert history is not None
    assert [e["commit"] for e in history] == [f"{i:040x}" for i in range(11, 15)]


def test_a_fleet_too_large_for_the_bytes_lists_fewer_gateways_and_counts_the_rest() -> None:
    fleet = [seen("gateway-" + "x" * 240 + f"{i:04d}", A) for i in range(250)]
    got = step(None, A, *fleet)
    assert len(json.dumps(got, separators=(",", ":"))) <= BYTE_CAP
    shown = len(got[0]["gateways"])
    assert 0 < shown < 250
    assert got[0]["gatewaysNotShown"] == 250 - shown


# Names up to 320 characters of any script (up to 4 bytes each): a few passes outgrow the bytes.
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8).map(lambda s: s * 40)


@st.composite
def passes(draw: Any) -> list[tuple[str, list[Seen], str]]:
    out = []
    for _ in range(draw(st.integers(1, 30))):
        commit = draw(st.sampled_from([A, B, C, "d" * 40, "e" * 40]))
        fleet = draw(st.lists(names, max_size=60, unique=True))
        status = draw(st.sampled_from(["Pending", "Synced", "Rejected", "Error"]))
        out.append((commit, [seen(n, commit, status) for n in fleet], draw(names)))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(passes(), st.integers(1, 100))
def test_the_history_stays_within_its_entries_and_bytes_whatever_it_is_fed(
    fed: list[tuple[str, list[Seen], str]], limit: int
) -> None:
    history: Any = None
    for i, (commit, fleet, ref) in enumerate(fed):
        history = step(history, commit, *fleet, ref=ref, at=i * 30, limit=limit)
        assert len(history) <= limit
        size = len(json.dumps(history, separators=(",", ":"), ensure_ascii=False).encode())
        assert size <= BYTE_CAP
        assert history[-1]["commit"] == commit  # the newest is always kept
        assert read(history).damaged == 0  # what it writes, it reads back whole


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_as_the_previous_history_never_stops_a_reconcile(raw: Any) -> None:
    got = step(raw, A)
    assert got[-1]["commit"] == A
