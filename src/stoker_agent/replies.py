"""Reading an HTTP answer's body with a cap on its size and on the time it takes.

`requests` reads a whole body before the caller sees it, and its read timeout applies to each
socket read, so a server that answers without end, or one byte at a time, would hold the agent
(and its memory) for as long as it likes. The gateway and the API server are both read through
here, each caller turning the two refusals into its own error.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # requests costs ~45 ms to import: only callers that use it pay it
    import requests
    import urllib3

CHUNK = 64 * 1024


class ReplyRefused(Exception):
    """The answer's body broke one of its bounds; the message says which."""


class ReplyTooLarge(ReplyRefused):
    """The body (after decompression) is larger than the cap."""


class ReplyTooSlow(ReplyRefused):
    """The body did not arrive whole within the time allowed."""


class ReplyBroken(ReplyRefused):
    """The connection failed while the body was read (reset, timed out, malformed)."""


def read_body(reply: requests.Response, *, limit: int, within: float) -> bytes:
    """The body of a streamed `reply`: at most `limit` bytes, all of it within `within` seconds.

    Reads what has arrived (never waits for a full chunk), so a trickle is stopped at the
    deadline plus at most one socket read timeout. The body is also kept on `reply`, so its
    `.text` and `.json()` work as usual."""
    body = read_stream(reply.raw, limit=limit, within=within)
    # requests' own cache of the body: .text and .json() read it instead of the socket.
    reply._content = body
    reply._content_consumed = True  # type: ignore[attr-defined]
    return body


def read_stream(raw: urllib3.BaseHTTPResponse, *, limit: int, within: float) -> bytes:
    """The body of urllib3's streamed `raw` answer, decompressed, under the bounds of
    `read_body`; the connection goes back to its pool once the whole body is read."""
    deadline = time.monotonic() + within
    chunks: list[bytes] = []
    size = 0
    import urllib3

    try:
        while chunk := raw.read1(CHUNK, decode_content=True):
            size += len(chunk)
            if size > limit:
                raise ReplyTooLarge(f"the answer is over {_size(limit)}")
            if time.monotonic() > deadline:
                raise ReplyTooSlow(f"the answer took over {within:g} s to arrive")
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as e:
        _drop(raw)
        raise ReplyBroken(
            f"the connection failed while reading the answer ({type(e).__name__})"
        ) from None
    except ReplyRefused:
        _drop(raw)  # never read the rest of a refused answer
        raise
    raw.release_conn()  # the whole body was read: the connection can serve the next call
    return b"".join(chunks)


def _drop(raw: urllib3.BaseHTTPResponse) -> None:
    """Close the answer's connection and hand its place back to the pool."""
    raw.close()
    raw.release_conn()


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
