"""Message headers as sendmail keeps them: parsing a header block, finding and removing
fields, and rendering them for one mailer.

This module owns the `Header` record shared by the command line, the SMTP daemon, the
queue (qf `H` lines) and delivery. A header keeps the text it arrived with (`raw`) and
its value as sendmail stores it (the text after the colon, leading blanks dropped,
continuation lines kept with their line breaks and leading white space).

Where a header block ends is decided as sendmail's `collect` decides it: at the first
empty line (which is consumed), or at the first line that is neither a header field
(`name:` with a name of printable characters other than `:` and space, optionally
followed by blanks before the colon) nor a continuation (a line starting with a space
or a TAB after a header field). Such a line is the first line of the body.

`H?flags?Name: value` conditions: a header with flags is written only for a mailer that
has at least one of those flags; `?${macro}?` headers only when the macro has a value.
The headers sendmail's table marks H_ACHECK (Return-Path, Full-Name, Content-Length) are
written only under such a condition: a message's own `Return-Path:` or `Content-Length:`
never goes out, as sendmail drops them (`HEADER_FLAGS` is that table).
The byte 0x81 followed by a letter, or by `{name}`, is a macro reference resolved at
delivery time (`Return-Path: <\\x81g>` is `$g`). In `str` values that byte is the
surrogate `MACRO_CHAR` (the text is decoded as UTF-8 with surrogateescape).
"""

from __future__ import annotations

from pysendmail.record import record

TYPE_CHECKING = False  # neither re nor collections at run time: start-up time (bench/)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# The macro byte 0x81 as it appears in text decoded with surrogateescape.
MACRO_CHAR = "\udc81"
ENCODING = "utf-8"
ERRORS = "surrogateescape"

# Bytes that cannot be part of a field name: controls, space, DEL and the colon.
_NOT_IN_NAME = bytes(range(0x21)) + b"\x7f:"

# Headers whose addresses are recipients (what -t reads, what Bcc removal considers).
RECIPIENT_HEADERS = ("To", "Cc", "Bcc")
RESENT_RECIPIENT_HEADERS = ("Resent-To", "Resent-Cc", "Resent-Bcc")

# sendmail's header table (conf.c HdrInfo): the H_* flags of each header it knows.
H_EOH, H_RCPT, H_RESENT, H_ACHECK, H_FORCE, H_TRACE, H_FROM = 0x1, 0x2, 0x8, 0x20, 0x40, 0x80, 0x100
H_RECEIPTTO, H_ERRORSTO, H_CTE, H_CTYPE, H_BCC = 0x400, 0x800, 0x1000, 0x2000, 0x4000
H_ENCODABLE, H_STRIPCOMM, H_BINDLATE, H_USER = 0x8000, 0x10000, 0x20000, 0x40000
HEADER_FLAGS = {
    "resent-sender": H_FROM | H_RESENT,
    "resent-from": H_FROM | H_RESENT,
    "resent-reply-to": H_FROM | H_RESENT,
    "sender": H_FROM,
    "from": H_FROM,
    "reply-to": H_FROM,
    "errors-to": H_FROM | H_ERRORSTO,
    "full-name": H_ACHECK,
    "return-receipt-to": H_RECEIPTTO,
    "disposition-notification-to": H_FROM,
    "to": H_RCPT,
    "resent-to": H_RCPT | H_RESENT,
    "cc": H_RCPT,
    "resent-cc": H_RCPT | H_RESENT,
    "bcc": H_RCPT | H_BCC,
    "resent-bcc": H_RCPT | H_BCC | H_RESENT,
    "apparently-to": H_RCPT,
    "message-id": 0,
    "resent-message-id": H_RESENT,
    "message": H_EOH,
    "text": H_EOH,
    "date": 0,
    "resent-date": H_RESENT,
    "received": H_TRACE | H_FORCE,
    "x400-received": H_TRACE | H_FORCE,
    "via": H_TRACE | H_FORCE,
    "mail-from": H_TRACE | H_FORCE,
    "comments": H_FORCE | H_ENCODABLE,
    "return-path": H_FORCE | H_ACHECK | H_BINDLATE,
    "content-transfer-encoding": H_CTE,
    "content-type": H_CTYPE,
    "content-length": H_ACHECK,
    "subject": H_ENCODABLE,
    "x-authentication-warning": H_FORCE,
}


