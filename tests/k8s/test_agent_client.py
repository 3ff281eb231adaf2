"""The agent's own API client (stoker_k8s.agentapi, apiaccess): `stoker agent` never imports the
`kubernetes` package; each refusal or silence of the API server is the TemporaryError the loop
retries, worded as before; answers are bounded; the watch resumes from bookmarks and relists on
410 Gone; a kubeconfig gives a token, a token file or a client certificate. The real API server
is exercised by test_e2e, test_agent_identity and test_agent_api_outage; here a small HTTP
server on loopback plays the wire, for what a real one will not do on demand."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from stoker_core.errors import TemporaryError
from stoker_k8s.agentapi import MAX_ANSWER, AgentApi, Gone
from stoker_k8s.apiaccess import Access, choose
from stoker_k8s.kubeflags import ClusterUnavailable
from support.kubeenv import free_port

# Import what `stoker agent` imports, with the kubernetes package refusing to load.
WITHOUT_KUBERNETES = """\
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "kubernetes":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
import click
from stoker_agent.cli import group
assert group.get_command(click.Context(group), "agent") is not None
import stoker_k8s.agentapi, stoker_k8s.agentports, stoker_k8s.apiaccess
print(sorted(m for m in sys.modules if m.startswith("kubernetes")))
"""


def test_the_agent_command_loads_without_the_kubernetes_package() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_KUBERNETES],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


Reply = tuple[int, bytes]


@pytest.fixture
def wire() -> Iterator[tuple[str, list[dict[str, Any]], list[Callable[[dict[str, Any]], Reply]]]]:
    """A loopback HTTP server answering each request with the next scripted reply; every
    request is recorded (method, path, query, Authorization header)."""
    seen: list[dict[str, Any]] = []
    script: list[Callable[[dict[str, Any]], Reply]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlsplit(self.path)
            request = {
                "method": self.command,
                "path": url.path,
                "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                "auth": self.headers.get("Authorization"),
            }
            length = int(self.headers.get("Content-Length") or 0)
            request["body"] = json.loads(self.rfile.read(length)) if length else None
            seen.append(request)
            status, body = script.pop(0)(request) if script else (500, b"{}")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen, script
    finally:
        server.shutdown()
        server.server_close()


def reply(status: int, body: Any) -> Callable[[dict[str, Any]], Reply]:
    return lambda request: (status, json.dumps(body).encode())


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (401, "reading pod gw-0: the API server does not accept the agent's token"),
        (403, "reading pod gw-0: forbidden; the controller grants this pod's agent access"),
        (404, "reading pod gw-0: the API server answered 404 Not Found"),
        (500, "reading pod gw-0: the API server answered 500 Internal Server Error"),
    ],
)
def test_each_refusal_is_a_temporary_error_that_says_what_to_fix(
    wire: Any, status: int, says: str
) -> None:
    url, _, script = wire
    script.append(reply(status, {"kind": "Status"}))
    with pytest.raises(TemporaryError) as raised:
        AgentApi(Access(server=url)).read_pod("plant", "gw-0", doing="reading pod gw-0")
    assert str(raised.value).startswith(says)


def test_a_missing_configmap_is_none_and_a_silent_server_did_not_answer(wire: Any) -> None:
    url, _, script = wire
    script.append(reply(404, {"kind": "Status"}))
    api = AgentApi(Access(server=url))
    assert api.read_config_map("plant", "m", doing="reading") is None
    closed = AgentApi(Access(server=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(TemporaryError, match=r"^reading: the API server did not answer \("):
        closed.read_config_map("plant", "m", doing="reading")
    # Named as requests named it, though the call goes to its urllib3 pool unprepared.
    with pytest.raises(TemporaryError, match=r"did not answer \(ConnectionError\)$"):
        closed.replace_config_map("plant", "m", {}, doing="replacing")


def test_an_answer_over_the_bound_is_refused_unread(wire: Any) -> None:
    url, _, script = wire
    script.append(lambda request: (200, b'{"data": {"x": "' + b"a" * MAX_ANSWER + b'"}}'))
    with pytest.raises(TemporaryError, match="answer is over 4 MiB"):
        AgentApi(Access(server=url)).read_config_map("plant", "m", doing="reading")


def test_the_token_file_is_read_again_before_every_request(wire: Any, tmp_path: Path) -> None:
    url, seen, script = wire
    token = tmp_path / "token"
    api = AgentApi(Access(server=url, token_file=str(token)))
    with pytest.raises(TemporaryError, match=r"API token .* is not there yet"):
        api.read_config_map("plant", "m", doing="reading")
    assert seen == []  # nothing is sent without a token
    for value in ("first", "renewed"):
        token.write_text(value + "\n")
        script.append(reply(200, {"metadata": {"resourceVersion": "1"}}))
        api.read_config_map("plant", "m", doing="reading")
    assert [r["auth"] for r in seen] == ["Bearer first", "Bearer renewed"]


def test_a_replace_sends_the_body_and_a_missing_target_is_none(wire: Any) -> None:
    url, seen, script = wire
    script += [reply(200, {"metadata": {"name": "s"}}), reply(404, {})]
    api = AgentApi(Access(server=url))
    body = {"metadata": {"name": "s"}, "data": {"k": "v"}}
    assert api.replace_config_map("plant", "s", body, doing="w") == {"metadata": {"name": "s"}}
    assert api.replace_config_map("plant", "s", body, doing="w") is None
    assert [(r["method"], r["path"], r["body"]) for r in seen] == [
        ("PUT", "/api/v1/namespaces/plant/configmaps/s", body)
    ] * 2


def events(*lines: dict[str, Any]) -> Callable[[dict[str, Any]], Reply]:
    return lambda request: (200, b"".join(json.dumps(e).encode() + b"\n" for e in lines))


def test_the_watch_resumes_from_bookmarks_and_ends_on_410_gone(wire: Any) -> None:
    url, seen, script = wire
    cm = {"metadata": {"name": "m", "resourceVersion": "8"}}
    script += [
        reply(200, {"metadata": {"resourceVersion": "5"}, "items": []}),
        events(
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
            {"type": "MODIFIED", "object": cm},
        ),
        events({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Gone"}}),
    ]
    changes: list[int] = []
    with pytest.raises(Gone):
        AgentApi(Access(server=url)).list_and_watch(
            "plant", "m", lambda: changes.append(1), threading.Event(), doing="watching"
        )
    assert len(changes) == 2  # the listing and the change, not the bookmark
    assert [r["query"].get("resourceVersion") for r in seen] == [None, "5", "8"]
    assert {r["query"]["fieldSelector"] for r in seen} == {"metadata.name=m"}
    assert [r["query"].get("allowWatchBookmarks") for r in seen[1:]] == ["true", "true"]


def kubeconfig(tmp_path: Path, user: dict[str, Any]) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:6443/",
                            "certificate-authority-data": base64.b64encode(b"CA").decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_a_kubeconfig_gives_a_token_file_or_a_client_certificate(tmp_path: Path) -> None:
    access = choose(str(kubeconfig(tmp_path, {"tokenFile": "token"})), None, {})
    assert (access.server, access.token_file) == ("https://127.0.0.1:6443", str(tmp_path / "token"))
    assert isinstance(access.verify, str)
    assert Path(access.verify).read_bytes() == b"CA"
    data = {"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}
    access = choose(str(kubeconfig(tmp_path, data)), "x", {})
    assert access.cert is not None
    assert [Path(p).read_bytes() for p in access.cert] == [b"CERT", b"KEY"]


@pytest.mark.parametrize(
    ("user", "context", "says"),
    [
        ({"exec": {"command": "aws"}}, None, "signs in with exec, which stoker agent does not"),
        ({"token": "t"}, "nope", "no context 'nope' in it; check --kubeconfig and --context"),
    ],
)
def test_a_kubeconfig_the_agent_cannot_use_is_one_line_with_the_fix(
    tmp_path: Path, user: dict[str, Any], context: str | None, says: str
) -> None:
    with pytest.raises(ClusterUnavailable, match=says):
        choose(str(kubeconfig(tmp_path, user)), context, {})


def test_in_a_pod_the_agent_uses_its_own_token_file_not_the_kubeconfig() -> None:
    environ = {
        "KUBERNETES_SERVICE_HOST": "fd00::1",
        "KUBERNETES_SERVICE_PORT": "443",
        "STOKER_API_TOKEN_FILE": "/var/run/secrets/stoker.io/agent/token",
    }
    access = choose(None, None, environ)
    assert (access.server, access.token_file, access.token) == (
        "https://[fd00::1]:443",
        "/var/run/secrets/stoker.io/agent/token",
        None,
    )
