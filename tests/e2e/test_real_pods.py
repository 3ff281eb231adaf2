"""The cluster runs real pods from the images built offline, under the chart's image names."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from kubernetes import client

from e2e.conftest import Cluster, chart_images, register_name

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
    """The pod once it reached one of `phases`, or without phases once its containers are ready."""
    deadline = time.monotonic() + timeout
    pod = cluster.core.read_namespaced_pod(name, namespace)
    while time.monotonic() < deadline:
        pod = cluster.core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        if phases and pod.status.phase in phases:
            return pod
        ready = pod.status.phase == "Running" and statuses and all(s.ready for s in statuses)
        if not phases and ready:
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


def wait_until_served(url: str, timeout: float = 60) -> None:
    """Until `url` answers (from the test process: kube-proxy's rules cover it too)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


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


def test_pods_reach_the_tests_servers_by_service_name_and_by_the_names_the_tests_register(
    cluster: Cluster, namespace: str, node_server: str, node_ip: str
) -> None:
    port = int(node_server.rsplit(":", 1)[1].strip("/"))
    service = cluster.core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="tests"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80, target_port=port)]),
        ),
    )
    client.DiscoveryV1Api(cluster.api).create_namespaced_endpoint_slice(
        namespace,
        client.V1EndpointSlice(
            metadata=client.V1ObjectMeta(
                name="tests-1", labels={"kubernetes.io/service-name": "tests"}
            ),
            address_type="IPv4",
            endpoints=[client.V1Endpoint(addresses=[node_ip])],
            ports=[client.DiscoveryV1EndpointPort(port=port, protocol="TCP")],
        ),
    )
    wait_until_served(f"http://{service.spec.cluster_ip}/")  # kube-proxy has its rules
    register_name(f"git-{namespace}.e2e.test", node_ip)
    urls = [
        f"http://tests.{namespace}.svc.cluster.local/",  # the original e2e's kind of name
        "http://tests/",  # the pod's search domains
        f"http://git-{namespace}.e2e.test:{port}/",  # a name the tests registered
    ]
    fetch = (
        "import urllib.request\n"
        f"for url in {json.dumps(urls)}:\n"
        "    print(urllib.request.urlopen(url, timeout=10).read().decode())"
    )
    pod = restricted_pod(
        "names", chart_images()["controller"], f"python3 -c '{fetch}'", restart_policy="Never"
    )
    cluster.core.create_namespaced_pod(namespace, pod)

    done = wait_for_pod(cluster, namespace, "names", phases=("Succeeded", "Failed"))

    log = cluster.core.read_namespaced_pod_log("names", namespace)
    assert done.status.phase == "Succeeded", log
    assert log.splitlines() == ["pong from the test process"] * 3
