"""Fleet rollout: time from a push to the last gateway of a 50-gateway, 3-step rollout
(`maxUnavailable: 25%`, a 10 s health window), against its floor.

The real thing on one machine, as in the latency benchmark: kube-apiserver + etcd, `stoker
controller` and one `stoker agent` process per gateway, each with its gateway simulator (in
this process), a local repository (file://). The gateway pods are created in the API server
with a line label; the steps are a test step of 2 gateways (by name), line 1 (16, by label)
and line 2 (32, by label), each `maxUnavailable: 25%`.

The GatewaySync starts without `spec.rollout` so the fleet's first sync is not a rollout; then
the rollout is added and each round commits a one-file change and asks the controller for a
fresh look at the ref, as the receiver does for a push to the tracked branch (the receiver's
own part is the latency benchmark's). From there, polling the ConfigMaps: when each gateway is
given the commit (its target in the metadata ConfigMap), when its agent reports it applied, when
it reports it healthy for the window, and when the rollout completes (the metadata's baseline
becomes the commit: every gateway at it, `targets` empty).

The floor no controller can beat: each step moves its gateways in batches of its allowance
(`stoker_core.waves.allowance`) and a batch takes at least the health window, so the sum over
steps of batches × window. Goal (issue 17): push to the last gateway over that floor ≤ 1.3.

`--quick`: 4 gateways (steps of 1, 1 and 2), a 2 s window, one round (the harness, not figures).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import git  # noqa: E402
from fleet import Fleet, FleetStalled  # noqa: E402
from ignition_tree import ignition_files  # noqa: E402
from results import Chart, Result, arguments, mean  # noqa: E402
from servers import stop  # noqa: E402

from cluster import GROUP, PLURAL, VERSION, control_plane, gatewaysync, stoker  # noqa: E402
from stoker_core import metadata as formats  # noqa: E402
from stoker_core import waves  # noqa: E402
from stoker_core.rollouts import Reason  # noqa: E402
from stoker_core.validation import load  # noqa: E402
from stoker_core.vocabulary import Annotation, Condition  # noqa: E402
from support.kubeenv import wait_until  # noqa: E402  (on sys.path through cluster)

CR = "plant"
LINE = "plant.example/line"
MAX_UNAVAILABLE = "25%"
CHANGED = "projects/project000/com.inductiveautomation.perspective/views/area1/item001/view.json"
POLL = 0.25  # seconds between the benchmark's looks (its resolution)
GOAL = 1.3
HALTED = Reason.HALTED.value


@dataclass
class Scale:
    """How big the run is."""

    steps: tuple[int, int, int]  # gateways per step: test, line 1, line 2
    window: int  # healthWindow, seconds
    rounds: int
    files: int

    @property
    def gateways(self) -> int:
        """Gateways in all."""
        return sum(self.steps)


FULL = Scale(steps=(2, 16, 32), window=10, rounds=2, files=300)
QUICK = Scale(steps=(1, 1, 2), window=2, rounds=1, files=60)


def line_of(scale: Scale, i: int) -> str:
    """The line label of gateway `i`: the first gateways are the test step's."""
    test, one, _ = scale.steps
    return "test" if i < test else "1" if i < test + one else "2"


def rollout_spec(scale: Scale) -> dict[str, Any]:
    """`spec.rollout`: a test step by name, then the two lines by label, 25% each."""
    test = [f"gw-{i:03d}" for i in range(scale.steps[0])]
    return {
        "healthWindow": f"{scale.window}s",
        "steps": [
            {"name": "test", "selector": {"gateways": test}, "maxUnavailable": MAX_UNAVAILABLE},
            *(
                {
                    "name": f"line-{line}",
                    "selector": {"matchLabels": {LINE: line}},
                    "maxUnavailable": MAX_UNAVAILABLE,
                }
                for line in ("1", "2")
            ),
        ],
    }


