"""Hostile clients against `stoker webhook` and `stoker receiver` (gunicorn, TLS, the real API
server), in two parts.

1. Slow clients (H8): pod reviews and signed deliveries, open loop from a separate process,
   first alone, then while five times each server's request threads (workers × threads) are
   held by each of three kinds of slow connection: idle (nothing sent), trickling a request
   head, trickling a body, one byte every half second; one the server ends is opened again.
   Goal: p99 with them within 2× of p99 without, and no errors.
2. A forged flood (H9): 2,000 requests with a bad signature for one GatewaySync, from another
   address, while 13 signed GitHub deliveries for it arrive. Correctness only: no signed
   delivery answered 429, no 5xx, and the flood still limited (authentication tried only
   within the per-address budget, 429 for the rest).

Part 1 runs in rounds that alternate which condition comes first, samples pooled, so a change
in the machine's other load favours neither; a round outlasts the 10 s head deadline, so the
servers ending slow connections (and the clients opening them again) is part of the load.
`--quick`: one round of 3 s at 10 requests/s per condition, the same flood (under 60 s in all).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from admission_bench import review  # noqa: E402
from results import Chart, Result, arguments, percentile  # noqa: E402
from servers import free_port, stop, tls_files, wait_up  # noqa: E402

from cluster import GROUP, PLURAL, VERSION, control_plane, gatewaysync, stoker  # noqa: E402
from stoker_core.receiving import STRANGER_BURST, STRANGER_RATE  # noqa: E402
from support.slowclients import KINDS, SlowClients  # noqa: E402

KEY = b"bench-hmac-key"
WEBHOOK = {"workers": 2, "threads": 4}  # `stoker webhook`'s defaults
RECEIVER = {"workers": 1, "threads": 8}  # `stoker receiver`'s defaults
FORGED, SIGNED, FLOODERS = 2000, 13, 8


def signed(payload: dict[str, Any], key: bytes = KEY) -> tuple[str, dict[str, str]]:
    """A GitHub push body and its headers (signature over the exact bytes)."""
    body = json.dumps(payload)
    signature = "sha256=" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
    return body, {"X-Hub-Signature-256": signature, "X-GitHub-Event": "push"}


def start(work: Path, plane: Any, app: str) -> tuple[Any, str, Path]:
    """`stoker webhook` or `stoker receiver` with TLS at its default workers and threads."""
    cert, key, ca = tls_files(work, app)
    port = free_port()
    tls = ["--bind", f"127.0.0.1:{port}", "--cert-file", str(cert), "--key-file", str(key)]
    extra = ["--hmac-secret-file", str(work / "hmac")] if app == "receiver" else []
    proc = stoker([app, *tls, *extra], plane.subprocess_env(), work / f"{app}.log")
    base = f"https://127.0.0.1:{port}"
    wait_up(f"{base}/healthz", ca, proc)
    return proc, base, ca


def slow_part(
    base: str,
    ca: Path,
    kinds: list[dict[str, Any]],
    capacity: int,
    load: tuple[float, float, int],
) -> dict[str, dict[str, Any]]:
    """The load alone and with 5× `capacity` slow connections of each kind, in alternating
    rounds (so a drift in the machine's other load favours neither), samples pooled."""
    rate, seconds, rounds = load
    plan = {"base": base, "ca": str(ca), "rate": rate, "seconds": seconds, "kinds": kinds}
    loadgen.run({**plan, "seconds": 1.0})  # warm-up: caches filled, code paths run once
    port = int(base.rsplit(":", 1)[1])
    runs: dict[str, list[dict[str, Any]]] = {"alone": [], "slow clients": []}
    ended = 0
    for i in range(rounds):
        for condition in list(runs)[:: 1 if i % 2 == 0 else -1]:
            if condition == "alone":
                runs[condition].append(loadgen.run(plan)["all"])
                continue
            path = kinds[0]["path"]
            with SlowClients("127.0.0.1", port, ca=ca, path=path, count=5 * capacity) as slow:
                time.sleep(1)  # all connected and trickling
                runs[condition].append(loadgen.run(plan)["all"])
                ended += slow.ended
    out = {condition: pooled(parts) for condition, parts in runs.items()}
    out["slow clients"]["ended"] = ended
    return out


def pooled(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of several loadgen runs."""
    samples = [x for part in parts for x in part["samples_ms"]]
    codes: Counter[str] = Counter()
    for part in parts:
        codes.update(part["codes"])
    return {
        "requests": sum(p["requests"] for p in parts),
        "errors": sum(p["errors"] for p in parts),
        "codes": dict(sorted(codes.items())),
        "p50_ms": percentile(samples, 0.5),
        "p99_ms": percentile(samples, 0.99),
    }


def flood(base: str, ca: Path, path: str) -> tuple[Counter[int], list[int], float]:
    """FORGED bad signatures from 127.0.0.2 (FLOODERS threads, kept-alive connections) while
    SIGNED deliveries arrive from 127.0.0.1; (forged answers, signed answers, seconds)."""
    import requests

    forged_body, forged_headers = signed({"ref": "refs/heads/main", "after": "f" * 40}, b"guess")
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def forge(worker: int) -> None:
        session = loadgen._session("127.0.0.2")
        for n in range(FORGED // FLOODERS):
            headers = {**forged_headers, "X-GitHub-Delivery": f"forged-{worker}-{n}"}
            try:
                code = session.post(
                    base + path, data=forged_body, headers=headers, verify=str(ca), timeout=10
                ).status_code
            except requests.RequestException:
                code = 0
            with lock:
                answers[code] += 1

    threads = [threading.Thread(target=forge, args=(i,)) for i in range(FLOODERS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    codes = []
    for i in range(SIGNED):
        time.sleep(0.1)
        body, headers = signed({"ref": "refs/heads/main", "after": f"{i:040d}"})
        reply = requests.post(
            base + path,
            data=body,
            headers={**headers, "X-GitHub-Delivery": f"github-{i}"},
            verify=str(ca),
            timeout=10,
        )
        codes.append(reply.status_code)
    for thread in threads:
        thread.join()
    return answers, codes, time.monotonic() - began


def main() -> int:
    args = arguments(__doc__).parse_args()
    rate, seconds, rounds = (10.0, 3.0, 1) if args.quick else (20.0, 12.0, 3)
    crs = max(2, int(rate / 2))  # each GatewaySync sees under one signed delivery a second
    result = Result("abuse", "Slow clients and forged floods", "bench/abuse_bench.py", args.quick)
    with control_plane() as (work, plane, _, custom, namespace):
        for i in range(crs):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, gatewaysync(f"site-{i}", "https://git.invalid/r")
            )
        (work / "hmac").write_bytes(KEY)
        pod = json.loads(review())
        pod["request"]["namespace"] = namespace
        tracked, tracked_h = signed({"ref": "refs/heads/main", "after": "a" * 40})
        other, other_h = signed({"ref": "refs/heads/feature", "after": "b" * 40})
        loads = {
            "webhook": (WEBHOOK, [{"name": "pod review", "path": "/mutate-v1-pod",
                                   "body": json.dumps(pod), "expect": 200}]),
            "receiver": (RECEIVER, [
                {"name": name, "path": f"/webhook/{namespace}/site-{i}", "body": body,
                 "headers": headers, "expect": 202, "unique_header": "X-GitHub-Delivery"}
                for i in range(crs)
                for name, body, headers in (("tracked", tracked, tracked_h),
                                            ("other", other, other_h))
            ]),
        }  # fmt: skip
        measured: dict[str, dict[str, dict[str, Any]]] = {}
        for app, (server, kinds) in loads.items():
            proc, base, ca = start(work, plane, app)
            try:
                capacity = server["workers"] * server["threads"]
                measured[app] = slow_part(base, ca, kinds, capacity, (rate, seconds, rounds))
                if app == "receiver":
                    forged, signed_codes, flood_s = flood(base, ca, f"/webhook/{namespace}/site-0")
            finally:
                stop(proc)
    report(result, measured, forged, signed_codes, flood_s, rate, (seconds, rounds))
    result.write(args.out)
    return result.exit_code()


def report(
    result: Result,
    measured: dict[str, dict[str, dict[str, Any]]],
    forged: Counter[int],
    signed_codes: list[int],
    flood_s: float,
    rate: float,
    timing: tuple[float, int],
) -> None:
    """Tables, goals and a chart for both parts."""
    seconds, rounds = timing
    result.description = (
        "Part 1: pod reviews (`stoker webhook`, which lists GatewaySyncs from the API server "
        "per review) and signed GitHub pushes (`stoker receiver`, which patches the "
        "GatewaySync for a push to the tracked branch), alone and while slow connections hold "
        f"five times each server's request threads for each of {len(KINDS)} kinds "
        f"({', '.join(KINDS)}). Part 2: {FORGED:,} forged requests against one GatewaySync "
        f"while {SIGNED} signed deliveries for it arrive."
    )
    result.conditions = {
        "webhook": f"gunicorn, {WEBHOOK['workers']} workers × {WEBHOOK['threads']} threads, "
        f"TLS; {5 * WEBHOOK['workers'] * WEBHOOK['threads']} slow connections of each kind",
        "receiver": f"gunicorn, 1 worker × {RECEIVER['threads']} threads, TLS; "
        f"{5 * RECEIVER['threads']} slow connections of each kind",
        "load": f"open loop at {rate:g} requests/s from a separate process, a new TLS connection "
        f"per request; {rounds} round(s) of {seconds:g} s alone and {seconds:g} s with slow "
        "clients, alternating which comes first, samples pooled",
        "flood": f"{FLOODERS} threads from 127.0.0.2 with kept-alive connections; signed "
        "deliveries from 127.0.0.1",
        "API server": "kube-apiserver + etcd on the same machine",
    }
    rows = []
    for app, parts in measured.items():
        for part, v in parts.items():
            codes = ", ".join(f"{c}×{n}" for c, n in v["codes"].items())
            rows.append(
                [app, part, v["requests"], v["errors"], codes,
                 f"{v['p50_ms']:.1f}", f"{v['p99_ms']:.1f}", v.get("ended", "")]
            )  # fmt: skip
    result.table(
        "Part 1: latency alone and with slow clients",
        ["server", "condition", "requests", "errors", "answers", "p50 (ms)", "p99 (ms)",
         "slow connections the server ended"],
        rows,
    )  # fmt: skip
    budget = STRANGER_BURST + STRANGER_RATE * flood_s + FLOODERS  # + those checked at once
    result.table(
        "Part 2: a forged flood",
        ["requests", "answers", "seconds"],
        [
            ["forged", ", ".join(f"{c}×{n}" for c, n in sorted(forged.items())), f"{flood_s:.1f}"],
            ["signed", ", ".join(f"{c}×{n}" for c, n in sorted(Counter(signed_codes).items())), ""],
        ],
    )
    for app, parts in measured.items():
        ratio = parts["slow clients"]["p99_ms"] / max(parts["alone"]["p99_ms"], 1e-3)
        result.goal(f"{app}: p99 with slow clients / alone", ratio, 2.0)
        result.goal(f"{app}: errors with slow clients", parts["slow clients"]["errors"], 0, unit="")
    result.goal("flood: signed deliveries answered 429", signed_codes.count(429), 0, unit="")
    fivexx = sum(n for c, n in forged.items() if c >= 500 or c == 0)
    fivexx += sum(c >= 500 for c in signed_codes)
    result.goal("flood: 5xx or no answer", fivexx, 0, unit="")
    result.goal(
        "flood: forged requests that reached authentication / per-address budget",
        forged[401] / budget,
        1.0,
        note=f"budget {STRANGER_BURST:g} + {STRANGER_RATE:g}/s × {flood_s:.1f} s + {FLOODERS} "
        "in flight when it ran out; the rest 429",
    )
    result.findings.append(
        f"{signed_codes.count(202)}/{SIGNED} signed deliveries accepted during the flood; "
        f"{forged[429]:,} of {sum(forged.values()):,} forged requests answered 429 before any "
        "authentication work."
    )
    result.chart(
        Chart(
            file="abuse.png",
            title="p99 alone and with idle and trickling connections at 5× capacity, TLS",
            kind="bar",
            xlabel="",
            ylabel="p99 (ms)",
            series={
                part: {"x": list(measured), "y": [round(p[part]["p99_ms"], 2) for p in
                                                  measured.values()]}
                for part in ("alone", "slow clients")
            },
        )
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
