"""Servers the HTTP benchmarks compare against: certificates, a trivial WSGI app under the same
gunicorn and TLS settings as Stoker's apps, and waiting for a server to answer."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ROOT / "tests"

# argv: port cert key workers threads
TRIVIAL = r"""
import sys
from stoker_k8s.gunicorn import serve

def trivial(environ, start_response):
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    body = b'{"ok": true}'
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response("200 OK", headers)
    return [body]

port, cert, key, workers, threads = sys.argv[1:6]
serve(trivial, bind=f"127.0.0.1:{port}", cert_file=cert, key_file=key,
      workers=int(workers), threads=int(threads))
"""


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tls_files(work: Path, name: str) -> tuple[Path, Path, Path]:
    """A fresh CA and a 127.0.0.1 server certificate: (cert, key, ca)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from support.kubecerts import CertificateAuthority

    ca = CertificateAuthority(f"{name}-ca")
    cert, key = ca.issue_server("127.0.0.1").write(work, name)
    ca_file = work / f"{name}-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    return Path(cert), Path(key), ca_file


def trivial_server(
    port: int, cert: Path, key: Path, *, workers: int, threads: int
) -> subprocess.Popen[bytes]:
    """The trivial WSGI app under gunicorn with TLS (stop it with terminate())."""
    return subprocess.Popen(
        [sys.executable, "-c", TRIVIAL, str(port), str(cert), str(key), str(workers), str(threads)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_up(url: str, ca: Path | None, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Wait until `url` answers anything over HTTP(S)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            requests.get(url, verify=str(ca) if ca else False, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM one process we started, and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
