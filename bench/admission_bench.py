"""Admission webhook latency under gunicorn with TLS, against a trivial WSGI app under the same
gunicorn and TLS settings, at the same fixed open-loop rate, from a separate process.

Goal (Kubernetes issue #7): p99 of the webhook ≤ 2× p99 of the trivial app, and zero errors.
`--quick` runs a few seconds at a low rate (what `make test` runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER = r"""
import sys, json
sys.path.insert(0, sys.argv[5])
from core.helpers import manifest_with
from stoker_core.validation import load
from stoker_k8s.admission import make_app
from stoker_k8s.gunicorn import serve
gs = load(manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}}))

def trivial(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    body = b'{"ok": true}'
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]

app = make_app(lambda ns: {"site": gs}) if sys.argv[1] == "webhook" else trivial
serve(app, bind=f"127.0.0.1:{sys.argv[2]}", cert_file=sys.argv[3], key_file=sys.argv[4], workers=2)
"""


def review() -> bytes:
    pod = {
        "metadata": {"name": "ignition-0", "annotations": {"stoker.io/inject": "true"}},
        "spec": {
            "containers": [
                {"name": "gateway", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "namespace": "plant", "operation": "CREATE", "object": pod},
        }
    ).encode()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_generator(url: str, ca: str, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: requests start on schedule whether or not earlier ones finished."""
    import requests

    body = review()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    session_local = threading.local()

    def one() -> None:
        nonlocal errors
        session = getattr(session_local, "s", None) or requests.Session()
        session_local.s = session
        start = time.perf_counter()
        try:
            reply = session.post(
                url, data=body, verify=ca, timeout=10, headers={"Content-Type": "application/json"}
            )
            ok = reply.status_code == 200
        except requests.RequestException:
            ok = False
        with lock:
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    threads = []
    begin = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=one)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {
        "requests": len(threads),
        "errors": errors,
        "p50_ms": pick(0.5),
        "p99_ms": pick(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else 0.0,
    }


def measure(kind: str, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from support.kubecerts import CertificateAuthority

    ca = CertificateAuthority("bench-ca")
    cert, key = ca.issue_server("127.0.0.1").write(work, kind)
    ca_file = work / f"{kind}-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, kind, str(port), str(cert), str(key), str(ROOT / "tests")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import requests

        url = f"https://127.0.0.1:{port}/mutate-v1-pod"
        for _ in range(100):
            try:
                requests.post(url, data=review(), verify=str(ca_file), timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.1)
        # The load runs in its own process, so the client never competes with the server's GIL.
        done = subprocess.run(
            [
                sys.executable,
                str(Path(__file__)),
                "--generate",
                url,
                str(ca_file),
                str(rate),
                str(seconds),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--generate", nargs=4)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if args.generate:
        url, ca, rate, seconds = args.generate
        print(json.dumps(load_generator(url, ca, float(rate), float(seconds))))
        return 0
    rate, seconds = (10.0, 2.0) if args.quick else (50.0, 30.0)
    with tempfile.TemporaryDirectory() as tmp:
        results = {kind: measure(kind, rate, seconds, Path(tmp)) for kind in ("trivial", "webhook")}
    ratio = results["webhook"]["p99_ms"] / max(results["trivial"]["p99_ms"], 0.001)
    met = ratio <= 2.0 and results["webhook"]["errors"] == 0
    lines = [
        "## Admission webhook latency",
        "",
        f"gunicorn, 2 sync workers, TLS (EC P-256), loopback; open loop at {rate:g} requests/s for "
        f"{seconds:g} s from a separate process; {os.cpu_count()} cores. The webhook answers a pod "
        "CREATE with the injection patch (its GatewaySync list comes from memory here, so the API "
        "server's latency is not part of the figure).",
        "",
        "| app | requests | errors | p50 (ms) | p99 (ms) |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {k} | {v['requests']} | {v['errors']} | {v['p50_ms']:.1f} | {v['p99_ms']:.1f} |"
            for k, v in results.items()
        ),
        "",
        f"p99 ratio webhook / trivial: **{ratio:.2f}** (goal ≤ 2, zero errors): "
        f"{'met' if met else 'MISSED'}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.report:
        args.report.write_text(text)
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
