"""The chart's pod webhook on the real API server: sent only pods asking for the agent, never
system pods or Stoker's own, only the served namespaces when `namespaces` lists them, only
labelled namespaces or pods when asked, pods annotated the original's way (no label) sent by
default, and a hung webhook delaying an annotated pod by its short timeout only. Also: every pod
the chart makes (the helm test's and the uninstall hook's too) passes the restricted Pod Security
level, and the helm test's check passes against a running controller and webhook and fails when
one is down."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import start_http_server

from k8s.rbacsupport import render_release
from k8s.test_chart import helm as helm  # the fixture
from k8s.test_webhook import fail_opens, serving
from stoker_k8s.metrics import ControllerMetrics
from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube

RUN = "stoker-test/scope-run"  # the label that keeps each test's webhook to its own pods
DEAD = "failed calling webhook"


def pod_webhook(helm: str, release_ns: str, values: str = "") -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration, rendered for a release in `release_ns`."""
    [mutating] = [
        o
        for o in render_release(helm, "stoker", release_ns, values)
        if o["kind"] == "MutatingWebhookConfiguration"
        and o["metadata"]["name"].endswith("-pod-injection")
    ]
    return mutating


@contextlib.contextmanager
def registered(
    kube_env: ControlPlane, api: client.ApiClient, mutating: dict[str, Any], url: str, policy: str
) -> Iterator[tuple[str, str]]:
    """The chart's pod webhook, its selectors as rendered, pointed at `url` with `policy`, for
    pods labelled with a run id of their own. Yields (the run id, the webhook's name)."""
    run = secrets.token_hex(4)
    webhook = mutating["webhooks"][0]
    webhook["clientConfig"] = {"url": url, "caBundle": CertificateAuthority("none").ca_bundle}
    webhook["failurePolicy"] = policy
    selector = webhook.setdefault("objectSelector", {})
    selector.setdefault("matchLabels", {})[RUN] = run
    mutating["metadata"] = {"name": f"stoker-scope-{run}"}
    with kube_env.webhook_configuration(api, mutating):
        yield run, webhook["name"]


@contextlib.contextmanager
def refusing_when_sent(
    kube_env: ControlPlane, api: client.ApiClient, mutating: dict[str, Any]
) -> Iterator[str]:
    """The chart's webhook pointed at a closed port with failurePolicy Fail: a pod it is sent
    is refused, a pod it is not sent is admitted. Yields the run id."""
    url = f"https://127.0.0.1:{free_port()}/mutate-v1-pod"
    with registered(kube_env, api, mutating, url, "Fail") as (run, _):
        yield run


def pod(run: str, labels: dict[str, str] | None = None, inject: str = "true") -> dict[str, Any]:
    """A pod annotated for injection the original's way: annotations only."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "scope-",
            "labels": {RUN: run, **(labels or {})},
            "annotations": {"stoker.io/inject": inject, "stoker.io/cr-name": "plant"},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "gateway", "image": "inductiveautomation/ignition:8.3"}],
        },
    }


def sent(core: client.CoreV1Api, namespace: str, body: dict[str, Any]) -> bool:
    """Whether the API server sends this pod's creation (a dry run) to the webhook."""
    try:
        core.create_namespaced_pod(namespace, body, dry_run="All")
    except ApiException as e:
        if DEAD not in str(e.body):
            raise
        return True
    return False


def namespace_with(kube_env: ControlPlane, api: client.ApiClient, name: str) -> str:
    """`name` (a system namespace the API server made) with a `default` ServiceAccount, which
    pod admission needs and no controller-manager creates here."""
    core = client.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespaced_service_account(
            name, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
        )
    return name


