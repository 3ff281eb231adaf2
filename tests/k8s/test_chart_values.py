"""A chart that fits a plant's cluster (issue 15 item 6), as rendered by the real helm: images as
registry / repository / tag whose defaults are the names the e2e cluster imports, pull secrets,
placement, resources and disruption budgets for every Deployment, a values schema that refuses a
typo'd key or a wrong type by name, and defaults (the plain manifests too) without cert-manager."""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

import pytest
import yaml

from conftest import ROOT
from e2e.conftest import chart_images
from k8s.test_chart import CHART, render
from k8s.test_chart import helm as helm  # the fixture

PLAIN = ROOT / "adapters" / "manifests" / "stoker.yaml"
COMPONENTS = ("controller", "webhook", "receiver")


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rendered Deployments by component."""
    return {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o
        for o in objects
        if o["kind"] == "Deployment"
    }


def images(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every image the rendering names: the pods' own and the agent the webhook injects."""
    found: dict[str, set[str]] = {"controller": set(), "agent": set()}
    for obj in objects:
        spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj.get("spec")
        if obj["kind"] not in ("Deployment", "Pod"):
            continue
        for container in spec["containers"]:
            found["controller"].add(container["image"])
            args = container.get("args") or []
            if "--agent-image" in args:
                found["agent"].add(args[args.index("--agent-image") + 1])
    return found


def refusal(helm: str, command: str, *settings: str) -> str:
    """What `helm lint` or `helm template` says when refusing `settings`; fails if accepted."""
    args = [helm, command, str(CHART)] if command == "lint" else [helm, command, "s", str(CHART)]
    for setting in settings:
        args += ["--set", setting]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode != 0, f"helm {command} accepted {settings}"
    return done.stdout + done.stderr


def test_default_images_are_the_names_the_e2e_cluster_and_the_image_build_use(
    helm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "adapters" / "images"))
    import build  # adapters/images/build.py: the names the offline images are tagged with
    import recipe

    expected = {
        "controller": "ghcr.io/stoker-io/stoker-controller:0.1.0",
        "agent": "ghcr.io/stoker-io/stoker-agent:0.1.0",
    }
    rendered = images(render(helm, "stoker-system", "receiver.enabled=true"))
    assert rendered == {key: {name} for key, name in expected.items()}
    assert chart_images() == expected
    assert {i.chart_value: build.chart_name(i) for i in recipe.load()} == expected


def test_images_are_built_from_registry_repository_and_tag(helm: str) -> None:
    mirrored = images(render(helm, "stoker-system", "image.registry=registry.plant.local:5000"))
    assert mirrored == {
        "controller": {"registry.plant.local:5000/stoker-io/stoker-controller:0.1.0"},
        "agent": {"registry.plant.local:5000/stoker-io/stoker-agent:0.1.0"},
    }
    own = images(
        render(
            helm,
            "stoker-system",
            "image.registry=,image.controller.repository=stoker-controller,"
            # A whole-number tag, as --set parses it, is a tag too.
            "image.controller.tag=dev,image.agent.repository=plant/agent,image.agent.tag=7",
        )
    )
    assert own == {"controller": {"stoker-controller:dev"}, "agent": {"plant/agent:7"}}


def test_image_pull_secrets_reach_every_pod_the_chart_makes(helm: str) -> None:
    objects = render(helm, "stoker-system", "receiver.enabled=true,imagePullSecrets={regcred}")
    pods = [o["spec"]["template"]["spec"] for o in deployments(objects).values()]
    pods += [o["spec"] for o in objects if o["kind"] == "Pod"]
    pods += [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Job"]
    assert len(pods) == 5  # three Deployments, the helm test, the uninstall hook's Job
    for pod in pods:
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    # The pod spec's own form works too.
    objects = render(helm, "stoker-system", "imagePullSecrets[0].name=mirror")
    for deployment in deployments(objects).values():
        assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "mirror"}]
    for deployment in deployments(render(helm, "stoker-system")).values():
        assert "imagePullSecrets" not in deployment["spec"]["template"]["spec"]


