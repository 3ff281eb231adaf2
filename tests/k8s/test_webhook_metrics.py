"""The admission webhook's /metrics under gunicorn with two worker processes: whichever worker
answers a scrape, it reports the pods every worker admitted (counts add up across workers), and
the files that hold the counts go when it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support.kubecerts import CertificateAuthority
from support.kubeenv import ControlPlane, free_port, wait_until

pytestmark = pytest.mark.kube


def review(namespace: str, uid: str) -> dict[str, object]:
    """A pod CREATE asking for no agent: admitted untouched ("skipped")."""
    pod = {"metadata": {"name": f"pod-{uid}"}, "spec": {"containers": [{"name": "c"}]}}
    request = {"uid": uid, "namespace": namespace, "operation": "CREATE", "object": pod}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def workers_of(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # it has exited
        return []
    return [int(c) for c in children]


@pytest.fixture
def webhook(kube_env: ControlPlane, tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    """`stoker webhook --workers 2` over TLS: its URL, CA file and master PID."""
    ca = CertificateAuthority("stoker-webhook-ca")
    cert, key = ca.issue_server("127.0.0.1").write(tmp_path, "webhook")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    port = free_port()
    argv = [sys.executable, "-m", "stoker_agent.cli", "webhook", "--bind", f"127.0.0.1:{port}"]
    argv += ["--cert-file", str(cert), "--key-file", str(key), "--workers", "2"]
    env = {k: v for k, v in kube_env.subprocess_env().items() if "MULTIPROC" not in k.upper()}
    with (tmp_path / "webhook.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"

    def up() -> bool:
        try:
            healthy = requests.get(f"{url}/healthz", verify=str(ca_file), timeout=2).ok
        except requests.RequestException:
            return False
        return healthy and len(workers_of(proc.pid)) == 2

    try:
        wait_until(up, timeout=30, what="stoker webhook and its two workers")
        yield url, str(ca_file), proc.pid
    finally:
        for worker in workers_of(proc.pid) if proc.poll() is None else []:
            os.kill(worker, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=20)


def skipped(text: str, namespace: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "stoker_webhook_injector_injections_total" and sample.labels == {
                "namespace": namespace,
                "result": "skipped",
            }:
                return sample.value
    return 0.0


def test_injection_counts_add_up_across_gunicorn_workers(
    webhook: tuple[str, str, int], kube_namespace: str
) -> None:
    url, ca_file, master = webhook
    first, second = workers_of(master)
    sent = 0
    # Each worker in turn is the only one accepting: the other is stopped meanwhile.
    for stopped, count in ((second, 5), (first, 7)):
        os.kill(stopped, signal.SIGSTOP)
        try:
            for _ in range(count):
                sent += 1
                answer = requests.post(
                    f"{url}/mutate-v1-pod",
                    json=review(kube_namespace, f"u{sent}"),
                    verify=ca_file,
                    timeout=10,
                )
                assert answer.json()["response"]["allowed"] is True
        finally:
            os.kill(stopped, signal.SIGCONT)
    for _ in range(8):  # scrapes land on either worker; every one sees all the admissions
        scrape = requests.get(f"{url}/metrics", verify=ca_file, timeout=10)
        assert scrape.status_code == 200
        assert skipped(scrape.text, kube_namespace) == sent == 12
    [files] = [  # the workers' counts, in the webhook's own private directory
        Path(line.split(maxsplit=5)[5])
        for line in Path(f"/proc/{first}/maps").read_text().splitlines()
        if "stoker-webhook-metrics-" in line
    ][:1]
    os.kill(master, signal.SIGTERM)
    wait_until(lambda: not files.parent.exists(), timeout=20, what="the files to go at exit")


FLOOD = """
from prometheus_client.parser import text_string_to_metric_families
from stoker_k8s.metrics import MAX_NAMESPACES, WebhookMetrics

metrics = WebhookMetrics.shared()
try:
    for i in range(MAX_NAMESPACES + 300):  # forged reviews, each naming a new namespace
        metrics.admitted(f"forged-{i:04}", "skipped")
    namespaces = {
        sample.labels["namespace"]: sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.name.endswith("_total")
    }
finally:
    metrics.close()
print(len(namespaces), namespaces.get("_other"), MAX_NAMESPACES)
"""


def test_forged_namespaces_cannot_grow_the_webhook_series_without_bound() -> None:
    # A process of its own: multiprocess mode changes prometheus-client for the whole process.
    done = subprocess.run(
        [sys.executable, "-c", FLOOD], capture_output=True, text=True, check=True, timeout=60
    )
    series, other, cap = done.stdout.split()
    assert int(series) == int(cap) + 1  # the first MAX_NAMESPACES, and `_other`
    assert float(other) == 300