def test_by_default_the_pod_webhook_is_sent_annotated_pods_but_never_system_or_stoker_pods(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    home = kube_env.create_namespace(kube_api)  # the release namespace
    mutating = pod_webhook(helm, home)
    with refusing_when_sent(kube_env, kube_api, mutating) as run:
        # Annotations only, as the original documents: sent, once the API server has it.
        wait_until(lambda: sent(core, kube_namespace, pod(run)), timeout=20, what="webhook")
        for system in ("kube-system", "kube-node-lease"):
            assert not sent(core, namespace_with(kube_env, kube_api, system), pod(run))
        assert not sent(core, home, pod(run))
        # A pod not asking for the agent never waits on the webhook, wherever it is.
        plain = pod(run, inject="false")
        del plain["metadata"]["annotations"]
        assert not sent(core, kube_namespace, plain)
        assert not sent(core, kube_namespace, pod(run, inject="yes"))


def test_served_namespaces_and_extra_exclusions_scope_the_pod_webhook(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    home, other, excluded = (kube_env.create_namespace(kube_api) for _ in range(3))
    values = (
        f"namespaces={{{kube_namespace},{excluded},kube-system}},"
        f"webhook.excludeNamespaces={{{excluded}}}"
    )
    with refusing_when_sent(kube_env, kube_api, pod_webhook(helm, home, values)) as run:
        wait_until(lambda: sent(core, kube_namespace, pod(run)), timeout=20, what="webhook")
        assert not sent(core, other, pod(run))  # not served
        assert not sent(core, excluded, pod(run))
        # Listing kube-system as served never puts the webhook in its pods' path.
        assert not sent(core, namespace_with(kube_env, kube_api, "kube-system"), pod(run))


def test_the_pod_webhook_can_be_limited_to_labelled_namespaces(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    home, unlabelled = (kube_env.create_namespace(kube_api) for _ in range(2))
    core.patch_namespace(
        kube_namespace, {"metadata": {"labels": {"stoker.io/injection": "enabled"}}}
    )
    mutating = pod_webhook(helm, home, "webhook.requireNamespaceLabel=true")
    with refusing_when_sent(kube_env, kube_api, mutating) as run:
        wait_until(lambda: sent(core, kube_namespace, pod(run)), timeout=20, what="webhook")
        assert not sent(core, unlabelled, pod(run))


def test_the_pod_webhook_can_be_limited_to_labelled_pods(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    home = kube_env.create_namespace(kube_api)
    mutating = pod_webhook(helm, home, "webhook.requirePodLabel=true")
    labelled = {"stoker.io/inject": "true"}
    with refusing_when_sent(kube_env, kube_api, mutating) as run:
        wait_until(
            lambda: sent(core, kube_namespace, pod(run, labelled)), timeout=20, what="webhook"
        )
        assert not sent(core, kube_namespace, pod(run))  # annotated only


def test_a_hung_pod_webhook_delays_annotated_pods_by_its_short_timeout_and_no_other_pod(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    mutating = pod_webhook(helm, kube_env.create_namespace(kube_api))
    webhook = mutating["webhooks"][0]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] <= 5  # the API server's default is 10, its maximum 30
    # A webhook that takes connections and never answers: not even its TLS handshake.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as hung:
        url = f"https://127.0.0.1:{hung.getsockname()[1]}/mutate-v1-pod"
        with registered(kube_env, kube_api, mutating, url, "Ignore") as (run, name):
            before = fail_opens(kube_env, name)

            def created_past_the_hung_webhook() -> bool:
                started = time.monotonic()
                core.create_namespaced_pod(kube_namespace, pod(run), dry_run="All")
                # Liveness only: far above the 5 s timeout, far below a stall.
                assert time.monotonic() - started < 25
                return fail_opens(kube_env, name) > before

            wait_until(created_past_the_hung_webhook, timeout=60, what="a call to time out")
            # Pods that do not ask for the agent are not even sent: no call, no delay.
            calls = fail_opens(kube_env, name)
            core.create_namespaced_pod(kube_namespace, pod(run, inject="false"), dry_run="All")
            assert fail_opens(kube_env, name) == calls


def test_every_pod_the_chart_makes_is_admitted_under_the_restricted_pod_security_level(
    helm: str, kube_env: ControlPlane, kube_api: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_api)
    home = kube_env.create_namespace(kube_api)
    enforce = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn")}
    core.patch_namespace(home, {"metadata": {"labels": enforce}})
    objects = render_release(helm, "stoker", home, "receiver.enabled=true")
    for account in (o for o in objects if o["kind"] == "ServiceAccount"):
        core.create_namespaced_service_account(home, account)
    [test_pod] = [o for o in objects if o["kind"] == "Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    pods = [test_pod] + [
        {"apiVersion": "v1", "kind": "Pod", **o["spec"]["template"]}
        for o in objects
        if o["kind"] in ("Deployment", "Job")  # the Job: helm uninstall's post-delete hook
    ]
    assert len(pods) == 5
    for body in pods:
        body["metadata"] = {**body["metadata"], "generateName": "restricted-"}
        core.create_namespaced_pod(home, body, dry_run="All")
    # The level is enforced here: a pod that may run as root is refused.
    loose = {**test_pod, "spec": {**test_pod["spec"], "securityContext": {}}}
    loose["spec"]["containers"] = [
        {k: v for k, v in c.items() if k != "securityContext"}
        for c in test_pod["spec"]["containers"]
    ]
    with pytest.raises(ApiException, match="restricted"):
        core.create_namespaced_pod(home, loose, dry_run="All")


def run_helm_test(helm: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The helm test pod's command, as rendered, run here with `env` for its URLs."""
    [test_pod] = [o for o in render_release(helm, "stoker", "stoker-system") if o["kind"] == "Pod"]
    command = test_pod["spec"]["containers"][0]["command"]
    assert command[:2] == ["python3", "-c"]
    return subprocess.run(
        [sys.executable, "-I", "-c", command[2]],
        env={"PATH": os.environ["PATH"], "CHECK_SECONDS": "3", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_helm_test_passes_when_controller_and_webhook_answer_and_fails_naming_the_one_down(
    helm: str, kube_env: ControlPlane, tmp_path: Path
) -> None:
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1", registry=ControllerMetrics().registry)
    try:
        controller = f"http://127.0.0.1:{port}/metrics"
        with serving(kube_env.subprocess_env(), tmp_path) as (webhook, _):
            done = run_helm_test(helm, {"CONTROLLER_URL": controller, "WEBHOOK_URL": webhook})
            assert done.returncode == 0, done.stdout + done.stderr
            assert "ok   webhook" in done.stdout
        down = run_helm_test(helm, {"CONTROLLER_URL": controller, "WEBHOOK_URL": webhook})
        assert down.returncode == 1
        assert "ok   controller" in down.stdout
        assert f"FAIL webhook at {webhook}" in down.stdout
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