def test_every_deployment_takes_its_own_placement_and_resources(helm: str) -> None:
    settings = ["receiver.enabled=true"]
    for c in COMPONENTS:
        settings += [
            f"{c}.nodeSelector.plant/role={c}",
            f"{c}.tolerations[0].key=dedicated,{c}.tolerations[0].value={c}",
            f"{c}.tolerations[0].effect=NoSchedule",
            f"{c}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            f".nodeSelectorTerms[0].matchExpressions[0].key=zone-{c}",
            f"{c}.resources.limits.memory=1{len(c)}0Mi",
        ]
    found = deployments(render(helm, "stoker-system", ",".join(settings)))
    assert set(found) == set(COMPONENTS)
    for c, deployment in found.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"plant/role": c}
        assert pod["tolerations"] == [{"key": "dedicated", "value": c, "effect": "NoSchedule"}]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == f"zone-{c}"
        assert pod["containers"][0]["resources"]["limits"]["memory"] == f"1{len(c)}0Mi"
    for deployment in deployments(render(helm, "stoker-system")).values():
        pod = deployment["spec"]["template"]["spec"]
        assert not {"nodeSelector", "tolerations", "affinity"} & set(pod)
        assert pod["containers"][0]["resources"]["requests"]


def test_controller_and_webhook_disruption_budgets_select_their_pods_and_never_block_a_drain(
    helm: str,
) -> None:
    objects = render(helm, "stoker-system", "receiver.enabled=true")
    budgets = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]
        for o in objects
        if o["kind"] == "PodDisruptionBudget"
    }
    assert set(budgets) == set(COMPONENTS)
    for component, deployment in deployments(objects).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert budgets[component]["selector"]["matchLabels"].items() <= labels.items()
        # One pod at a time may go: a single replica can still be drained.
        assert budgets[component]["maxUnavailable"] == 1
    off = render(helm, "stoker-system", "controller.podDisruptionBudget.enabled=false")
    assert [o["metadata"]["name"] for o in off if o["kind"] == "PodDisruptionBudget"] == [
        "stoker-webhook"
    ]
    assert "maxUnavailable" in refusal(
        helm, "template", "webhook.podDisruptionBudget.maxUnavailable=0"
    )


@pytest.mark.parametrize("command", ["lint", "template"])
def test_a_typo_in_a_value_is_refused_naming_the_key(helm: str, command: str) -> None:
    assert "Additional property contoller is not allowed" in refusal(
        helm, command, "contoller.replicas=3"
    )
    assert "webhook: Additional property failurepolicy is not allowed" in refusal(
        helm, command, "webhook.failurepolicy=Fail"
    )


@pytest.mark.parametrize("command", ["lint", "template"])
def test_a_value_of_the_wrong_type_is_refused_naming_the_key_and_the_type(
    helm: str, command: str
) -> None:
    said = refusal(helm, command, "controller.replicas=two")
    assert "controller.replicas: Invalid type. Expected: integer, given: string" in said
    # The image as one string (the chart's old form) is refused, not half-rendered.
    said = refusal(helm, command, "image.agent=stoker-agent:dev")
    assert "image.agent: Invalid type. Expected: object, given: string" in said
    said = refusal(helm, command, "webhook.failurePolicy=ignore")
    assert "webhook.failurePolicy" in said
    assert "webhook.timeoutSeconds: Must be less than or equal to 30" in refusal(
        helm, command, "webhook.timeoutSeconds=60"
    )


def test_defaults_and_plain_manifests_install_without_cert_manager(helm: str) -> None:
    plain = PLAIN.read_text()
    for text in (plain, yaml.safe_dump_all(render(helm, "stoker-system"))):
        assert "cert-manager.io" not in text
        # The webhook makes its own certificate and publishes its CA (docs/install.md).
        assert "--self-signed-secret" in text
        assert "kind: PodDisruptionBudget" in text
    assert "helm.sh/hook" not in plain  # the helm test pod is Helm's alone
    with_cm = render(helm, "stoker-system", "webhook.certManager.enabled=true")
    assert {"Issuer", "Certificate"} <= {o["kind"] for o in with_cm}


def test_every_documented_helm_install_and_upgrade_renders_with_the_chart_s_schema(
    helm: str,
) -> None:
    from test_docs_commands import blocks

    seen = 0
    for path, body in blocks("sh"):
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            if not line.strip().startswith(("helm install", "helm upgrade")):
                continue
            words = shlex.split(line.strip())
            settings = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
            args = [helm, "template", "stoker", str(CHART), "--namespace", "stoker-system"]
            done = subprocess.run(
                args + [a for s in settings for a in ("--set", s)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, f"{path.name}: {line}\n{done.stderr}"
            seen += 1
    assert seen >= 3