@dataclass
class Step:
    """One step as the floor counts it."""

    name: str
    gateways: list[str]
    allowance: int
    window: float

    @property
    def batches(self) -> int:
        """Batches of at most `allowance` gateways."""
        return math.ceil(len(self.gateways) / self.allowance) if self.gateways else 0

    @property
    def floor(self) -> float:
        """Seconds no rollout of this step can beat: batches × window."""
        return self.batches * self.window


def steps_of(body: dict[str, Any], labels: Mapping[str, Mapping[str, str]]) -> list[Step]:
    """The steps of the GatewaySync `body` over the gateways (name → pod labels), by the
    core's own rules (`waves.step_of`, `waves.allowance`)."""
    rollout = load(body).spec.rollout
    assert rollout is not None, "the benchmark's GatewaySync has a rollout"
    window = waves.seconds(rollout.health_window)
    members: dict[int, list[str]] = {}
    for name, pod_labels in labels.items():
        member = waves.Member(name=name, profile="default", labels=pod_labels)
        members.setdefault(waves.step_of(rollout, member), []).append(name)
    return [
        Step(
            waves.step_name(rollout.steps[i], i) if i < len(rollout.steps) else "unselected",
            sorted(members[i]),
            waves.allowance(rollout, i, len(members[i])),
            window,
        )
        for i in sorted(members)
    ]


@dataclass
class Round:
    """What one rollout looked like from the outside (seconds since the push)."""

    commit: str
    given: dict[str, float] = field(default_factory=dict)  # its target became the commit
    applied: dict[str, float] = field(default_factory=dict)  # its agent reports it synced
    done: dict[str, float] = field(default_factory=dict)  # ... and healthy for the window
    complete: float | None = None  # the metadata's baseline became the commit

    def last_done(self) -> float:
        """When the last gateway was done."""
        return max(self.done.values())


def healthy(record: Mapping[str, Any], commit: str, window: float) -> bool:
    """Whether an agent's record says its gateway held `commit` for the window (the agent's
    `health` report, docs/rollouts.md)."""
    health = record.get("health")
    return (
        isinstance(health, dict)
        and health.get("commit") == commit
        and not health.get("unhealthy")
        and float(health.get("healthyFor") or 0) >= window
    )


def observe(fleet: Fleet, commit: str, window: float, t0: float, seen: Round) -> None:
    """One look at every ConfigMap of the GatewaySync (one LIST): record what is new."""
    now = time.monotonic() - t0
    listed = fleet.core.list_namespaced_config_map(
        fleet.namespace, label_selector=f"stoker.io/cr-name={fleet.cr}", _preload_content=False
    )
    by_name = {item["metadata"]["name"]: item for item in json.loads(listed.data)["items"]}
    meta = by_name.get(formats.name_for(fleet.cr))
    published = formats.decode((meta or {}).get("data") or {}) if meta else None
    if published is not None and published.commit == commit and seen.complete is None:
        seen.complete = now
    for gw in fleet.gateways:
        if published is not None and published.commit_for(gw.pod) == commit:
            seen.given.setdefault(gw.pod, now)
        status = by_name.get(formats.status_name_for(fleet.cr, gw.pod)) or {}
        record = json.loads((status.get("data") or {}).get("status.json") or "{}")
        if record.get("commit") == commit and record.get("result") in ("Synced", "InSync"):
            seen.applied.setdefault(gw.pod, now)
        if healthy(record, commit, window):
            seen.done.setdefault(gw.pod, now)


def seeded(custom: Any, namespace: str, baseline: str) -> None:
    """Wait until the controller acts on the rollout: `status.rollout` settled at `baseline`."""

    def rollout() -> bool:
        item = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, CR)
        state = (item.get("status") or {}).get("rollout") or {}
        return bool(state.get("baseline") == baseline)

    try:
        wait_until(rollout, 30, 0.25, "status.rollout")
    except AssertionError:
        raise FleetStalled(
            "the controller wrote no status.rollout within 30 s of spec.rollout: it does not "
            "act on rollouts (issue 17's controller part)"
        ) from None


