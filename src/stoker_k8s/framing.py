"""Where an HTTP/1.1 request ends, told from the bytes received so far, without blocking.

The serving front (`stoker_k8s.intake`) reads every request whole before a worker thread sees
it, so a client that sends slowly holds no thread. This module only frames: it finds the end of
the head, reads `Content-Length` or walks `Transfer-Encoding: chunked`, and refuses (with the
HTTP status to answer) what is malformed or larger than allowed, before the body is read. It
scans each byte once however the request is split into reads. gunicorn parses the request
again afterwards, so where this module and gunicorn could disagree it refuses.
"""

from __future__ import annotations

import enum

import attrs

CRLF = b"\r\n"
MAX_CHUNK_LINE = 1024  # bytes of a chunk-size line, extensions included


class Refused(Exception):
    """The request cannot be served: answer `status` with `message` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Stage(enum.Enum):
    HEAD = "head"
    LENGTH = "length"  # a body of known length
    CHUNK_LINE = "chunk-size line"
    CHUNK_DATA = "chunk data"
    TRAILERS = "trailers"
    DONE = "done"


@attrs.define
class Framing:
    """The framing state of one request; `feed` it the connection's whole buffer each time."""

    max_head: int
    max_body: int
    expects_continue: bool = False
    _stage: _Stage = _Stage.HEAD
    _pos: int = 0  # bytes of the buffer already scanned
    _head_end: int = 0
    _left: int = 0  # bytes of body (LENGTH) or of the current chunk (CHUNK_DATA) still due
    _body: int = 0  # body bytes seen (chunked)

    @property
    def head_done(self) -> bool:
        """Whether the request line and headers have all arrived."""
        return self._stage is not _Stage.HEAD

    @property
    def wants_body(self) -> bool:
        """Whether a body is still due (for answering `Expect: 100-continue`)."""
        return self._stage not in (_Stage.HEAD, _Stage.DONE)

    def feed(self, buf: bytes | bytearray) -> int | None:
        """The offset where the request ends in `buf`, or None while it is incomplete.

        Raises Refused for a request that must not be read any further."""
        while self._stage is not _Stage.DONE:
            before = (self._stage, self._pos)
            _STEPS[self._stage](self, buf)
            if (self._stage, self._pos) == before:
                return None
        return self._pos

    def _head(self, buf: bytes | bytearray) -> None:
        end = buf.find(b"\r\n\r\n", max(0, self._pos - 3))
        if end < 0:
            self._pos = len(buf)
            if len(buf) > self.max_head:
                raise Refused(431, f"request head over {_size(self.max_head)}")
            return
        if end + 4 > self.max_head:
            raise Refused(431, f"request head over {_size(self.max_head)}")
        self._head_end = self._pos = end + 4
        self._read_head(bytes(buf[:end]))

    def _read_head(self, head: bytes) -> None:
        lines = head.split(CRLF)
        version = lines[0].rsplit(b" ", 1)[-1]
        lengths, codings = [], []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
                raise Refused(400, "malformed header line")
            key, value = name.lower(), value.strip()
            if key == b"content-length":
                lengths.append(value)
            elif key == b"transfer-encoding":
                codings += [c.strip().lower() for c in value.split(b",")]
            elif key == b"expect" and value.lower() == b"100-continue":
                self.expects_continue = version == b"HTTP/1.1"
        if codings:
            if lengths or codings[-1] != b"chunked" or codings.count(b"chunked") > 1:
                raise Refused(400, "unsupported Transfer-Encoding")
            self._stage = _Stage.CHUNK_LINE
            return
        self._stage = _Stage.DONE
        if not lengths:
            return
        if len(set(lengths)) > 1 or not all(v.isdigit() and len(v) < 19 for v in lengths):
            raise Refused(400, "invalid Content-Length")
        self._left = int(lengths[0])
        if self._left > self.max_body:
            raise Refused(413, f"body over {_size(self.max_body)}")
        if self._left:
            self._stage = _Stage.LENGTH

    def _length(self, buf: bytes | bytearray) -> None:
        if len(buf) - self._head_end >= self._left:
            self._pos = self._head_end + self._left
            self._stage = _Stage.DONE

    def _chunk_line(self, buf: bytes | bytearray) -> None:
        end = buf.find(CRLF, self._pos, self._pos + MAX_CHUNK_LINE)
        if end < 0:
            if len(buf) - self._pos >= MAX_CHUNK_LINE:
                raise Refused(400, "chunk-size line too long")
            return
        size = bytes(buf[self._pos : end]).partition(b";")[0].strip()
        if not size or len(size) > 8 or size.strip(b"0123456789abcdefABCDEF"):
            raise Refused(400, "invalid chunk size")
        self._left = int(size, 16)
        self._body += self._left
        if self._body > self.max_body:
            raise Refused(413, f"body over {_size(self.max_body)}")
        self._pos = end + 2
        if self._pos - self._head_end > self._max_raw():
            raise Refused(413, f"chunked body over {_size(self._max_raw())} with its framing")
        self._stage = _Stage.CHUNK_DATA if self._left else _Stage.TRAILERS

    def _chunk_data(self, buf: bytes | bytearray) -> None:
        if len(buf) < self._pos + self._left + 2:
            return
        if buf[self._pos + self._left : self._pos + self._left + 2] != CRLF:
            raise Refused(400, "chunk data not followed by CRLF")
        self._pos += self._left + 2
        self._stage = _Stage.CHUNK_LINE

    def _trailers(self, buf: bytes | bytearray) -> None:
        end = buf.find(CRLF, self._pos)
        if end < 0:
            if len(buf) - self._pos > self.max_head:
                raise Refused(431, f"trailers over {_size(self.max_head)}")
            return
        blank = end == self._pos
        self._pos = end + 2
        if blank:
            self._stage = _Stage.DONE
        elif self._pos - self._head_end > self._max_raw():
            raise Refused(431, f"trailers over {_size(self.max_head)}")

    def _max_raw(self) -> int:
        """Bytes of chunked framing allowed: the body twice over (tiny chunks cost framing)."""
        return 2 * self.max_body + self.max_head


def _size(count: int) -> str:
    """`1 MiB`, `64 KiB` or `1000 bytes`: the limit as the docs name it."""
    for unit, name in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if count % unit == 0:
            return f"{count // unit} {name}"
    return f"{count} bytes"


_STEPS = {
    _Stage.HEAD: Framing._head,
    _Stage.LENGTH: Framing._length,
    _Stage.CHUNK_LINE: Framing._chunk_line,
    _Stage.CHUNK_DATA: Framing._chunk_data,
    _Stage.TRAILERS: Framing._trailers,
}
