"""Fleet rollouts on real pods (issue 17): the chart's controller publishes each gateway's
target, the agents the webhook injected move wave by wave, a commit rejected in the second wave
halts with the gateways not yet moved untouched on their volumes, a controller restarted
mid-rollout goes on from where it was with its history kept, `onFailure: rollback` sends the
first step's gateway back to the previous commit's files, a redundant pair with
`applyOnBackup: true` moves primary first and never both nodes at once, and an approval goes
through the chart's webhook: a user allowed to `approve` is stamped by name, one who is not is
refused, and an approval written while the webhook was bypassed is ignored.

The wave order is read where it happened: each gateway logs its scans (the simulator image), so
the times at which each gateway scanned the change, on the one node's clock, show who moved when.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from e2e.conftest import Cluster
from e2e.gateways import (
    SYSTEM,
    Plant,
    branch_for,
    custom,
    deploy_gateways,
    gateway_statefulset,
    gatewaysync,
    install,
    log,
    push,
    scans,
    volume_dir,
    wait_for,
    wait_for_ready,
)
from stoker_core import drift
from support.gateway_data import files_of

WINDOW = 4  # healthWindow, seconds: every wave below waits at least this long on each unit
LOGGING = "shared/projects/global/ignition/script-python/plant/logging/code.py"
RESOURCE = "projects/global/ignition/script-python/plant/logging"  # as the gateway scans it
REJECTED = "shared/projects/rejected/project.json"  # the line gateways refuse this project
LINE = {"plant.example/line": "1"}
# The Ignition chart's labels: a StatefulSet of two is a redundant pair, named `scada` and
# `scada-1` by the gateway-name rule (docs/rollouts.md, "Redundant pairs").
PAIR = {"app.kubernetes.io/name": "ignition", "app.kubernetes.io/instance": "scada"}
# Each node of the pair reports its redundancy role as Ignition does: ordinal 0 the master.
ROLE = 'read -r h < /etc/hostname; case "$h" in *-0) r=Master;; *) r=Backup;; esac; '
ROLE += 'exec "$0" "$@" --redundancy-role "$r"'
PROFILE = {
    # Every gateway gets the shared projects (no per-gateway folder is required), and the
    # pair's backup is really written (applyOnBackup: true), not left to replication.
    "default": {
        "mappings": [{"source": "shared/projects", "destination": "projects"}],
        "applyOnBackup": True,
    }
}
# What an agent reports once it applied a commit: Synced, then InSync at each periodic check.
APPLIED = ("Synced", "InSync")
APPROVER, EDITOR = "alice@plant.example", "bob@plant.example"


@dataclass
class Site:
    """A GatewaySync with a rollout tracking its own branch, and its gateways: gateway name →
    (StatefulSet, ordinal)."""

    plant: Plant
    namespace: str
    branch: str
    gateways: dict[str, tuple[str, int]]
    pushed_at: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def cluster(self) -> Cluster:
        """The cluster."""
        return self.plant.cluster

    def pod(self, gateway: str) -> str:
        """The gateway's pod."""
        sts, ordinal = self.gateways[gateway]
        return f"{sts}-{ordinal}"

    def volume(self, gateway: str) -> Path:
        """The gateway's data directory on the node."""
        return volume_dir(self.namespace, *self.gateways[gateway])

    def projects(self, gateway: str) -> dict[str, bytes]:
        """The gateway's synced projects, as files on its volume."""
        return files_of(self.volume(gateway) / "projects")

    def commit_and_push(self, files: dict[str, str | None], message: str) -> str:
        """Commit on the site's branch, tell the receiver; the new commit id."""
        sha = self.plant.repo.commit(files, branch=self.branch, message=message, replace=False)
        self.pushed_at = time.time()
        push(self.plant, self.namespace)
        return sha

    def gatewaysync(self) -> dict[str, Any]:
        """The GatewaySync as it is now."""
        return custom(self.cluster).get_namespaced_custom_object(
            "stoker.io", "v1alpha1", self.namespace, "gatewaysyncs", "plant"
        )

    def progressing(self) -> dict[str, Any]:
        """The `Progressing` condition ({} before there is one)."""
        conditions = (self.gatewaysync().get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Progressing"), {})

    def metadata(self) -> dict[str, str]:
        """The metadata ConfigMap the controller publishes for the agents."""
        return self.cluster.core.read_namespaced_config_map(
            "stoker-metadata-plant", self.namespace
        ).data

    def targets(self) -> dict[str, str]:
        """Each gateway's published target commit."""
        data = self.metadata()
        named = json.loads(data.get("targets") or "{}")
        return {name: named.get(name, data["commit"]) for name in self.gateways}

    def report(self, gateway: str) -> dict[str, Any]:
        """The gateway's agent's status record ({} before its first)."""
        try:
            found = self.cluster.core.read_namespaced_config_map(
                f"stoker-status-plant-{self.pod(gateway)}", self.namespace
            )
        except client.ApiException as error:
            if error.status == 404:
                return {}
            raise
        return json.loads((found.data or {}).get("status.json") or "{}")

    def change_scan(self, gateway: str) -> dict[str, Any] | None:
        """The gateway's scan that loaded the change to the logging script after the last push
        (the sync the agent asked for), if it happened."""
        return next(
            (
                s
                for s in scans(self.cluster, self.namespace, self.pod(gateway))
                if s["trigger"] == "api"
                and s["started"] >= self.pushed_at
                and any(r.endswith(RESOURCE) for r in [*s["changed"], *s["added"]])
            ),
            None,
        )


def labelled(body: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The StatefulSet with `labels` as its pods' labels and its selector."""
    body["spec"]["selector"] = {"matchLabels": dict(labels)}
    body["spec"]["template"]["metadata"]["labels"] = dict(labels)
    return body


def fleet_statefulsets() -> list[dict[str, Any]]:
    """A test gateway, three line gateways (they refuse the project `rejected`) and the
    redundant pair, each pair node reporting its role."""
    test = labelled(gateway_statefulset("test-gw"), {"app.kubernetes.io/name": "test-gw"})
    lines = [
        labelled(
            gateway_statefulset(name, args=("--refuse-project", "rejected")),
            {"app.kubernetes.io/name": name, **LINE},
        )
        for name in ("line-a", "line-b", "line-c")
    ]
    pair = labelled(gateway_statefulset("scada", replicas=2), PAIR)
    [gateway] = pair["spec"]["template"]["spec"]["containers"]
    gateway["command"] = ["sh", "-c", ROLE, *gateway["command"]]
    return [test, *lines, pair]


def start_site(
    plant: Plant, namespace: str, rollout: dict[str, Any], bodies: list[dict[str, Any]]
) -> Site:
    """The GatewaySync `plant` with `rollout`, its gateways deployed and synced at the branch's
    commit (a new GatewaySync starts settled there: no rollout for its first commit)."""
    branch = namespace  # made by `served`
    gatewaysync(
        plant,
        namespace,
        git={"repo": plant.repo_url, "ref": branch},
        sync={"profiles": PROFILE},
        rollout=rollout,
    )
    gateways: dict[str, tuple[str, int]] = {}
    for body in bodies:
        sts, replicas = body["metadata"]["name"], body["spec"]["replicas"]
        deploy_gateways(plant.cluster, namespace, body, wait=False)
        # The gateway-name rule: the app name, or the chart's instance and `-N` for N > 0.
        base = body["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        base = PAIR["app.kubernetes.io/instance"] if base == "ignition" else base
        for ordinal in range(replicas):
            gateways[f"{base}-{ordinal}" if ordinal else base] = (sts, ordinal)
    site = Site(plant, namespace, branch, gateways)
    for gateway in gateways:
        wait_for_ready(plant.cluster, namespace, site.pod(gateway))
    head = plant.repo.rev_parse(branch)
    for gateway in gateways:
        wait_for(
            f"{gateway}'s agent to report the first commit synced",
            lambda g=gateway: (
                site.report(g).get("commit") == head and site.report(g).get("result") in APPLIED
            ),
        )
    return site


@pytest.fixture(scope="module")
def served(plant: Plant) -> list[str]:
    """Two namespaces the chart's release serves. The suite's release is gone by now
    (test_helm_lifecycle.py and test_quickstart.py uninstall it): install it again, as the
    session's plant fixture did, for these two."""
    names = [plant.take_namespace(), plant.take_namespace()]
    # Both branches before either GatewaySync: until d2b4992 the controller's ls-remote
    # answer, shared per repository for a polling interval, missed a branch made after it.
    for name in names:
        branch_for(plant, name)
    install(plant.cluster, names)
    return names


@pytest.fixture(scope="module")
def fleet(plant: Plant, served: list[str]) -> Site:
    """A two-step rollout: the test gateway, then the three line gateways one at a time; the
    pair no step selects moves last. Halts on failure."""
    rollout = {
        "healthWindow": f"{WINDOW}s",
        "steps": [
            {"name": "test", "selector": {"gateways": ["test-gw"]}},
            {"name": "line", "selector": {"matchLabels": LINE}, "maxUnavailable": 1},
        ],
    }
    return start_site(plant, served[0], rollout, fleet_statefulsets())


def logging_script(site: Site, release: str) -> str:
    """The shared logging script with a release marker: a change every gateway gets."""
    text = site.plant.repo.git("show", f"{site.branch}:{LOGGING}")
    return f"{text.rstrip()}\nRELEASE = {release!r}\n"


def sample_pair(site: Site, commit: str, samples: list[dict[str, Any]]) -> None:
    """One observation of the pair: both targets and what the primary's agent reports."""
    targets = site.targets()
    if targets["scada-1"] == commit:
        primary = site.report("scada")
        samples.append(
            {
                "primary": targets["scada"],
                "primary_commit": primary.get("commit"),
                "primary_healthy_for": (primary.get("health") or {}).get("healthyFor", 0.0),
            }
        )


def test_a_commit_moves_wave_by_wave_and_the_pairs_backup_only_after_its_primary_held(
    fleet: Site,
) -> None:
    text = logging_script(fleet, "r2")
    commit = fleet.commit_and_push({LOGGING: text}, "logging: release r2")
    samples: list[dict[str, Any]] = []

    def everywhere() -> bool:
        sample_pair(fleet, commit, samples)
        return all(
            (fleet.volume(g) / RESOURCE / "code.py").read_text() == text for g in fleet.gateways
        )

    wait_for("the commit to reach every gateway", everywhere, timeout=300)
    when = {g: fleet.change_scan(g) for g in fleet.gateways}
    assert all(when.values()), {g: s is not None for g, s in when.items()}
    order = sorted(fleet.gateways, key=lambda g: when[g]["started"])
    log(f"rollout order: {order}")
    # Waves: the test gateway first, the line one at a time, the unselected pair last, its
    # primary first. Each unit starts only once the one before held the commit for the window.
    assert order[0] == "test-gw", order
    assert set(order[1:4]) == {"line-a", "line-b", "line-c"}, order
    assert order[4:] == ["scada", "scada-1"], order
    for before, after in itertools.pairwise(order):
        gap = when[after]["started"] - when[before]["finished"]
        assert gap >= WINDOW, f"{after} scanned the commit {gap:.1f}s after {before}: {when}"
    # The pair: while the backup was given the commit, the primary was reporting it held.
    assert samples, "the backup's target was never seen at the commit"
    for sample in samples:
        assert sample["primary"] == commit, sample
        assert sample["primary_commit"] == commit, sample
        assert sample["primary_healthy_for"] >= WINDOW, sample
    # Complete once the backup held it for the window too (its agent reports after writing).
    wait_for("the rollout to complete", lambda: completed(fleet, commit), timeout=60)
    fleet.notes["good"] = commit
    # Both nodes were really written, the backup by its own agent (applyOnBackup: true).
    backup = fleet.report("scada-1")
    assert backup["commit"] == commit, backup
    assert backup["result"] in APPLIED, backup
    # The backup's gateway says it is the backup (the agent keeps what the gateway last said).
    role = fleet.volume("scada-1") / ".stoker" / "redundancy-role"
    assert role.read_text().strip().lower() == "backup"
    assert fleet.metadata()["commit"] == commit  # done: the baseline is the new commit
    assert not json.loads(fleet.metadata().get("targets") or "{}")


def completed(site: Site, commit: str) -> bool:
    """Whether `Progressing` says the rollout of `commit` reached every gateway."""
    condition = site.progressing()
    return condition.get("reason") == "RolloutComplete" and commit[:12] in condition["message"]


def test_a_commit_rejected_in_the_second_step_halts_and_the_gateways_not_moved_keep_their_files(
    fleet: Site,
) -> None:
    good = fleet.notes.get("good")
    assert good, "runs after the rollout test, once its commit reached the whole fleet"
    before = {g: fleet.projects(g) for g in fleet.gateways}
    bad = fleet.commit_and_push(
        {REJECTED: json.dumps({"title": "refused by the lines", "enabled": True})},
        "a project the line gateways refuse",
    )

    halted = wait_for(
        "the rollout to halt",
        lambda: (
            (c := fleet.progressing()).get("reason") == "RolloutHalted"
            and bad[:12] in c["message"]
            and c
        ),
        timeout=240,
    )
    assert halted["status"] == "False", halted
    [failed] = [g for g in ("line-a", "line-b", "line-c") if g in halted["message"]]
    untouched = [g for g in fleet.gateways if g not in ("test-gw", failed)]
    log(f"halted at {failed}: {halted['message']}")
    # The test gateway took the commit (it accepts the project); the failed one rolled it back.
    assert (fleet.volume("test-gw") / "projects" / "rejected" / "project.json").is_file()
    wait_for(
        f"{failed}'s agent to roll the refused project back",
        lambda: not (fleet.volume(failed) / "projects" / "rejected").exists(),
    )
    refusals = len(refusing_scans(fleet, failed))
    assert refusals >= 1
    # The gateways not yet moved: the same files on their volumes as before the push, and no
    # scan of anything since; the baseline agents of an older release read is the good commit.
    for gateway in untouched:
        assert fleet.projects(gateway) == before[gateway], gateway
        assert fleet.targets()[gateway] == good, gateway
    assert fleet.metadata()["commit"] == good
    # Halted stays halted: no retry loop over a few agent periods and health windows.
    time.sleep(3 * WINDOW)
    assert fleet.progressing().get("reason") == "RolloutHalted"
    assert len(refusing_scans(fleet, failed)) == refusals
    for gateway in untouched:
        assert fleet.projects(gateway) == before[gateway], gateway
        assert not [
            s
            for s in scans(fleet.cluster, fleet.namespace, fleet.pod(gateway))
            if s["trigger"] == "api" and s["started"] >= fleet.pushed_at
        ], gateway
    assert fleet.metadata()["commit"] != bad


def refusing_scans(site: Site, gateway: str) -> list[dict[str, Any]]:
    """The gateway's scans since the last push that refused the project `rejected`."""
    return [
        s
        for s in scans(site.cluster, site.namespace, site.pod(gateway))
        if s["started"] >= site.pushed_at and "rejected" in json.dumps(s["skipped"])
    ]


def test_a_controller_restarted_mid_rollout_goes_on_from_where_it_was_and_keeps_the_history(
    fleet: Site,
) -> None:
    good = fleet.notes.get("good")
    assert good, "runs after the halt test, on the fleet it halted"
    earlier = [e["commit"] for e in fleet.gatewaysync()["status"]["history"]]
    assert good in earlier, earlier
    # A fix: the refused project goes, and a change every gateway gets (a newer commit starts
    # a new rollout from the first step).
    text = logging_script(fleet, "r3")
    fixed = fleet.commit_and_push({REJECTED: None, LOGGING: text}, "drop the refused project")
    # Mid-rollout: the line step has started (the test gateway held the commit).
    state = wait_for(
        "the line step of the fix to start",
        lambda: (
            (r := fleet.gatewaysync().get("status", {}).get("rollout") or {}).get("commit") == fixed
            and len(r.get("started") or []) >= 2
            and r
        ),
        timeout=120,
    )
    assert not completed(fleet, fixed)
    leases = client.CoordinationV1Api(fleet.cluster.api)
    holder = leases.read_namespaced_lease("stoker-controller", SYSTEM).spec.holder_identity
    leader = next(
        p.metadata.name
        for p in fleet.cluster.core.list_namespaced_pod(
            SYSTEM, label_selector="app.kubernetes.io/component=controller"
        ).items
        if holder.startswith(f"{p.metadata.name}-")
    )
    log(f"deleting the leading controller {leader} at steps started {state['started']}")
    fleet.cluster.core.delete_namespaced_pod(leader, SYSTEM)

    wait_for("the rollout to complete after the restart", lambda: completed(fleet, fixed), 240)
    after = leases.read_namespaced_lease("stoker-controller", SYSTEM).spec.holder_identity
    assert not after.startswith(f"{leader}-"), after  # another controller finished it
    # Gone on from where it was: the two steps started before keep their start times (none
    # started again), and only the pair's step started since.
    rollout = fleet.gatewaysync()["status"]["rollout"]
    assert rollout["started"][:2] == state["started"][:2], (state, rollout)
    assert len(rollout["started"]) == 3, rollout
    # The history read back by the new leader: the earlier entries, then the fix.
    history = [e["commit"] for e in fleet.gatewaysync()["status"]["history"]]
    assert history[: len(earlier)] == earlier, (earlier, history)
    assert history[-1] == fixed, history
    [entry] = [e for e in fleet.gatewaysync()["status"]["history"] if e["commit"] == fixed]
    assert entry["outcome"] == "Complete", entry
    for gateway in fleet.gateways:
        assert (fleet.volume(gateway) / RESOURCE / "code.py").read_text() == text, gateway
    fleet.notes["fixed"] = fixed


def test_on_failure_rollback_a_commit_rejected_in_the_second_step_sends_the_first_step_back(
    fleet: Site,
) -> None:
    fixed = fleet.notes.get("fixed")
    assert fixed, "runs after the restart test, once its commit reached the whole fleet"
    custom(fleet.cluster).patch_namespaced_custom_object(
        "stoker.io", "v1alpha1", fleet.namespace, "gatewaysyncs", "plant",
        {"spec": {"rollout": {"onFailure": "rollback"}}},
    )  # fmt: skip
    before = {g: fleet.projects(g) for g in fleet.gateways}
    bad = fleet.commit_and_push(
        {
            REJECTED: json.dumps({"title": "refused again", "enabled": True}),
            LOGGING: logging_script(fleet, "r4"),
        },
        "a project the line gateways refuse, again",
    )
    refused = fleet.volume("test-gw") / "projects" / "rejected" / "project.json"
    wait_for("the test gateway to take the commit", refused.is_file, timeout=120)
    halted = wait_for(
        "the rollout to halt",
        lambda: (
            (c := fleet.progressing()).get("reason") == "RolloutHalted"
            and bad[:12] in c["message"]
            and c
        ),
        timeout=240,
    )
    log(f"halted: {halted['message']}")
    # Rolled back: the test gateway is given the previous commit again, its agent applies it,
    # and its volume holds the previous commit's files again, as every other gateway's does
    # (but for the load stamps a gateway writes in resource.json when it rescans).
    wait_for(
        "the test gateway to be sent back to the previous commit",
        lambda: fleet.targets()["test-gw"] == fixed,
        timeout=60,
    )
    wait_for(
        "the test gateway's agent to report the previous commit applied",
        lambda: (
            (r := fleet.report("test-gw")).get("commit") == fixed and r.get("result") in APPLIED
        ),
        timeout=120,
    )
    assert not refused.exists()
    for gateway in fleet.gateways:
        changed = differing(fleet.projects(gateway), before[gateway])
        assert not changed, (gateway, changed)
        assert fleet.targets()[gateway] == fixed, gateway
    assert fleet.metadata()["commit"] == fixed
    said = f"commit {bad[:12]} halted: the gateways it had moved are sent back to {fixed[:12]}"
    assert said in events_of(fleet, "RolloutRolledBack"), events_of(fleet, "RolloutRolledBack")


def differing(now: dict[str, bytes], before: dict[str, bytes]) -> list[str]:
    """The paths whose bytes differ, but a resource.json that differs only by the stamps the
    gateway writes itself when it loads the resource (a gateway that rescanned restamps it)."""
    return sorted(
        path
        for path in {*now, *before}
        if now.get(path) != before.get(path)
        and not (
            drift.is_resource_manifest(path)
            and path in now
            and path in before
            and drift.stamped_equal(now[path], before[path])
        )
    )


def events_of(site: Site, reason: str) -> list[str]:
    """The messages of the events about the GatewaySync with `reason`."""
    events = site.cluster.core.list_namespaced_event(
        site.namespace, field_selector=f"involvedObject.name=plant,reason={reason}"
    )
    return [e.message or "" for e in events.items]


# --- Approvals through the chart's webhook ---------------------------------------------------


@pytest.fixture(scope="module")
def gated(plant: Plant, served: list[str]) -> Site:
    """One gateway whose GatewaySync needs an approval for every new commit; `alice` may
    approve, `bob` may edit the GatewaySync but not approve."""
    namespace = served[1]
    rbac = client.RbacAuthorizationV1Api(plant.cluster.api)
    rules = {
        "approver": ["get", "list", "watch", "patch", "update", "approve"],
        "editor": ["get", "list", "watch", "patch", "update"],
    }
    for role, verbs in rules.items():
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": f"gatewaysync-{role}"},
                "rules": [
                    {"apiGroups": ["stoker.io"], "resources": ["gatewaysyncs"], "verbs": verbs}
                ],
            },
        )
    for user, role in ((APPROVER, "approver"), (EDITOR, "editor")):
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": f"{role}-{user.split('@')[0]}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": f"gatewaysync-{role}",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            },
        )
    rollout = {
        "approval": "required",
        "healthWindow": "2s",
        "steps": [{"name": "all", "selector": {"gateways": ["approve-gw"]}}],
    }
    body = labelled(gateway_statefulset("approve-gw"), {"app.kubernetes.io/name": "approve-gw"})
    return start_site(plant, namespace, rollout, [body])


