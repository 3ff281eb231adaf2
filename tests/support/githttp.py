"""The smart HTTP(S) Git server behind ``support.gitservers.GitHttpServer``, run as a process of
its own: ``python -m support.githttp STATE_DIR``.

Out of the test process, no thread of the tests can touch its sockets, and it costs the tests'
CPU nothing; it is a remote as a real one is. It reads its settings from ``STATE_DIR/config.json``,
the accepted tokens from ``STATE_DIR/tokens.json`` at every request (a test may change them),
appends one JSON line per request to ``STATE_DIR/requests.jsonl`` and, once listening, writes
its port to ``STATE_DIR/port``. It ends with its parent (or on SIGTERM).
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import http.server
import io
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

REQUEST_LOG = "requests.jsonl"
TOKENS = "tokens.json"
CONFIG = "config.json"
PORT = "port"


@dataclass(frozen=True)
class HttpRequestRecord:
    """One request the HTTP server received (TLS handshake failures are recorded too).

    ``target`` is the raw request target (path and query) exactly as sent; ``auth_scheme`` is
    ``Basic``/``Bearer``/... or ``None`` when no ``Authorization`` header came; ``username`` is
    the basic-auth user name (never the password); ``authenticated`` tells whether it was accepted;
    ``chunked``/``body_bytes`` describe the request body as received; ``backend_stderr`` is what
    ``git http-backend`` wrote to its stderr for it.
    """

    method: str
    target: str
    path: str
    query: str
    auth_scheme: str | None
    username: str | None
    authenticated: bool
    status: int
    user_agent: str = ""
    git_protocol: str = ""
    chunked: bool = False
    body_bytes: int = 0
    error: str = ""
    backend_stderr: str = ""


def _failure(error: str) -> HttpRequestRecord:
    return HttpRequestRecord("", "", "", "", None, None, False, 0, error=error)


def read_records(state_dir: Path, skip: int = 0) -> list[HttpRequestRecord]:
    """The requests recorded in ``state_dir`` after the first ``skip`` lines (a line being
    written, with no newline yet, is not read)."""
    try:
        text = (state_dir / REQUEST_LOG).read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")[:-1]  # the part after the last newline is still being written
    return [HttpRequestRecord(**json.loads(line)) for line in lines[skip:]]


def count_records(state_dir: Path) -> int:
    """How many complete request lines ``state_dir`` holds."""
    try:
        return (state_dir / REQUEST_LOG).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def write_tokens(state_dir: Path, tokens: set[str]) -> None:
    """Replace the accepted tokens at once (the server reads them at every request)."""
    fd, temporary = tempfile.mkstemp(dir=state_dir, prefix=".tokens-")
    with os.fdopen(fd, "w") as handle:
        json.dump(sorted(tokens), handle)
    os.replace(temporary, state_dir / TOKENS)


@dataclass(frozen=True)
class Settings:
    """What the server process is told (``config.json``)."""

    root: str
    username: str
    password: str
    realm: str
    require_auth: bool
    host: str
    cert_file: str | None = None
    key_file: str | None = None


class Service:
    """The running server's state: its settings, tokens and request log."""

    def __init__(self, state_dir: Path, settings: Settings) -> None:
        self.state_dir = state_dir
        self.settings = settings
        self.root = Path(settings.root)
        self.port = 0
        self._lock = threading.Lock()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._log = os.open(state_dir / REQUEST_LOG, flags, 0o600)

    def record(self, record: HttpRequestRecord) -> None:
        """Append one request to the log, as one whole line."""
        line = json.dumps(dataclasses.asdict(record)) + "\n"
        with self._lock:
            os.write(self._log, line.encode())

    def tokens(self) -> list[str]:
        """The tokens accepted now."""
        try:
            return [str(t) for t in json.loads((self.state_dir / TOKENS).read_text())]
        except FileNotFoundError:
            return []

    def check(self, header: str | None) -> tuple[str | None, str | None, bool]:
        """``(scheme, username, accepted)`` for an ``Authorization`` header value."""
        if not header:
            return None, None, False
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return "Bearer", None, any(hmac.compare_digest(value, t) for t in self.tokens())
        if scheme.lower() != "basic":
            return scheme, None, False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return "Basic", None, False
        if not sep:
            return "Basic", user, False
        ok = hmac.compare_digest(user, self.settings.username) and hmac.compare_digest(
            password, self.settings.password
        )
        ok = ok or any(hmac.compare_digest(password, t) for t in self.tokens())
        return "Basic", user, ok