def header_flags(name: str) -> int:
    """The H_* flags sendmail's header table gives the header `name` (0 if unknown)."""
    return HEADER_FLAGS.get(name.lower(), 0)


def is_sender_header(name: str) -> bool:
    """From:, Sender:, Reply-To:, Errors-To:, Resent-From/Sender/Reply-To,
    Disposition-Notification-To: the H_FROM headers, rewritten as sender addresses."""
    return bool(header_flags(name) & H_FROM)


def is_bcc_header(name: str) -> bool:
    """Bcc: and Resent-Bcc: (H_BCC)."""
    return bool(header_flags(name) & H_BCC)


def is_recipient_header(name: str) -> bool:
    """To:, Cc:, Bcc:, Resent-To/Cc/Bcc, Apparently-To: the H_RCPT headers."""
    return bool(header_flags(name) & H_RCPT)


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


@record
class Header:
    """One header field.

    `value` is the text after the colon with leading blanks removed; continuation lines
    stay in it, each after a "\\n" and starting with their own space or TAB.
    `condition` holds the mailer flags of `H?flags?` ("" = always written) and
    `macro_condition` the macro name of `H?${name}?`. `raw` is the field exactly as it was
    received (line ends normalised to "\\n", trailing newline included), or None for a
    header that pysendmail made.
    """

    name: str
    value: str
    condition: str = ""
    macro_condition: str | None = None
    raw: str | None = None

    @property
    def key(self) -> str:
        return self.name.lower()

    def text(self) -> str:
        """The field as sendmail writes it: `Name: value` (continuations kept), no newline."""
        return f"{self.name}: {self.value}" if self.value else f"{self.name}:"

    def unfolded(self) -> str:
        """The value on one line (continuation line breaks removed, RFC 5322 unfolding)."""
        value = self.value
        if "\n" not in value:
            return value
        lines = value.split("\n")
        out = [lines[0]]
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                if out[-1].endswith("\r"):  # a CRLF before the blank goes too
                    out[-1] = out[-1][:-1]
                out.append(line)
            else:
                out.append("\n" + line)
        return "".join(out)

    def wanted_by(
        self, mailer_flags: Iterable[str], macros: Mapping[str, str] | None = None
    ) -> bool:
        """Whether this header is written for a mailer with `mailer_flags`."""
        if self.macro_condition is not None:
            return bool((macros or {}).get(self.macro_condition))
        if not self.condition:
            # H_ACHECK headers (Return-Path, Full-Name, Content-Length) go only to a
            # mailer with one of their flags: without any (a user's own), to none.
            return not header_flags(self.name) & H_ACHECK
        flags = set(mailer_flags)
        return any(flag in flags for flag in self.condition)


def is_header_line(line: bytes) -> bool:
    """Whether `line` starts a header field (`name:`), as sendmail's isheader() decides:
    a name of printable characters other than the colon, blanks, then a colon."""
    colon = line.find(b":")
    if colon <= 0:
        return False
    name = line[:colon].rstrip(b" \t")
    return bool(name) and len(name.translate(None, _NOT_IN_NAME)) == len(name)


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


class HeaderCollector:
    """Reads a message line by line and says where its header block ends.

    Feed each line (with its line end) to `feed()`; it returns True while the line
    belonged to the header block (the empty separator line included) and False for the
    first body line and every line after it. `headers` then holds the parsed fields, and
    `header_bytes` the number of bytes the header block took (separator line included,
    CRLF counted as LF), which sendmail counts in the message size.
    """

    def __init__(self) -> None:
        self.headers: list[Header] = []
        self.header_bytes = 0
        self.done = False
        self.saw_separator = False
        self._current: list[bytes] | None = None

    def feed(self, line: bytes) -> bool:
        if self.done:
            return False
        content = _strip_eol(line)
        if self._current is not None and content[:1] in (b" ", b"\t"):
            self._current.append(content)
            self.header_bytes += len(content) + 1
            return True
        self._finish_field()
        if content == b"":
            self.done = True
            self.saw_separator = True
            self.header_bytes += 1
            return True
        if is_header_line(content):
            self._current = [content]
            self.header_bytes += len(content) + 1
            return True
        self.done = True
        return False

    def close(self) -> list[Header]:
        """End of input: finish the last field and return the headers."""
        self._finish_field()
        self.done = True
        return self.headers

    def _finish_field(self) -> None:
        if self._current is None:
            return
        lines = self._current
        self._current = None
        self.headers.append(header_from_lines([decode(line) for line in lines]))


