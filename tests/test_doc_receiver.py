"""docs/receiver.md is true: every payload example gives the outcome written under it, the
documented signature is what the receiver checks (and what the documented shell line computes),
and every response body in its table is one the receiver really sends."""

from __future__ import annotations

import io
import json
import re
import subprocess
from typing import Any

import pytest

from conftest import ROOT
from stoker_core.errors import InvalidInput
from stoker_core.receiving import Secrets, authentic, parse
from stoker_k8s.intake import LATE
from stoker_k8s.receiver import Conflict, Receiver, make_app

DOC = (ROOT / "docs" / "receiver.md").read_text()
EXAMPLE = re.compile(r"```http\n(.*?)```\s*\n→ `([\w-]+)`(?: `([^`]*)`)?", re.DOTALL)
TRACKED = "main"  # the doc: "The examples below assume the GatewaySync tracks main"


def examples() -> list[tuple[dict[str, str], bytes, str, str | None]]:
    out = []
    for request, verb, ref in EXAMPLE.findall(DOC):
        head, _, body = request.partition("\n\n")
        lines = head.splitlines()
        assert lines[0].startswith("POST /webhook/"), lines[0]
        headers = dict(line.split(": ", 1) for line in lines[1:])
        out.append((headers, body.strip().encode(), verb, ref or None))
    return out


def test_the_doc_shows_an_example_per_provider() -> None:
    found = examples()
    assert len(found) >= 10
    named = {h.get("X-GitHub-Event") or h.get("X-Gitlab-Event") for h, *_ in found}
    assert {"push", "release", "ping", "Push Hook", "Tag Push Hook"} <= named
    bodies = b" ".join(body for _, body, *_ in found)
    assert b'"git.ref"' in bodies
    assert b'"freight"' in bodies


@pytest.mark.parametrize(("headers", "body", "verb", "ref"), examples())
def test_each_payload_example_has_the_documented_outcome(
    headers: dict[str, str], body: bytes, verb: str, ref: str | None
) -> None:
    if verb.isdigit():
        with pytest.raises(InvalidInput) as caught:
            parse(body, headers, TRACKED)
        assert verb == "400"
        assert caught.value.problems[0].message == ref
        return
    event = parse(body, headers, TRACKED)
    assert str(event.verb) == verb
    if ref is not None:
        assert event.ref == ref


def documented_signature() -> tuple[str, bytes, str]:
    found = re.search(r"key `([^`]+)`, the body `([^`]+)` is signed\s*```\s*(sha256=\w+)", DOC)
    assert found, "receiver.md should show a worked signature"
    return found[1], found[2].encode(), found[3]


def test_the_documented_signature_is_accepted_and_a_wrong_one_is_not() -> None:
    key, body, signature = documented_signature()
    assert authentic(body, {"X-Hub-Signature-256": signature}, Secrets(hmac_key=key))
    assert not authentic(body + b" ", {"X-Hub-Signature-256": signature}, Secrets(hmac_key=key))
    assert not authentic(body, {"X-Hub-Signature-256": signature}, Secrets())


def test_the_documented_shell_lines_compute_the_documented_signature() -> None:
    key, body, signature = documented_signature()
    blocks = re.findall(r"```\w*\n(.*?)```", DOC, re.DOTALL)
    block = next(b for b in blocks if "openssl" in b)
    lines = [line for line in block.splitlines() if not line.startswith("curl ")]
    script = "\n".join(lines) + '\nprintf "%s\\n%s" "$BODY" "$SIG"\n'
    done = subprocess.run(
        ["bash", "-c", script],
        env={"HMAC_KEY": key, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [body.decode(), signature]


class Store:
    """The receiver's port, in memory: one GatewaySync plant/plant tracking main."""

    def __init__(self) -> None:
        self.cr: dict[str, Any] = {
            "metadata": {"name": "plant", "namespace": "plant", "annotations": {}},
            "spec": {"git": {"ref": TRACKED}},
        }

    def get(self, namespace: str, name: str, *, fresh: bool = False) -> dict[str, Any] | None:
        return self.cr if (namespace, name) == ("plant", "plant") else None

    def annotate(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> None:
        self.cr["metadata"]["annotations"].update(annotations)

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        return {}


def test_every_documented_response_body_is_one_the_receiver_sends() -> None:
    now = [1000.0]
    receiver = Receiver(Store(), Secrets(token="t0ken"), clock=lambda: now[0])
    auth = {"Authorization": "Bearer t0ken"}
    github = {**auth, "X-GitHub-Event": "push"}
    sent: list[tuple[int, dict[str, Any]]] = [
        receiver.handle("plant", "plnat", b"{}", auth),
        receiver.handle("plant", "plant", b'{"ref": "v1"}', {}),
        receiver.handle("plant", "plant", b'{"ref": "refs/heads/main"}', github),
        receiver.handle("plant", "plant", b'{"ref":"v1.4.0"}', auth),
        receiver.handle("plant", "plant", b'{"ref":"v1.4.0"}', auth),
        receiver.handle("plant", "plant", b'{"version": "1.4.0"}', auth),
        receiver.handle("plant", "plant", b'{"ref": "   "}', auth),
    ]
    sent += [receiver.handle("plant", "plant", b"{}", auth) for _ in range(12)]
    sent += [receiver.handle("plant", "plant", b"{}", {}, "203.0.113.9") for _ in range(21)]
    sent.append((408, {"error": LATE}))  # answered by the serving front (stoker_k8s.intake)
    sent.append(_too_large(receiver))
    busy = Receiver(Busy(), Secrets(token="t0ken"))
    sent.append(busy.handle("plant", "plant", b'{"ref": "v9"}', auth))
    sent.append(_through_app(Receiver(Down(), Secrets(token="t0ken")), auth))
    table = DOC.split("## Responses", 1)[1].split("\n\n", 3)[2]
    rows = re.findall(r"^\| (\d{3}) \| `(\{.*?\})`", table, re.MULTILINE)
    assert len(rows) >= 7
    for status, body in rows:
        if "…" in body:
            continue
        assert (int(status), json.loads(body)) in sent, f"{status} {body} is never sent"


class Busy(Store):
    """Someone else writes the GatewaySync before every one of the receiver's writes."""

    def annotate(
        self, namespace: str, name: str, annotations: dict[str, str], resource_version: str
    ) -> None:
        raise Conflict("changed")


class Down(Store):
    """The API server does not answer."""

    def get(self, namespace: str, name: str, *, fresh: bool = False) -> dict[str, Any] | None:
        raise ConnectionError("connection refused")


def _through_app(receiver: Receiver, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    answer: list[str] = []
    environ = {
        "PATH_INFO": "/webhook/plant/plant",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": "2",
        "wsgi.input": io.BytesIO(b"{}"),
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()},
    }
    body = make_app(receiver)(environ, lambda status, headers: answer.append(status))
    return int(answer[0].split()[0]), json.loads(b"".join(body))


def _too_large(receiver: Receiver) -> tuple[int, dict[str, Any]]:
    answer: list[str] = []
    environ = {
        "PATH_INFO": "/webhook/plant/plant",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(2 * 1024 * 1024),
        "wsgi.input": io.BytesIO(b"x" * (2 * 1024 * 1024)),
    }
    body = make_app(receiver)(environ, lambda status, headers: answer.append(status))
    return int(answer[0].split()[0]), json.loads(b"".join(body))
