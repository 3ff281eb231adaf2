"""Open-loop HTTP(S) load from its own process (so the client never competes with the server for
a GIL): requests start on schedule whether or not earlier ones finished.

Reads a JSON plan on stdin and prints JSON results per request kind:

    {"base": "https://127.0.0.1:8443", "ca": "ca.pem", "rate": 50, "seconds": 30,
     "kinds": [{"name": "push", "path": "/webhook/ns/cr", "body": "...",
                "headers": {...}, "expect": 202, "unique_header": "X-GitHub-Delivery"}]}

Kinds are sent in turn (round robin). `unique_header`, when given, is set to a fresh value per
request (a delivery id, so the receiver's replay memory does not answer instead of the app).
`expect` is one status or a list of them. `source`, when given (for the plan, or for one kind),
is the local address requests come from (any 127.x.y.z on Linux loopback: another client, as the
server sees it).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import mean, percentile


def generate(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the plan; return {kind: {requests, errors, codes, p50_ms, p99_ms, mean_ms}}."""
    import requests

    kinds = plan["kinds"]
    rate, seconds = float(plan["rate"]), float(plan["seconds"])
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    codes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sent: dict[str, int] = defaultdict(int)
    lock = threading.Lock()
    local = threading.local()
    verify = plan.get("ca") or False

    def one(kind: dict[str, Any], n: int) -> None:
        source = kind.get("source") or plan.get("source")
        sessions = local.__dict__.setdefault("sessions", {})  # a thread's own, per address
        session = sessions.get(source) or sessions.setdefault(source, _session(source))
        expected = kind["expect"] if isinstance(kind["expect"], list) else [kind["expect"]]
        headers = {"Content-Type": "application/json", **kind.get("headers", {})}
        if kind.get("unique_header"):
            headers[kind["unique_header"]] = f"bench-{n}"
        start = time.perf_counter()
        try:
            reply = session.post(
                plan["base"] + kind["path"],
                data=kind["body"].encode(),
                verify=verify,
                timeout=10,
                headers=headers,
            )
            code = str(reply.status_code)
            ok = reply.status_code in expected
        except requests.RequestException as e:
            code, ok = type(e).__name__, False
        elapsed = time.perf_counter() - start
        with lock:
            codes[kind["name"]][code] += 1
            if ok:
                latencies[kind["name"]].append(elapsed)
            else:
                errors[kind["name"]] += 1

    threads = []
    begin = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        kind = kinds[i % len(kinds)]
        sent[kind["name"]] += 1
        thread = threading.Thread(target=one, args=(kind, i))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    everything = [x for v in latencies.values() for x in v]
    out = {
        k["name"]: _summary(
            sent[k["name"]], errors[k["name"]], codes[k["name"]], latencies[k["name"]]
        )
        for k in kinds
    }
    out["all"] = _summary(
        len(threads),
        sum(errors.values()),
        {c: sum(v.get(c, 0) for v in codes.values()) for v in codes.values() for c in v},
        everything,
    )
    return out


def _session(source: str | None) -> Any:
    """A requests Session, its connections from `source` when given."""
    import requests

    session = requests.Session()
    if source:

        class From(requests.adapters.HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                kwargs["source_address"] = (source, 0)
                super().init_poolmanager(*args, **kwargs)

        session.mount("https://", From())
        session.mount("http://", From())
    return session


def _summary(
    sent: int, errors: int, codes: dict[str, int], latencies: list[float]
) -> dict[str, Any]:
    return {
        "requests": sent,
        "errors": errors,
        "codes": dict(sorted(codes.items())),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": mean(latencies) * 1000,
        "samples_ms": [round(x * 1000, 3) for x in latencies],
    }


def run(plan: dict[str, Any]) -> dict[str, Any]:
    """Run the plan in a separate Python process and return its results."""
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        check=True,
    )
    results: dict[str, Any] = json.loads(done.stdout)
    return results


if __name__ == "__main__":
    print(json.dumps(generate(json.loads(sys.stdin.read()))))
