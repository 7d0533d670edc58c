"""What every mailer is handed: the envelope sender, the header block rendered for that
mailer, and the body, read from the df file in chunks so that a large message is never
held whole in memory. Also the byte transformations mailers ask for in their flags
(sendmail's putheader/putbody): the Unix `From ` line, `Return-Path:`, `>From `
escaping (F=E), stripping the 8th bit (F=7) and the mailer's end of line (E=).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from pysendmail.record import field, record

CHUNK_SIZE = 65536

BodySource = Path | bytes | Callable[[], Iterable[bytes]]


@record(frozen=True)
class OutgoingMessage:
    """One message ready for a mailer.

    `headers` is the header block as the mailer will see it (each field ending in LF,
    no blank separator line). `body` is the df file's path, the body bytes, or a
    function returning a fresh iterator of chunks (a body may be read several times:
    one pass per MX host tried, per local recipient ...). `sender` is the envelope
    sender as this mailer writes it (`$g`, rewritten by its rulesets); "" or "<>" is
    the null sender.
    """

    sender: str
    headers: bytes
    body: BodySource = b""
    received_at: float = field(default_factory=time.time)
    eight_bit: bool | None = None  # None: not declared, look at the bytes
    original_sender: str | None = None  # `$f`, as queued; None: the same as `sender`

    def from_macro(self) -> str:
        """`$f`: the envelope sender as it was queued (`$g`, `sender`, is the one
        rewritten for this mailer)."""
        return bare_sender(self.sender if self.original_sender is None else self.original_sender)

    @classmethod
    def from_bytes(cls, sender: str, data: bytes, **extra: object) -> OutgoingMessage:
        """Split a whole message (tests, small messages) at its first empty line."""
        data = data.replace(b"\r\n", b"\n")
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            if data.startswith(b"\n"):
                head, body = b"", data[1:]
            else:
                head, body = data, b""
        headers = head + b"\n" if head else b""
        return cls(sender, headers, body, **extra)  # type: ignore[arg-type]

    def iter_body(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        if isinstance(self.body, bytes):
            for pos in range(0, len(self.body), chunk_size):
                yield self.body[pos : pos + chunk_size]
        elif isinstance(self.body, Path):
            with open(self.body, "rb") as handle:
                while chunk := handle.read(chunk_size):
                    yield chunk
        else:
            yield from self.body()

    def open_with_headers(self, headers: bytes, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """`headers`, the blank line, then the body, from a df file opened NOW: a writer
        that consumes it after switching to a user's uid (a forked child) could not
        open the queue's root-only df itself."""
        first = [headers + b"\n"]
        if isinstance(self.body, Path):
            handle = open(self.body, "rb")  # noqa: SIM115 - closed by the generator
            return itertools.chain(first, _read_and_close(handle, chunk_size))
        if isinstance(self.body, bytes):
            return itertools.chain(first, self.iter_body(chunk_size))
        return itertools.chain(first, iter(self.body()))

    def iter_message(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Headers, the blank line, then the body."""
        yield self.headers + b"\n"
        yield from self.iter_body(chunk_size)

    def header_value(self, name: str) -> str | None:
        """The first header `name` (unfolded), or None."""
        pattern = re.compile(
            rb"^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\n[ \t].*)*)", re.I | re.M
        )
        match = pattern.search(self.headers)
        if match is None:
            return None
        return re.sub(rb"\n[ \t]", b" ", match.group(1)).strip().decode("utf-8", "replace")

    def has_8bit(self) -> bool:
        """True when the body (or a header) holds a byte above 127."""
        if self.eight_bit is not None:
            return self.eight_bit
        if _has_high_bit(self.headers):
            return True
        return any(_has_high_bit(chunk) for chunk in self.iter_body())


def _read_and_close(handle: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(chunk_size):
            yield chunk


_HIGH_BIT = re.compile(rb"[\x80-\xff]")


def _has_high_bit(data: bytes) -> bool:
    return _HIGH_BIT.search(data) is not None


def bare_sender(sender: str) -> str:
    """`<a@b>` → `a@b`; the null sender → ""."""
    return sender.strip().removeprefix("<").removesuffix(">").strip()


def unix_from_line(sender: str, when: float) -> bytes:
    """sendmail's `From sender date` line ($l, UnixFromLine), in local time."""
    who = bare_sender(sender) or "MAILER-DAEMON"
    stamp = time.asctime(time.localtime(when))
    return f"From {who} {stamp}\n".encode("utf-8", "surrogateescape")


def with_return_path(headers: bytes, sender: str) -> bytes:
    """The header block with `Return-Path: <sender>` on top, unless it has one already."""
    if re.search(rb"^return-path[ \t]*:", headers, re.I | re.M):
        return headers
    return f"Return-Path: <{bare_sender(sender)}>\n".encode("utf-8", "surrogateescape") + headers


class LineTransformer:
    """Applies a mailer's body flags to chunks that may split lines anywhere."""

    def __init__(self, *, escape_from: bool, strip_8bit: bool, eol: bytes) -> None:
        self.escape_from = escape_from
        self.strip_8bit = strip_8bit
        self.eol = eol
        self._partial = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._apply(data[:cut])

    def finish(self) -> bytes:
        tail, self._partial = self._partial, b""
        return self._apply(tail.removesuffix(b"\r") + b"\n") if tail else b""

    def _apply(self, lines: bytes) -> bytes:
        if not lines:
            return lines
        lines = lines.replace(b"\r\n", b"\n")
        if self.escape_from:
            lines = re.sub(rb"(?m)^From ", b">From ", lines)
        if self.strip_8bit:
            lines = lines.translate(_STRIP_HIGH_BIT)
        if self.eol != b"\n":
            lines = lines.replace(b"\n", self.eol)
        return lines


_STRIP_HIGH_BIT = bytes(b & 0x7F for b in range(256))


def mailer_stream(
    message: OutgoingMessage,
    flags: frozenset[str],
    *,
    eol: bytes = b"\n",
    chunk_size: int = CHUNK_SIZE,
) -> Iterator[bytes]:
    """The bytes a program mailer reads on its standard input, per its F= flags:
    a `From ` line unless F=n, `Return-Path:` with F=P, `>From ` escaping with F=E,
    the 8th bit stripped with F=7, lines ending in `eol` (the mailer's E=)."""
    transformer = LineTransformer(escape_from="E" in flags, strip_8bit="7" in flags, eol=eol)
    head = b""
    if "n" not in flags:
        head += unix_from_line(message.sender, message.received_at)
    headers = with_return_path(message.headers, message.sender) if "P" in flags else message.headers
    head_transform = LineTransformer(escape_from=False, strip_8bit="7" in flags, eol=eol)
    yield head_transform.feed(head + headers + b"\n") + head_transform.finish()
    for chunk in message.iter_body(chunk_size):
        out = transformer.feed(chunk)
        if out:
            yield out
    yield transformer.finish()
