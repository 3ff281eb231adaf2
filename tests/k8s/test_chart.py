"""The Helm chart: linted and rendered by a real helm (built from its Go module), every rendered
object accepted by the test API server (server-side dry run), no private key anywhere, and the
plain manifests equal to a fresh rendering."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from conftest import ROOT

CHART = ROOT / "adapters" / "helm" / "stoker"
ALL_ON = (
    "receiver.enabled=true,receiver.ingress.enabled=true,receiver.secretName=hooks,"
    "networkPolicy.enabled=true,metrics.serviceMonitor=true,metrics.podMonitor=true,"
    "metrics.prometheusRule=true,metrics.grafanaDashboards=true"
)
# Minimal stand-ins for kinds whose operators do not run here.
STAND_INS = [
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
    ("monitoring.coreos.com", "PodMonitor", "podmonitors"),
    ("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
    ("cert-manager.io", "Issuer", "issuers"),
    ("cert-manager.io", "Certificate", "certificates"),
]


@pytest.fixture(scope="module")
def helm() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "adapters/helm/build-helm.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"helm is not available: {done.stderr}"  # never skipped
    return done.stdout.strip().splitlines()[-1]


def render(helm: str, namespace: str, values: str = "") -> list[dict[str, Any]]:
    args = [helm, "template", "stoker", str(CHART), "--namespace", namespace]
    if values:
        args += ["--set", values]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_the_chart_lints(helm: str) -> None:
    done = subprocess.run(
        [helm, "lint", str(CHART), "--set", ALL_ON], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_rendered_file_holds_a_private_key(helm: str) -> None:
    outputs = [
        yaml.safe_dump_all(render(helm, "stoker-system", ALL_ON)),
        (ROOT / "adapters/manifests/stoker.yaml").read_text(),
    ]
    for text in outputs:
        assert "PRIVATE KEY" not in text


def test_plain_manifests_match_the_chart(helm: str, tmp_path: Path) -> None:
    committed = (ROOT / "adapters/manifests/stoker.yaml").read_text()
    done = subprocess.run(
        [
            helm,
            "template",
            "stoker",
            str(CHART),
            "--namespace",
            "stoker-system",
            "--include-crds",
            "--no-hooks",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert committed.split("\n", 2)[2] == done.stdout, "run: bash adapters/manifests/render.sh"


def test_webhook_failure_policy_lets_gateways_start_during_an_outage(helm: str) -> None:
    objects = render(helm, "stoker-system")
    mutating = next(
        o
        for o in objects
        if o["kind"] == "MutatingWebhookConfiguration"
        and o["metadata"]["name"].endswith("-pod-injection")
    )
    assert mutating["webhooks"][0]["failurePolicy"] == "Ignore"


@pytest.mark.kube
@pytest.mark.parametrize(
    "values",
    ["", ALL_ON, "webhook.certManager.enabled=true"],
    ids=["defaults", "everything-on", "cert-manager-webhook"],
)
def test_every_rendered_object_is_accepted_by_the_api_server(
    helm: str, kube_api: client.ApiClient, kube_namespace: str, values: str
) -> None:
    ext = client.ApiextensionsV1Api(kube_api)
    for group, kind, plural in STAND_INS:
        try:
            ext.create_custom_resource_definition(
                {
                    "metadata": {"name": f"{plural}.{group}"},
                    "spec": {
                        "group": group,
                        "scope": "Namespaced",
                        "names": {"kind": kind, "plural": plural},
                        "versions": [
                            {
                                "name": "v1",
                                "served": True,
                                "storage": True,
                                "schema": {
                                    "openAPIV3Schema": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    }
                                },
                            }
                        ],
                    },
                }
            )
        except client.exceptions.ApiException as e:
            if e.status != 409:
                raise
    api = dynamic.DynamicClient(kube_api)
    objects = render(helm, kube_namespace, values)
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "Service",
        "ClusterRole",
        "MutatingWebhookConfiguration",
        "PodDisruptionBudget",
        "Pod",  # the helm test's
    }

    def accepted() -> bool:
        for obj in objects:
            resource = api.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            namespace = kube_namespace if resource.namespaced else None
            resource.create(body=obj, namespace=namespace, dry_run="All")
        return True

    from support.kubeenv import wait_until

    wait_until(_retrying(accepted), timeout=30, what="the stand-in CRDs to be served")


def _retrying(check: Any) -> Any:
    def attempt() -> bool:
        try:
            return bool(check())
        except dynamic.exceptions.ResourceNotFoundError:
            return False

    return attempt


def test_H9_the_receiver_trusts_forwarded_addresses_only_from_the_listed_proxies(
    helm: str,
) -> None:
    def receiver_args(values: str) -> list[str]:
        (deployment,) = [
            d
            for d in render(helm, "stoker-system", values)
            if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-receiver")
        ]
        args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        return args

    assert "--trusted-proxies" not in receiver_args("receiver.enabled=true")
    args = receiver_args("receiver.enabled=true,receiver.trustedProxies={10.0.0.0/8,fd00::/8}")
    assert args[args.index("--trusted-proxies") + 1] == "10.0.0.0/8,fd00::/8"


@pytest.mark.parametrize("values", ["", "webhook.certManager.enabled=true"])
def test_the_webhook_signs_with_the_approval_key_the_controller_is_told_and_may_read(
    helm: str, values: str
) -> None:
    objects = render(helm, "stoker-system", values)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}

    def container(name: str) -> dict[str, Any]:
        deployment = by_name[("Deployment", name)]
        [first] = deployment["spec"]["template"]["spec"]["containers"]
        return dict(first)

    args = container("stoker-webhook")["args"]
    signed_with = args[args.index("--approval-key-secret") + 1]
    env = {e["name"]: e.get("value") for e in container("stoker-controller")["env"]}
    assert env["STOKER_APPROVAL_KEY_SECRET"] == signed_with == "stoker-approval-key"
    readable = by_name[("Role", "stoker-controller-approval-key")]["rules"]
    assert readable == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [signed_with],
            "verbs": ["get"],
        }
    ]