def header_from_lines(lines: list[str]) -> Header:
    """Build a Header from the text of its first line and its continuation lines."""
    first = lines[0]
    name, _, rest = first.partition(":")
    name = name.rstrip(" \t")
    value = "\n".join([rest.lstrip(" \t"), *lines[1:]])
    return Header(name=name, value=value, raw="\n".join(lines) + "\n")


def parse_header_block(message: bytes) -> tuple[list[Header], int]:
    """Split a whole message: (headers, offset of the first body byte in `message`)."""
    collector = HeaderCollector()
    offset = 0
    for line in message.splitlines(keepends=True):
        if not collector.feed(line):
            break
        offset += len(line)
    collector.close()
    return collector.headers, offset


def find(headers: Iterable[Header], name: str) -> Header | None:
    """The first header called `name` (case-insensitive), or None."""
    key = name.lower()
    return next((h for h in headers if h.key == key), None)


def find_all(headers: Iterable[Header], name: str) -> list[Header]:
    key = name.lower()
    return [h for h in headers if h.key == key]


def remove(headers: list[Header], name: str) -> list[Header]:
    """A copy of `headers` without any field called `name` (e.g. "Bcc")."""
    key = name.lower()
    return [h for h in headers if h.key != key]


def deletes_bcc(headers: Iterable[Header]) -> bool:
    """sendmail's EF_DELETE_BCC (qf flag `b`): a message with a To:, Cc: or
    Apparently-To: header has its Bcc: headers deleted at delivery; without one, a Bcc:
    goes out empty."""
    return any(h.key in ("to", "cc", "apparently-to") for h in headers)


def without_bcc(headers: list[Header]) -> list[Header]:
    """The headers with Bcc and Resent-Bcc removed, as sendmail sends them."""
    return [h for h in headers if h.key not in ("bcc", "resent-bcc")]


def expand_macros(text: str, macros: Mapping[str, str]) -> str:
    """Replace each 0x81 macro reference (`\\x81g`, `\\x81{name}`) by its value ("" if unset).
    A `\\x81{` with no closing brace is the one-letter reference `{`, whose name is
    empty; a 0x81 at the very end is kept as it is."""
    if MACRO_CHAR not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        at = text.find(MACRO_CHAR, pos)
        if at < 0 or at + 1 >= len(text):
            break
        out.append(text[pos:at])
        ref = text[at + 1]
        pos = at + 2
        if ref == "{":
            close = text.find("}", at + 2)
            ref = ""
            if close >= 0:
                ref = text[at + 2 : close]
                pos = close + 1
        out.append(macros.get(ref, ""))
    out.append(text[pos:])
    return "".join(out)


def render(
    headers: Iterable[Header],
    mailer_flags: Iterable[str] = (),
    macros: Mapping[str, str] | None = None,
    *,
    eol: bytes = b"\n",
    remove_bcc: bool = False,
) -> bytes:
    """The header block for one mailer, without the empty separator line.

    Headers whose `?flags?` the mailer lacks are left out, macro references expanded
    with `macros`, continuation lines kept. `remove_bcc` drops Bcc/Resent-Bcc (the qf
    flag `b`); without it they go out empty (`Bcc:`), as sendmail's putheader() writes
    them: a blind copy's addresses never leave.
    """
    flags = frozenset(mailer_flags)
    macro_values = macros or {}
    out = bytearray()
    for header in headers:
        if not header.wanted_by(flags, macro_values):
            continue
        if header_flags(header.name) & H_BCC:
            if not remove_bcc:
                out += encode(f"{header.name}:") + eol
            continue
        text = expand_macros(header.text(), macro_values)
        out += encode(text).replace(b"\n", eol) + eol
    return bytes(out)
