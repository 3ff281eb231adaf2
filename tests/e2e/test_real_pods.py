"""The cluster runs real pods from the images built offline, under the chart's image names."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from e2e.conftest import Cluster, chart_images

RESTRICTED = client.V1SecurityContext(
    run_as_non_root=True,
    read_only_root_filesystem=True,
    allow_privilege_escalation=False,
    capabilities=client.V1Capabilities(drop=["ALL"]),
    seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
)


def restricted_pod(name: str, image: str, script: str, **spec: object) -> client.V1Pod:
    """A pod running `script` in `image` under the restricted Pod Security level."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="main",
                    image=image,
                    image_pull_policy="IfNotPresent",
                    command=["/bin/sh", "-c", script],
                    security_context=RESTRICTED,
                    volume_mounts=[client.V1VolumeMount(name="tmp", mount_path="/tmp")],
                )
            ],
            volumes=[client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource())],
            termination_grace_period_seconds=0,
            **spec,
        ),
    )


def wait_for_pod(
    cluster: Cluster, namespace: str, name: str, phases: tuple[str, ...] = (), timeout: float = 120
) -> client.V1Pod:
    """The pod once its containers are all ready (or it reached one of `phases`)."""
    deadline = time.monotonic() + timeout
    pod = cluster.core.read_namespaced_pod(name, namespace)
    while time.monotonic() < deadline:
        pod = cluster.core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        if pod.status.phase == "Running" and statuses and all(s.ready for s in statuses):
            return pod
        if pod.status.phase in phases:
            return pod
        if pod.status.phase in ("Failed", "Succeeded"):
            break
        time.sleep(0.5)
    events = cluster.core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    )
    raise AssertionError(
        f"pod {namespace}/{name} is {pod.status.phase}, not Running: "
        f"{pod.status.container_statuses}; events: {[e.message for e in events.items]}"
    )


def test_the_node_holds_every_image_the_chart_names_so_if_not_present_never_pulls(
    cluster: Cluster,
) -> None:
    nodes = cluster.core.list_node().items
    on_node = {name for node in nodes for image in node.status.images or [] for name in image.names}
    assert set(chart_images().values()) <= on_node, on_node


def test_a_pod_of_the_agent_image_runs_stoker_as_non_root_under_the_restricted_level(
    cluster: Cluster, namespace: str
) -> None:
    image = chart_images()["agent"]
    script = (
        "stoker --version && stoker controller --help >/dev/null && id -u"
        " && touch /tmp/done && exec sleep 3600"
    )
    pod = restricted_pod("smoke", image, script)
    pod.spec.containers[0].readiness_probe = client.V1Probe(
        _exec=client.V1ExecAction(command=["cat", "/tmp/done"]), period_seconds=2
    )
    cluster.core.create_namespaced_pod(namespace, pod)

    wait_for_pod(cluster, namespace, "smoke")

    log = cluster.core.read_namespaced_pod_log("smoke", namespace)
    version, uid = log.splitlines()[-2:]
    assert version.startswith("stoker, version "), log
    assert uid == "65534", log


@pytest.fixture
def node_server(node_ip: str) -> Iterator[str]:
    """An HTTP server on the node's address, as the tests' Git servers will be; its URL."""

    class Pong(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"pong from the test process")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((node_ip, 0), Pong)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{node_ip}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_pod_reaches_a_server_the_tests_run_on_the_nodes_address(
    cluster: Cluster, namespace: str, node_server: str
) -> None:
    url = json.dumps(node_server)  # double quotes: the shell script single-quotes the program
    fetch = f"import urllib.request; print(urllib.request.urlopen({url}).read().decode())"
    pod = restricted_pod(
        "fetch", chart_images()["controller"], f"python3 -c '{fetch}'", restart_policy="Never"
    )
    cluster.core.create_namespaced_pod(namespace, pod)

    done = wait_for_pod(cluster, namespace, "fetch", phases=("Succeeded", "Failed"))

    log = cluster.core.read_namespaced_pod_log("fetch", namespace)
    assert done.status.phase == "Succeeded", log
    assert log.strip() == "pong from the test process"
