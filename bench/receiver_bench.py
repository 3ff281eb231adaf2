"""The push receiver under load: `stoker receiver` (gunicorn, TLS) against the real API server,
open loop from a separate process, against a trivial WSGI app under the same gunicorn and TLS
settings at the same rate.

The load mixes, in equal parts: a signed push to the tracked branch (the receiver reads the
GatewaySync and patches its refresh annotation), a signed push to another branch (read, answered
`ignored`), a request with a bad signature (read, 401) and a signed push for a GatewaySync that
does not exist (read, 404). It is spread over enough GatewaySyncs that the per-GatewaySync rate
limit (10/s) never answers instead of the app. Bad signatures all come from an address of their
own (127.0.0.2), so after the first 20 most are answered 429 by the per-address limit on failed
requests (H9), before any authentication work; both answers count as expected. (From the address
of the signed pushes they would soon have its every request answered 429: the limit is checked
before anything else, so an address that floods forgeries is refused whole.)

Goal (issue #7): p99 ≤ 2× the trivial app's, zero errors (an error is any other status than the
one expected for the kind, or no answer). `--quick`: 2 s at 10 requests/s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from results import Chart, Result, arguments  # noqa: E402
from servers import free_port, stop, tls_files, trivial_server, wait_up  # noqa: E402

from cluster import GROUP, PLURAL, VERSION, control_plane, gatewaysync, stoker  # noqa: E402

THREADS = 8  # `stoker receiver`'s default: one process, many threads
KEY = b"bench-hmac-key"
FORGER = "127.0.0.2"  # the bad signatures' own address (see the module's docstring)


def signed(payload: dict[str, Any], key: bytes = KEY) -> tuple[str, dict[str, str]]:
    """A GitHub push body and its headers (signature over the exact bytes)."""
    body = json.dumps(payload)
    signature = "sha256=" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"}


def kinds(namespace: str, crs: int) -> list[dict[str, Any]]:
    """The request mix, each kind spread over `crs` GatewaySyncs (one kind per request)."""
    out = []
    for i in range(crs):
        path = f"/webhook/{namespace}/site-{i}"
        tracked, tracked_h = signed({"ref": "refs/heads/main", "after": "a" * 40})
        other, other_h = signed({"ref": "refs/heads/feature", "after": "b" * 40})
        forged, forged_h = signed({"ref": "refs/heads/main", "after": "c" * 40}, key=b"wrong")
        out += [
            {"name": "push, tracked branch", "path": path, "body": tracked, "headers": tracked_h,
             "expect": 202, "unique_header": "X-GitHub-Delivery"},
            {"name": "push, other branch", "path": path, "body": other, "headers": other_h,
             "expect": 202, "unique_header": "X-GitHub-Delivery"},
            {"name": "bad signature", "path": path, "body": forged, "headers": forged_h,
             "expect": [401, 429], "unique_header": "X-GitHub-Delivery",
             "source": FORGER},
            {"name": "unknown GatewaySync", "path": f"/webhook/{namespace}/nope-{i}",
             "body": tracked, "headers": tracked_h, "expect": 404,
             "unique_header": "X-GitHub-Delivery"},
        ]  # fmt: skip
    return out


def main() -> int:
    args = arguments(__doc__).parse_args()
    rate, seconds = (10.0, 2.0) if args.quick else (50.0, 30.0)
    crs = max(2, int(rate / 4 / 2) + 1)  # each CR sees under half its rate limit
    result = Result("receiver", "Push receiver under load", "bench/receiver_bench.py", args.quick)
    with control_plane() as (work, plane, _, custom, namespace):
        for i in range(crs):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, gatewaysync(f"site-{i}", "https://git.invalid/r")
            )
        (work / "hmac").write_bytes(KEY)
        plan: dict[str, Any] = {"rate": rate, "seconds": seconds, "kinds": kinds(namespace, crs)}
        measured: dict[str, dict[str, Any]] = {}
        for app in ("trivial", "receiver"):
            cert, key, ca = tls_files(work, app)
            port = free_port()
            if app == "trivial":
                proc = trivial_server(port, cert, key, workers=1, threads=THREADS)
                for kind in plan["kinds"]:
                    kind["expect"], kind["was"] = 200, kind["expect"]
            else:
                proc = stoker(
                    ["receiver", "--bind", f"127.0.0.1:{port}", "--cert-file", str(cert),
                     "--key-file", str(key), "--hmac-secret-file", str(work / "hmac"),
                     "--threads", str(THREADS)],
                    plane.subprocess_env(),
                    work / "receiver.log",
                )  # fmt: skip
                for kind in plan["kinds"]:
                    kind["expect"] = kind.pop("was")
            base = f"https://127.0.0.1:{port}"
            try:
                wait_up(f"{base}/healthz", ca, proc)
                measured[app] = loadgen.run({**plan, "base": base, "ca": str(ca)})
            finally:
                stop(proc)
        annotated = sum(
            "stoker.io/refresh-requested-at"
            in (custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, f"site-{i}")
                ["metadata"].get("annotations") or {})
            for i in range(crs)
        )  # fmt: skip
    names = [k["name"] for k in plan["kinds"][:4]]
    result.description = (
        "`stoker receiver` reads the GatewaySync from the API server on every request (the "
        "secret choice depends on it) and patches it on a push to the tracked branch; the "
        "trivial app only reads the body. Same gunicorn (1 process, "
        f"{THREADS} threads, gthread with Stoker's reading front) and TLS settings, same rate "
        "and mix."
    )
    result.conditions = {
        "server": f"gunicorn, 1 worker × {THREADS} threads, TLS (EC P-256), loopback",
        "load": f"open loop at {rate:g} requests/s for {seconds:g} s from a separate process",
        "mix": "¼ each of " + ", ".join(names) + f" (bad signatures from {FORGER})",
        "GatewaySyncs": f"{crs} (+ {crs} unknown names)",
        "API server": "kube-apiserver + etcd on the same machine",
    }
    rows = []
    for app, data in measured.items():
        for name in [*names, "all"]:
            v = data[name]
            codes = ", ".join(f"{c}×{n}" for c, n in v["codes"].items())
            rows.append(
                [app, name, v["requests"], v["errors"], codes,
                 f"{v['p50_ms']:.1f}", f"{v['p99_ms']:.1f}"]
            )  # fmt: skip
    result.table(
        "Latency by request kind",
        ["app", "request", "requests", "errors", "answers", "p50 (ms)", "p99 (ms)"],
        rows,
    )
    result.findings.append(
        f"{annotated}/{crs} GatewaySyncs carry the refresh annotation after the run (the tracked "
        "pushes reached the API server)."
    )
    ratio = measured["receiver"]["all"]["p99_ms"] / max(measured["trivial"]["all"]["p99_ms"], 1e-3)
    result.goal("p99 receiver / trivial app (all kinds)", ratio, 2.0)
    result.goal("receiver errors", measured["receiver"]["all"]["errors"], 0, unit="")
    result.chart(
        Chart(
            file="receiver.png",
            title=f"Receiver vs trivial app, {rate:g} req/s open loop, TLS: p99 by request kind",
            kind="bar",
            xlabel="",
            ylabel="p99 (ms)",
            series={
                app: {
                    "x": [n.replace(", " if ", " in n else " ", "\n", 1) for n in [*names, "all"]],
                    "y": [round(data[n]["p99_ms"], 2) for n in [*names, "all"]],
                }
                for app, data in measured.items()
            },
        )
    )
    result.write(args.out)
    return result.exit_code()


if __name__ == "__main__":
    sys.exit(main())