def halted(custom: Any, namespace: str) -> str:
    """The `Progressing` condition's message when the rollout has halted ("": it has not)."""
    item = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, CR)
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition.get("type") == Condition.PROGRESSING and condition.get("reason") == HALTED:
            return str(condition.get("message") or HALTED)
    return ""


def one_round(
    fleet: Fleet, custom: Any, repo: Path, n: int, window: float, timeout: float
) -> Round:
    """Commit a change, ask for a fresh look at the ref, and watch the rollout to the end."""
    (repo / CHANGED).write_text(json.dumps({"round": n, "pad": "x" * 400}))
    git(repo, "commit", "-qam", f"round {n}")
    seen = Round(git(repo, "rev-parse", "HEAD"))
    t0 = time.monotonic()
    # As the receiver stamps it (RFC3339; the history reads it): rounds are seconds apart.
    notes = {Annotation.REFRESH_REQUESTED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, fleet.namespace, PLURAL, CR, {"metadata": {"annotations": notes}}
    )
    everyone = len(fleet.gateways)
    looks = 0
    while time.monotonic() - t0 < timeout:
        observe(fleet, seen.commit, window, t0, seen)
        if seen.complete is not None and len(seen.done) == everyone:
            return seen
        if fleet.exited():
            break
        looks += 1
        if looks % 8 == 0 and (why := halted(custom, fleet.namespace)):
            raise FleetStalled(f"round {n}: the rollout halted: {why}")
        time.sleep(POLL)
    raise FleetStalled(
        f"round {n}: after {time.monotonic() - t0:.0f} s, {len(seen.given)} gateways given the "
        f"commit, {len(seen.applied)} applied, {len(seen.done)} done of {everyone}; complete: "
        f"{seen.complete is not None}"
    )


def main() -> int:
    args = arguments(__doc__).parse_args()
    scale = QUICK if args.quick else FULL
    result = Result("rollout", "Fleet rollout", "bench/rollout_bench.py", args.quick)
    rounds: list[Round] = []
    start = 0.0  # seconds from creating the fleet to every agent reporting the first commit
    with control_plane() as (work, plane, core, custom, namespace):
        repo = work / "config-repo"
        for rel, content in ignition_files(scale.files):
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_bytes(content)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "initial")
        body = gatewaysync(CR, f"file://{repo}", polling={"enabled": False})
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        env = plane.subprocess_env()
        controller = stoker(
            ["controller", "--metrics-port", "0", "--no-leader-election"],
            env,
            work / "controller.log",
        )
        fleet = Fleet(work, env, namespace, core, CR, needs={"controller": controller})
        labels = {f"gw-{i:03d}": {LINE: line_of(scale, i)} for i in range(scale.gateways)}
        steps = steps_of({**body, "spec": {**body["spec"], "rollout": rollout_spec(scale)}}, labels)
        floor = sum(step.floor for step in steps)
        try:
            started = time.monotonic()
            fleet.grow(scale.gateways, labels=lambda i: {LINE: line_of(scale, i)})
            head = git(repo, "rev-parse", "HEAD")
            timeout = 120 + 5 * scale.gateways
            fleet.settled(head, timeout, plane=plane, out=args.out, what="the fleet to sync")
            start = time.monotonic() - started
            print(f"{scale.gateways} gateways synced in {start:.1f} s", flush=True)
            rollout = {"spec": {"rollout": rollout_spec(scale)}}
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, CR, rollout)
            seeded(custom, namespace, head)
            for n in range(1, scale.rounds + 1):
                try:
                    seen = one_round(fleet, custom, repo, n, scale.window, 3 * floor + 120)
                except FleetStalled:
                    print(fleet.diagnosis(git(repo, "rev-parse", "HEAD"), plane), flush=True)
                    fleet.keep_logs(plane, args.out / f"{CR}-failure")
                    raise
                rounds.append(seen)
                print(
                    f"round {n}: last gateway done {seen.last_done():.1f} s, complete "
                    f"{seen.complete or 0:.1f} s, floor {floor:.0f} s",
                    flush=True,
                )
                time.sleep(1.0)
        finally:
            fleet.stop()
            stop(controller)
    report(result, scale, steps, rounds)
    result.conditions["fleet start"] = f"{start:.0f} s from creating the pods to every report"
    result.write(args.out)
    return result.exit_code()


