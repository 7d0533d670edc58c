"""Reading a message from standard input the way sendmail's collect() reads it.

This module owns the byte discipline of a command-line submission: CRLF becomes LF (a
lone CR stays), without -i/-oi a line holding only "." ends the message (and is not
kept), the header block ends where `headers.HeaderCollector` says, the body is streamed
to its sink as it arrives (never held whole), a last line without a newline is kept
without one, long lines and 8-bit bytes pass unchanged.
It counts what sendmail counts for the priority: the bytes of the header block and of
the body, with CRLF counted as LF.
"""

from __future__ import annotations

from pysendmail.headers import Header, HeaderCollector
from pysendmail.record import field, record

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

_READ_SIZE = 64 * 1024


@record
class Collected:
    """What collect() learnt about the message; the body itself went to the sink."""

    headers: list[Header] = field(default_factory=list)
    header_bytes: int = 0  # the header block and its separator line, CRLF as LF
    body_bytes: int = 0
    has_8bit: bool = False
    ended_by_dot: bool = False
    headers_have_bare_cr: bool = False  # a CR inside a header line (a smuggling attempt)

    @property
    def size(self) -> int:
        return self.header_bytes + self.body_bytes


def input_lines(stream: BinaryIO) -> object:
    """Yield the input's lines, each with its LF (the last may have none)."""
    pending = b""
    while True:
        chunk = stream.read(_READ_SIZE)
        if not chunk:
            break
        pending += chunk
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            yield pending[start : end + 1]
            start = end + 1
        pending = pending[start:]
    if pending:
        yield pending


def collect(
    stream: BinaryIO, write_body: Callable[[bytes], None], *, ignore_dots: bool
) -> Collected:
    """Read the whole message: headers parsed, body bytes passed to `write_body`."""
    result = Collected()
    headers = HeaderCollector()
    in_headers = True
    out = bytearray()
    for raw in input_lines(stream):
        line = raw[:-2] + b"\n" if raw.endswith(b"\r\n") else raw
        if not ignore_dots and line.rstrip(b"\n") == b"." and line.endswith(b"\n"):
            result.ended_by_dot = True
            break
        if not ignore_dots and line == b".":
            # "." as the very last bytes, without a newline, also ends the message.
            result.ended_by_dot = True
            break
        if in_headers:
            if headers.feed(line):
                if b"\r" in line.rstrip(b"\n"):
                    result.headers_have_bare_cr = True
                continue
            in_headers = False
        out += line
        if len(out) >= _READ_SIZE:
            _flush(result, out, write_body)
    _flush(result, out, write_body)
    result.headers = headers.close()
    result.header_bytes = headers.header_bytes
    if not result.has_8bit:
        result.has_8bit = any(not h.text().isascii() for h in result.headers)
    return result


def _flush(result: Collected, out: bytearray, write_body: Callable[[bytes], None]) -> None:
    if not out:
        return
    data = bytes(out)
    if not result.has_8bit and not data.isascii():
        result.has_8bit = True
    result.body_bytes += len(data)
    write_body(data)
    out.clear()
