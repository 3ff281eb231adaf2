"""A gateway (or whatever answers at its address) cannot hold the agent or its memory with an
answer that never ends, arrives a byte at a time, or inflates when decompressed."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from stoker_agent.gateway import (
    REPLY_LIMIT,
    GatewayClient,
    GatewayNotTheApi,
    GatewaySettings,
    GatewayUnavailable,
)
from support.loopback import accepting

Answer = Callable[[socket.socket, list[int]], None]


def endless_json(conn: socket.socket, sent: list[int]) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
    block = b"0," * 32768
    while True:
        conn.sendall(block)
        sent[0] += len(block)


def trickle(conn: socket.socket, sent: list[int]) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    while True:
        conn.sendall(b" ")
        sent[0] += 1
        time.sleep(0.1)


def gzip_bomb(conn: socket.socket, sent: list[int]) -> None:
    body = gzip.compress(b" " * (REPLY_LIMIT * 16), compresslevel=9)
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    sent[0] += len(body)


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], tuple[str, list[int]]]]:
    """A loopback server answering every connection with `answer`; bytes sent are counted."""
    with contextlib.ExitStack() as listeners:

        def start(answer: Answer) -> tuple[str, list[int]]:
            sent = [0]

            def handle(conn: socket.socket) -> None:
                with conn:
                    try:
                        conn.recv(65536)
                        answer(conn, sent)
                    except OSError:
                        pass  # the client hung up: what the test wants

            def on_connection(conn: socket.socket) -> None:
                threading.Thread(target=handle, args=(conn,), daemon=True).start()

            return listeners.enter_context(accepting(on_connection)), sent

        yield start


def call_within(seconds: float, call: Callable[[], object]) -> BaseException:
    """The exception `call` raised, which it must raise within `seconds` (a liveness bound)."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"the call still runs after {seconds} s"
    assert outcome, "the call returned instead of refusing the answer"
    return outcome[0]


def test_an_answer_without_end_is_cut_at_the_cap_and_reported_as_not_the_api(serve) -> None:
    url, sent = serve(endless_json)
    client = GatewayClient(GatewaySettings(url=url, timeout=5))
    error = call_within(30, client.projects)
    assert isinstance(error, GatewayNotTheApi), error
    assert "over 4 MiB" in str(error)
    assert "listing projects" in str(error)
    # The client stopped reading near the cap (socket buffers add a few MiB at most).
    assert sent[0] < REPLY_LIMIT * 4, sent[0]


def test_an_answer_trickling_a_byte_at_a_time_is_given_up_after_the_timeout(serve) -> None:
    url, _ = serve(trickle)
    client = GatewayClient(GatewaySettings(url=url, timeout=1), sleep=lambda s: None)
    error = call_within(30, client.info)
    assert isinstance(error, GatewayUnavailable)
    assert not isinstance(error, GatewayNotTheApi)
    assert "took over 1 s" in str(error)
    assert "reading gateway info" in str(error)


def test_a_compressed_answer_is_capped_by_its_inflated_size(serve) -> None:
    url, _ = serve(gzip_bomb)
    client = GatewayClient(GatewaySettings(url=url, timeout=5))
    error = call_within(30, client.projects)
    assert isinstance(error, GatewayNotTheApi), error
    assert "over 4 MiB" in str(error)