@contextmanager
def as_user(cluster: Cluster, user: str) -> Iterator[client.CustomObjectsApi]:
    """The custom-objects API as `user` (the admin impersonating them: the API server, and so
    the webhook's review, sees `user` as the requester)."""
    api = config.new_client_from_config(str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    try:
        yield client.CustomObjectsApi(api)
    finally:
        api.close()


def approve(api: client.CustomObjectsApi, site: Site, commit: str) -> dict[str, Any]:
    """Write the approval of `commit` for the whole rollout, as `stoker approve` does."""
    return api.patch_namespaced_custom_object(
        "stoker.io", "v1alpha1", site.namespace, "gatewaysyncs", "plant",
        {"metadata": {"annotations": {"approval.stoker.io/rollout": commit}}},
    )  # fmt: skip


def refused(call: Any, status: int) -> str:
    """The API server's refusal of `call` with `status` (the webhook's code), and its message."""
    with pytest.raises(client.ApiException) as raised:
        call()
    assert raised.value.status == status, raised.value.body
    return str(json.loads(raised.value.body or "{}").get("message", ""))


@contextmanager
def webhooks_bypassed(site: Site) -> Iterator[None]:
    """Every admission webhook that sees GatewaySyncs leaves the site's namespace out (what an
    admin editing the configurations, or a reinstall, does); put back as it was afterwards."""
    cluster, namespace = site.cluster, site.namespace
    admission = client.AdmissionregistrationV1Api(cluster.api)
    kinds = [
        (
            admission.list_mutating_webhook_configuration,
            admission.replace_mutating_webhook_configuration,
            admission.read_mutating_webhook_configuration,
        ),
        (
            admission.list_validating_webhook_configuration,
            admission.replace_validating_webhook_configuration,
            admission.read_validating_webhook_configuration,
        ),
    ]
    saved: list[tuple[Any, Any, Any]] = []
    away = client.V1LabelSelectorRequirement(
        key="kubernetes.io/metadata.name", operator="NotIn", values=[namespace]
    )
    try:
        for listing, replace, read in kinds:
            for configuration in listing().items:
                hooks = [
                    w
                    for w in configuration.webhooks or []
                    if any("gatewaysyncs" in (r.resources or []) for r in w.rules or [])
                ]
                if not hooks:
                    continue
                saved.append((replace, read, configuration.metadata.name))
                original = [w.namespace_selector for w in configuration.webhooks]
                configuration.metadata.annotations = {
                    **(configuration.metadata.annotations or {}),
                    "e2e.stoker.io/selectors": json.dumps(
                        [cluster.api.sanitize_for_serialization(s) for s in original]
                    ),
                }
                for hook in hooks:
                    selector = hook.namespace_selector or client.V1LabelSelector()
                    selector.match_expressions = [*(selector.match_expressions or []), away]
                    hook.namespace_selector = selector
                replace(configuration.metadata.name, configuration)
        yield
    finally:
        for replace, read, name in saved:
            configuration = read(name)
            annotations = configuration.metadata.annotations or {}
            original = json.loads(annotations.pop("e2e.stoker.io/selectors"))
            for hook, selector in zip(configuration.webhooks, original, strict=True):
                hook.namespace_selector = selector
            replace(name, configuration)
        if saved:
            wait_for("the approval webhook back in the API server's path", lambda: guarded(site))


def guarded(site: Site) -> bool:
    """Whether the approval webhook answers for the site's GatewaySync: a dry-run approval
    that is no commit SHA is refused by it (the admin may approve)."""
    try:
        custom(site.cluster).patch_namespaced_custom_object(
            "stoker.io", "v1alpha1", site.namespace, "gatewaysyncs", "plant",
            {"metadata": {"annotations": {"approval.stoker.io/rollout": "not-a-commit"}}},
            dry_run="All",
        )  # fmt: skip
    except client.ApiException as error:
        return error.status == 422
    return False


def pending_commit(site: Site) -> str:
    """The commit the rollout waits on an approval for ("" when none)."""
    condition = site.progressing()
    if condition.get("reason") != "AwaitingApproval":
        return ""
    rollout = site.gatewaysync().get("status", {}).get("rollout") or {}
    return str(rollout.get("pendingCommit") or rollout.get("commit") or "")


def warnings(site: Site) -> list[str]:
    """The Warning events about the GatewaySync."""
    events = site.cluster.core.list_namespaced_event(
        site.namespace, field_selector="involvedObject.name=plant,type=Warning"
    )
    return [e.message or "" for e in events.items]


def test_an_approval_is_stamped_with_the_approving_user_a_user_without_the_right_is_refused(
    gated: Site,
) -> None:
    before = gated.projects("approve-gw")
    commit = gated.commit_and_push({LOGGING: logging_script(gated, "r2")}, "logging: r2")
    wait_for("the commit to wait for an approval", lambda: pending_commit(gated) == commit)
    base = gated.metadata()["commit"]
    assert base != commit

    with as_user(gated.cluster, EDITOR) as bob:
        why = refused(lambda: approve(bob, gated, commit), 403)
    assert f"{EDITOR} may not approve" in why, why
    assert '"approve" on gatewaysyncs' in why, why
    with as_user(gated.cluster, APPROVER) as alice:
        why = refused(lambda: approve(alice, gated, base), 409)  # not the pending commit
        assert f"the pending commit is {commit}" in why, why

        # Written while the webhook was out of the way, as `kubectl annotate` would: a plain
        # SHA, then a stamp made up to look like the webhook's. The controller counts neither,
        # and says so in a Warning event each.
        forged = json.dumps(
            {"commit": commit, "by": APPROVER, "at": "2026-01-01T00:00:00Z", "sig": "0" * 64}
        )
        with webhooks_bypassed(gated):
            for value, said in ((commit, "is a plain commit SHA: ignored"), (forged, "verify")):
                wait_for(
                    "the hand-written approval to stay as written",
                    lambda v=value: hand_written(gated, v),
                    timeout=60,
                )
                warning = wait_for(
                    f"a Warning saying the approval {said}",
                    lambda s=said: next((m for m in warnings(gated) if s in m), None),
                )
                log(f"ignored: {warning}")
                assert pending_commit(gated) == commit
        assert pending_commit(gated) == commit
        assert gated.projects("approve-gw") == before
        assert gated.targets()["approve-gw"] == base

        approve(alice, gated, commit)
    stamp = json.loads(gated.gatewaysync()["metadata"]["annotations"]["approval.stoker.io/rollout"])
    assert stamp["commit"] == commit, stamp
    assert stamp["by"] == APPROVER, stamp
    assert stamp["sig"] != "0" * 64
    wait_for(
        "the approved commit to reach the gateway",
        lambda: completed(gated, commit) and gated.report("approve-gw").get("commit") == commit,
        timeout=120,
    )
    assert gated.projects("approve-gw") != before
    # Recorded by name in the GatewaySync's history, beside the commit it let through.
    [entry] = [e for e in gated.gatewaysync()["status"]["history"] if e["commit"] == commit]
    assert {"gate": "rollout", "user": APPROVER} in entry.get("approvedBy", []), entry


def hand_written(site: Site, value: str) -> bool:
    """Write the approval annotation as the admin, once the API server sends it to no webhook
    (a dry run comes back as written, not stamped); whether it was written."""
    api = custom(site.cluster)
    patch = {"metadata": {"annotations": {"approval.stoker.io/rollout": value}}}
    tried = api.patch_namespaced_custom_object(
        "stoker.io", "v1alpha1", site.namespace, "gatewaysyncs", "plant", patch, dry_run="All"
    )
    if tried["metadata"]["annotations"]["approval.stoker.io/rollout"] != value:
        return False  # the API server has not seen the webhooks' new configuration yet
    api.patch_namespaced_custom_object(
        "stoker.io", "v1alpha1", site.namespace, "gatewaysyncs", "plant", patch
    )
    return True