def report(result: Result, scale: Scale, steps: list[Step], rounds: list[Round]) -> None:
    """Tables, the goal and the chart."""
    floor = sum(step.floor for step in steps)
    result.description = (
        f"From a push to the last of {scale.gateways} gateways done (its agent reports it "
        f"healthy at the commit for the {scale.window} s health window) in a "
        f"{len(steps)}-step rollout, each step `maxUnavailable: {MAX_UNAVAILABLE}`, against "
        "the floor: the sum over steps of batches × window. Every component is a real local "
        "process (kube-apiserver + etcd, `stoker controller`, one `stoker agent` per gateway); "
        f"the simulators run in the benchmark's process, which looks every {POLL} s."
    )
    result.conditions = {
        "gateways": str(scale.gateways),
        "steps": ", ".join(f"{s.name}: {len(s.gateways)}" for s in steps),
        "health window": f"{scale.window} s",
        "repository": f"{scale.files} files (Ignition-shaped), one file changed per round",
        "rounds": str(len(rounds)),
    }
    result.table(
        "Push to the last gateway (seconds)",
        ["round", "last gateway done", "rollout complete", "floor", "last done / floor"],
        [
            [i, f"{r.last_done():.1f}", f"{r.complete or 0:.1f}", f"{floor:.0f}",
             f"{r.last_done() / floor:.2f}"]
            for i, r in enumerate(rounds, 1)
        ],
    )  # fmt: skip
    result.table(
        "Per step (mean over rounds, seconds)",
        ["step", "gateways", "at once", "batches", "floor", "first given to last done",
         "ratio"],
        [
            [s.name, len(s.gateways), s.allowance, s.batches, f"{s.floor:.0f}",
             f"{mean([span(r, s) for r in rounds]):.1f}",
             f"{mean([span(r, s) for r in rounds]) / s.floor:.2f}"]
            for s in steps
        ],
    )  # fmt: skip
    result.table(
        "Where a gateway's time goes (mean over gateways and rounds, seconds)",
        ["given the commit → reports it applied", "applied → reports it held the window",
         "a gateway done → the next one given", "push → first gateway given"],
        [[f"{mean([r.applied[g] - r.given[g] for r in rounds for g in r.applied]):.2f}",
          f"{mean([r.done[g] - r.applied[g] for r in rounds for g in r.done]):.2f}",
          f"{mean([gap for r in rounds for gap in reactions(r)]):.2f}",
          f"{mean([min(r.given.values()) for r in rounds]):.2f}"]],
    )  # fmt: skip
    worst = max((r.last_done() / floor for r in rounds), default=0.0)
    result.goal(
        f"push to the last gateway / floor ({floor:.0f} s), worst round",
        worst,
        GOAL,
        note="issue 17",
    )
    if rounds:
        last = rounds[-1]
        result.chart(
            Chart(
                file="rollout.png",
                title=f"A {scale.gateways}-gateway rollout: gateways given the commit and done",
                kind="line",
                xlabel="seconds since the push",
                ylabel="gateways",
                series={
                    what: {"x": sorted(times.values()), "y": list(range(1, len(times) + 1))}
                    for what, times in (("given", last.given), ("done", last.done))
                },
            )
        )


def span(seen: Round, step: Step) -> float:
    """From the first of the step's gateways given the commit to the last done."""
    return max(seen.done[g] for g in step.gateways) - min(seen.given[g] for g in step.gateways)


def reactions(seen: Round) -> list[float]:
    """For each gateway given the commit after the first batch: how long after the latest
    gateway done before it (the slot it took) it was given."""
    out = []
    for given in seen.given.values():
        before = [done for done in seen.done.values() if done <= given]
        if before:
            out.append(given - max(before))
    return out


if __name__ == "__main__":
    sys.exit(main())
