"""Where a request ends, told from bytes as they arrive (the serving front's framing, H8): the
same answer however the bytes are split, and a refusal, before the body, for what is too large
or ambiguous."""

from __future__ import annotations

import random

import pytest

from stoker_k8s.framing import Framing, Refused

GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"POST /webhook/a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n3;ext=1\r\n, w\r\n0\r\nTrailer: t\r\n\r\n"
)


def feed(raw: bytes, sizes: list[int], max_body: int = 100) -> tuple[int | None, int]:
    """Feed `raw` in pieces of `sizes`; (where the request ends, bytes fed until then)."""
    framing = Framing(max_head=1000, max_body=max_body)
    buf = b""
    for size in sizes:
        buf += raw[len(buf) : len(buf) + size]
        end = framing.feed(buf)
        if end is not None:
            return end, len(buf)
    return None, len(buf)


@pytest.mark.parametrize("request_bytes", [GET, POST, CHUNKED])
def test_the_end_of_a_request_is_found_however_its_bytes_arrive(request_bytes: bytes) -> None:
    pipelined = request_bytes + GET  # the next request's bytes are never taken as this one's
    rng = random.Random(7)
    for _ in range(50):
        sizes = [rng.randint(1, 9) for _ in range(len(pipelined))]
        assert feed(pipelined, sizes)[0] == len(request_bytes)
    assert feed(pipelined, [len(pipelined)])[0] == len(request_bytes)


def test_an_incomplete_request_asks_for_more() -> None:
    assert feed(POST[:-1], [1] * len(POST)) == (None, len(POST) - 1)
    assert feed(CHUNKED[:-2], [len(CHUNKED)]) == (None, len(CHUNKED) - 2)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 101, 413),
        (b"POST / HTTP/1.1\r\nX-Long: " + b"a" * 1000, 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\n Content-Length: 5\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000, 400),
    ],
)
def test_what_is_too_large_or_ambiguous_is_refused_before_its_body(raw: bytes, status: int) -> None:
    with pytest.raises(Refused) as refused:
        feed(raw, [1] * len(raw))
    assert refused.value.status == status


def test_expect_continue_is_noticed_once_the_head_is_in() -> None:
    framing = Framing(max_head=1000, max_body=100)
    head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    assert framing.feed(head) is None
    assert framing.expects_continue
    assert framing.wants_body
    assert framing.feed(head + b"abc") == len(head) + 3
    assert not framing.wants_body
