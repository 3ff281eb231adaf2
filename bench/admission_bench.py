"""Admission webhook latency under gunicorn with TLS, against a trivial WSGI app under the same
gunicorn and TLS settings, at the same fixed open-loop rate, from a separate process.

Goal (Kubernetes issue #7): p99 of the webhook ≤ 2× p99 of the trivial app, and zero errors.
`--quick` runs a few seconds at a low rate (what `make test` runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from results import Chart, Result, arguments  # noqa: E402
from servers import TESTS, free_port, stop, tls_files, trivial_server, wait_up  # noqa: E402

WORKERS, THREADS = 2, 4  # `stoker webhook`'s defaults; the trivial app gets the same
WEBHOOK = r"""
import sys
sys.path.insert(0, sys.argv[4])
from core.helpers import manifest_with
from stoker_core.validation import load
from stoker_k8s.admission import make_app
from stoker_k8s.gunicorn import serve
gs = load(manifest_with({"default": {"mappings": [{"source": "p", "destination": "projects"}]}}))
app = make_app(lambda ns: {"site": gs})
serve(app, bind=f"127.0.0.1:{sys.argv[1]}", cert_file=sys.argv[2], key_file=sys.argv[3],
      workers=int(sys.argv[5]), threads=int(sys.argv[6]))
"""


def review() -> str:
    """An AdmissionReview for a pod CREATE that asks for injection."""
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
    )


def measure(kind: str, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    """Start one server, load it from another process, stop it; the load's results."""
    cert, key, ca = tls_files(work, kind)
    port = free_port()
    if kind == "webhook":
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WEBHOOK,
                str(port),
                str(cert),
                str(key),
                str(TESTS),
                str(WORKERS),
                str(THREADS),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    else:
        proc = trivial_server(port, cert, key, workers=WORKERS, threads=THREADS)
    base = f"https://127.0.0.1:{port}"
    try:
        wait_up(f"{base}/healthz", ca, proc)
        plan = {
            "base": base,
            "ca": str(ca),
            "rate": rate,
            "seconds": seconds,
            "kinds": [{"name": kind, "path": "/mutate-v1-pod", "body": review(), "expect": 200}],
        }
        return loadgen.run(plan)[kind]
    finally:
        stop(proc)


def main() -> int:
    args = arguments(__doc__).parse_args()
    rate, seconds = (10.0, 2.0) if args.quick else (50.0, 30.0)
    result = Result(
        "admission", "Admission webhook latency", "bench/admission_bench.py", args.quick
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = {kind: measure(kind, rate, seconds, Path(tmp)) for kind in ("trivial", "webhook")}
    result.description = (
        "The webhook answers a pod CREATE with the injection patch (its GatewaySync list comes "
        "from memory here, so the API server's latency is not part of the figure), against a "
        "trivial WSGI app under the same gunicorn and TLS settings at the same rate."
    )
    result.conditions = {
        "server": f"gunicorn, {WORKERS} workers × {THREADS} threads (gthread with Stoker's "
        "reading front, both apps), TLS (EC P-256), loopback",
        "load": f"open loop at {rate:g} requests/s for {seconds:g} s from a separate process",
    }
    result.table(
        "Latency",
        ["app", "requests", "errors", "p50 (ms)", "p99 (ms)"],
        [
            [k, v["requests"], v["errors"], f"{v['p50_ms']:.1f}", f"{v['p99_ms']:.1f}"]
            for k, v in results.items()
        ],
    )
    ratio = results["webhook"]["p99_ms"] / max(results["trivial"]["p99_ms"], 0.001)
    result.goal("p99 webhook / trivial app", ratio, 2.0)
    result.goal("webhook errors", results["webhook"]["errors"], 0, unit="")
    result.chart(
        Chart(
            file="admission.png",
            title=f"Admission webhook vs trivial app, {rate:g} req/s open loop, TLS",
            kind="bar",
            xlabel="",
            ylabel="ms",
            series={
                q: {"x": list(results), "y": [round(v[f"{q}_ms"], 2) for v in results.values()]}
                for q in ("p50", "p99")
            },
        )
    )
    result.write(args.out)
    return result.exit_code()


if __name__ == "__main__":
    sys.exit(main())