class _ThreadingServer(http.server.ThreadingHTTPServer):
    """Threads are joined on close; TLS handshakes happen in the request thread."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, service: Service, context: ssl.SSLContext | None) -> None:
        self.service = service
        self.context = context
        host = service.settings.host
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _GitHttpHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is not None:
            request.settimeout(30)
            try:
                request = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.service.record(_failure(f"TLS: {exc}"))
                request.close()
                return
        try:
            super().finish_request(request, client_address)
        except ssl.SSLError as exc:  # e.g. the client rejected the certificate (TLS 1.3)
            self.service.record(_failure(f"TLS: {exc}"))
        finally:
            if self.context is not None:
                # The wrapped socket is a new object; shutdown_request only closes the raw one.
                request.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.service.record(_failure(f"server: {sys.exc_info()[1]!r}"))


class _GitHttpHandler(http.server.BaseHTTPRequestHandler):
    server: _ThreadingServer
    protocol_version = "HTTP/1.1"
    timeout = 30

    served = False

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet; requests are recorded in the request log."""

    def handle(self) -> None:
        super().handle()
        if not self.served and self.server.context is not None:
            # A TLS client that rejects the certificate may just close after the handshake.
            error = "TLS: connection closed without a request (certificate rejected?)"
            self.server.service.record(_failure(error))

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self, sink: Any) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                sink.write(self.rfile.read(size))
                self.rfile.readline()
                total += size
        remaining = int(self.headers.get("Content-Length") or 0)
        total = remaining
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                break
            sink.write(chunk)
            remaining -= len(chunk)
        return total - remaining

    def _serve(self) -> None:
        self.served = True
        service = self.server.service
        path, _, query = self.path.partition("?")
        scheme, user, accepted = service.check(self.headers.get("Authorization"))
        record = HttpRequestRecord(
            method=self.command,
            target=self.path,
            path=path,
            query=query,
            auth_scheme=scheme,
            username=user,
            authenticated=accepted,
            status=0,
            user_agent=self.headers.get("User-Agent", ""),
            git_protocol=self.headers.get("Git-Protocol", ""),
        )
        self.close_connection = True
        with tempfile.TemporaryFile() as body, tempfile.TemporaryFile() as errors:
            length = self._read_body(body)
            body.seek(0)
            record = dataclasses.replace(
                record,
                chunked="chunked" in self.headers.get("Transfer-Encoding", "").lower(),
                body_bytes=length,
            )
            if service.settings.require_auth and not accepted:
                message = b"Authentication required\n"
                self.send_response(401)
                realm = service.settings.realm
                self.send_header("WWW-Authenticate", f'Basic realm="{realm}"')
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(message)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(message)
                service.record(dataclasses.replace(record, status=401))
                return
            status = self._run_backend(
                body, length, errors, path, query, user if accepted else None
            )
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
            service.record(
                dataclasses.replace(
                    record, status=status, error=stderr.strip(), backend_stderr=stderr
                )
            )

    def _run_backend(
        self, body: Any, length: int, errors: Any, path: str, query: str, user: str | None
    ) -> int:
        service = self.server.service
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(service.state_dir / "home"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROJECT_ROOT": str(service.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(service.port),
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_ADDR": self.client_address[0],
        }
        if user:
            env["REMOTE_USER"] = user
        for header, variable in (
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ("Git-Protocol", "GIT_PROTOCOL"),
        ):
            if self.headers.get(header):
                env[variable] = self.headers[header]
        Path(env["HOME"]).mkdir(exist_ok=True)
        with subprocess.Popen(
            ["git", "http-backend"], stdin=body, stdout=subprocess.PIPE, stderr=errors, env=env
        ) as backend:
            reader = cast(io.BufferedReader, backend.stdout)
            status, headers = 200, []
            while True:
                line = reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                else:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            # Chunked, so the body's end never depends on closing the connection (TLS clients
            # such as GnuTLS reject a body ended by a close without close_notify).
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            while chunk := reader.read1(1 << 16):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        return status


def _context(settings: Settings) -> ssl.SSLContext | None:
    if settings.cert_file is None or settings.key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


def _end_with(parent: int, server: _ThreadingServer) -> None:
    """Stop serving once the test process that started this one is gone."""
    while os.getppid() == parent:
        threading.Event().wait(0.5)
    server.shutdown()


def main() -> None:
    """Serve until the parent is gone or SIGTERM."""
    state_dir = Path(sys.argv[1])
    settings = Settings(**json.loads((state_dir / CONFIG).read_text()))
    service = Service(state_dir, settings)
    server = _ThreadingServer(service, _context(settings))
    service.port = int(server.server_address[1])
    parent = int(sys.argv[2])
    threading.Thread(target=_end_with, args=(parent, server), daemon=True).start()
    (state_dir / f"{PORT}.new").write_text(str(service.port))
    os.replace(state_dir / f"{PORT}.new", state_dir / PORT)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
