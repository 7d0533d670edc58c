"""The ESMTP server session as a sans-IO state machine (RFC 5321 and its extensions).

`SmtpSession` takes bytes (`feed`) and returns what the daemon must do, in order:
`Reply` objects to write, and events (`MessageStart`, `BodyChunk`, `MessageComplete`,
`MessageAborted`, `StartTLS`, `EtrnRequest`, `Pause`, `Close`). It never touches a socket, a
file, a clock or the configuration: decisions come from an injected `SmtpPolicy`, limits
and offered extensions from `SessionSettings`. So it is tested with bytes alone.

A message is streamed: after `MessageStart`, the body arrives as `BodyChunk`s (LF line
ends, dot-unstuffed, the header block excluded), the headers are collected (bounded by
`max_header_length`) and handed over in `MessageComplete`. After `MessageComplete` the
session reads no further input until the daemon reports the outcome with
`message_queued(qid)` or `message_failed(error)`; only then is the `250` sent.

Security choices, each a refusal rather than a repair: CRLF.CRLF alone ends DATA; a bare
LF or bare CR anywhere ends the session with 421 and nothing delivered; command lines are
bounded; input pipelined after STARTTLS is dropped; input pending when HELO/EHLO or DATA
is read is sendmail's "SMTP protocol error"; a non-ASCII address needs SMTPUTF8; no
parameter value may carry a control character.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Mapping
from typing import Protocol

from pysendmail.envelope import BodyType, Envelope, Notify, Recipient, Ret
from pysendmail.errors import MailError
from pysendmail.protocol import replies as R
from pysendmail.protocol import smtp_throttle as throttle
from pysendmail.protocol.replies import Reply
from pysendmail.record import record

# sendmail's limits: MAXBADCOMMANDS, MAXSHORTSTR; LONG_MAX for SIZE=.
MAX_BAD_COMMANDS = 25
MAX_SHORT_STRING = 203
LONG_MAX = 2**63 - 1
BODY_CHUNK_SIZE = 64 * 1024
TRACE_HEADERS = frozenset({"received", "via", "mail-from"})
_HEADER_NAME = re.compile(rb"^[!-9;-~]+[ \t]*:")


# ---------------------------------------------------------------- events


@record(frozen=True)
class MessageStart:
    """A message begins (after 354 or the first BDAT): open a draft in the queue."""

    envelope: Envelope


@record(frozen=True)
class BodyChunk:
    """Part of the body (no header block), LF line ends, dots unstuffed."""

    data: bytes


@record(frozen=True)
class MessageComplete:
    """The message ended well: enqueue it (unless `discard`) and call back with the result.

    `headers` are the message's header fields in order, each one field with its folded
    continuation lines joined by "\\n", without the final newline.
    """

    envelope: Envelope
    headers: tuple[str, ...]
    size: int
    discard: bool = False


@record(frozen=True)
class MessageAborted:
    """The message will not be accepted: throw the draft away."""

    reason: str


@record(frozen=True)
class StartTLS:
    """Start the TLS handshake now, then call `tls_started()` (or `tls_failed()`)."""


@record(frozen=True)
class EtrnRequest:
    """The client asked for a queue run for `node` (a domain, `@domain` or `#queuegroup`)."""

    node: str


@record(frozen=True)
class Pause:
    """Write the replies before it, then wait `seconds` before going on: sendmail's
    slow-down for a client repeating HELO, NOOP, VRFY, ETRN or refused RCPTs."""

    seconds: int


@record(frozen=True)
class Close:
    """Close the connection (after writing the replies before it)."""


Output = (
    Reply
    | MessageStart
    | BodyChunk
    | MessageComplete
    | MessageAborted
    | StartTLS
    | EtrnRequest
    | Pause
    | Close
)


# ---------------------------------------------------------------- what the session is told


@record(frozen=True)
class ClientInfo:
    """Who is talking: the peer as the daemon found it, before any command."""

    addr: str  # "127.0.0.1", "" for -bs
    name: str  # host name from the PTR lookup, or "[addr]" when there is none
    resolve: str = "OK"  # ${client_resolve}: OK, FAIL, FORGED, TEMP
    port: int = 0
    # sendmail's CurSmtpClient ("localhost [127.0.0.1]", "root@localhost" for -bs).
    display: str | None = None

    @property
    def smtp_client(self) -> str:
        if self.display is not None:
            return self.display
        literal = f"[{address_literal(self.addr)}]"
        if self.name in (literal, f"[{self.addr}]") or not self.name:
            return literal
        return f"{self.name} {literal}"


def address_literal(addr: str) -> str:
    """An address as sendmail writes it in brackets and in ${client_addr}: IPv6
    addresses get the RFC 5321 "IPv6:" tag."""
    return f"IPv6:{addr}" if ":" in addr else addr


@record(frozen=True)
class SessionSettings:
    """Limits and offered extensions, derived from the configuration by the daemon."""

    hostname: str  # $j
    greeting: str = ""  # the expanded SmtpGreetingMessage (without "ESMTP" inserted)
    version: str = "8.17.1.9"
    max_message_size: int = 0  # 0 = no limit
    max_recipients: int = 0  # 0 = no limit
    max_header_length: int = 32768
    max_hop_count: int = 25
    max_command_length: int = 2048
    privacy: frozenset[str] = frozenset()  # PrivacyOptions words, lower-case
    offer_etrn: bool = True  # False for DaemonPortOptions M=E
    auth_required: bool = False  # M=a
    tls_available: bool = False
    auth_mechanisms: tuple[str, ...] = ()  # offered when the channel allows it
    auth_without_tls: bool = False
    help_topics: Mapping[str, tuple[str, ...]] | None = None  # expanded HelpFile, by topic
    max_noop_commands: int = throttle.MAX_NOOP_COMMANDS  # MaxNOOPCommands
    bad_rcpt_throttle: int = 0  # BadRcptThrottle (0: never)
    bad_rcpt_throttle_delay: int = 1  # BadRcptThrottleDelay, seconds
    # MaxDaemonChildren is set: twice a slow-down's limit disconnects the client.
    children_limited: bool = False
    pipelining: bool = True
    eight_bit_mime: bool = True
    dsn: bool = True
    chunking: bool = True
    smtputf8: bool = True


class Verdict(enum.Enum):
    ACCEPT = "accept"
    DISCARD = "discard"  # accept, then throw the message away


@record(frozen=True)
class ConnectDecision:
    """What the access db says about the client at connect time."""

    verdict: Verdict = Verdict.ACCEPT
    # sendmail's "nullserver": when set, every command but HELO/EHLO/NOOP/RSET/QUIT gets it.
    refusal: MailError | None = None


@record(frozen=True)
class VerifyResult:
    """VRFY/EXPN: a qualified address and whether it is delivered here."""

    address: str
    local: bool = True
    full_name: str = ""


class SmtpPolicy(Protocol):
    """The decisions the session asks for; refusals are raised as `MailError`."""

    def check_connect(self, client: ClientInfo) -> ConnectDecision: ...

    def check_address(self, address: str, *, sender: bool) -> None:
        """Address syntax beyond the SMTP path (ruleset 0): "Hostname required" ..."""

    def check_mail(self, session: SessionView, sender: str) -> Verdict: ...

    def check_rcpt(self, session: SessionView, recipient: str) -> Verdict: ...

    def verify(self, address: str) -> VerifyResult: ...

    def expand(self, address: str) -> list[VerifyResult]: ...

    def authenticate(self, authcid: str, password: str, authzid: str) -> bool: ...


@record
class SessionView:
    """What policy may know about the session when deciding."""

    client: ClientInfo
    helo: str | None = None
    esmtp: bool = False
    tls: bool = False
    authenticated: str | None = None
    envelope: Envelope | None = None


class _State(enum.Enum):
    COMMAND = "command"
    DATA = "data"
    BDAT = "bdat"
    AUTH = "auth"
    AWAIT_QUEUE = "await-queue"
    AWAIT_TLS = "await-tls"
    CLOSED = "closed"


class _ProtocolViolation(Exception):
    """Bare CR/LF or an overlong line: reply with the 421 and close."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


# ---------------------------------------------------------------- helpers


def shorten(text: str, limit: int = MAX_SHORT_STRING) -> str:
    """sendmail's shortenstring(): keep both ends of a long string."""
    if len(text) < limit:
        return text
    keep = (limit - 3) // 2
    return text[:keep] + "..." + text[-keep:]


def printable(text: str) -> str:
    """Text safe to echo in a reply: control characters shown as '?'."""
    return "".join(ch if ch >= " " and ch != "\x7f" else "?" for ch in text)


def _skipword(args: str, word: str) -> tuple[str | None, str]:
    """sendmail's skipword(): `FROM:` then the rest; on error (None, the word scanned)."""
    p = args.lstrip()
    end = 0
    while end < len(p) and p[end] != ":" and not p[end].isspace():
        end += 1
    scanned = p[:end]
    rest = p[end:].lstrip()
    if not rest.startswith(":"):
        return None, scanned
    rest = rest[1:].lstrip()
    if not rest or scanned.lower() != word:
        return None, scanned
    return rest, scanned


def _split_path(text: str) -> tuple[str, str, str | None]:
    """Split `<addr> params` at the first space outside <>, quotes and comments.

    Returns (path as given, the parameters, an error reason or None), with sendmail's
    reasons for unbalanced brackets.
    """
    depth = 0
    quoted = False
    comment = 0
    index = 0
    while index < len(text):
        ch = text[index]
        if quoted:
            if ch == "\\":
                index += 1
            elif ch == '"':
                quoted = False
        elif comment:
            if ch == "(":
                comment += 1
            elif ch == ")":
                comment -= 1
        elif ch == '"':
            quoted = True
        elif ch == "(":
            comment += 1
        elif ch == "<":
            depth += 1
        elif ch == ">":
            if depth == 0:
                return text[: _param_start(text, index)], "", "Unbalanced '>'"
            depth -= 1
        elif ch == " " and depth == 0:
            break
        index += 1
    path, params = text[:index], text[index:]
    if quoted:
        return path, params, "Unbalanced '\"'"
    if comment:
        return path, params, "Unbalanced '('"
    if depth:
        return path, params, "Unbalanced '<'"
    return path, params, None


def _param_start(text: str, index: int) -> int:
    space = text.find(" ", index)
    return len(text) if space < 0 else space


def _path_address(path: str) -> str:
    """The address inside a path: brackets, a source route and comments removed."""
    addr = path.strip()
    if "<" in addr and addr.endswith(">"):
        addr = addr[addr.rfind("<") + 1 : -1]
    addr = addr.strip()
    if addr.startswith("@") and ":" in addr:
        addr = addr.split(":", 1)[1]  # RFC 5321 4.1.2: a source route is ignored
    return addr


def _parse_params(text: str) -> list[tuple[str, str | None]]:
    """ESMTP parameters as sendmail scans them: keyword [= value], split at one delimiter.

    sendmail takes the keyword as a run of letters, digits and '-', the value up to a space,
    a control character or '=', and overwrites the next character: so `<alice>` gives an
    empty keyword, which is what its "parameter unrecognized" reply shows.
    """
    params: list[tuple[str, str | None]] = []
    p = 0
    n = len(text)
    while p < n:
        while p < n and text[p].isspace():
            p += 1
        if p >= n:
            break
        start = p
        while p < n and ((text[p].isalnum() and text[p].isascii()) or text[p] == "-"):
            p += 1
        keyword = text[start:p]
        value: str | None = None
        if p < n and text[p] == "=":
            p += 1
            vstart = p
            while p < n and text[p] != " " and text[p] >= " " and text[p] != "=":
                p += 1
            value = text[vstart:p]
        if p < n:
            p += 1
        params.append((keyword, value))
    return params


def _xtext_ok(value: str) -> bool:
    """RFC 3461 xtext, refusing encoded control characters (they could forge headers)."""
    index = 0
    while index < len(value):
        ch = value[index]
        if ch == "+":
            hexpart = value[index + 1 : index + 3]
            if len(hexpart) != 2 or any(c not in "0123456789ABCDEF" for c in hexpart):
                return False
            if int(hexpart, 16) < 0x21 or int(hexpart, 16) > 0x7E:
                return False
            index += 3
            continue
        if ord(ch) < 0x21 or ord(ch) > 0x7E or ch == "=":
            return False
        index += 1
    return True


def _helo_name_ok(name: str) -> tuple[bool, str]:
    """sendmail's HELO argument check: letters, digits and `[].-_#:`, trailing blanks ok."""
    for index, ch in enumerate(name):
        if not ch.isascii():
            return False, name
        if ch.isalnum() or ch in "[].-_#:":
            continue
        if ch.isspace():
            if name[index:].strip():
                return False, name
            return True, name[:index]
        return False, name
    return True, name


def _has_8bit(text: str) -> bool:
    return not text.isascii()


def _decode_b64(text: str) -> str | None:
    if text == "=":
        return ""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None


# The commands whose answer depends on whether more input is already pending.
_LOOKAHEAD_VERBS = frozenset({b"data", b"helo", b"ehlo"})

# ---------------------------------------------------------------- the message reader


class _MessageReader:
    """Turns DATA/BDAT bytes into header fields and body chunks, checking line ends."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.in_headers = True
        self.headers: list[str] = []
        self.header_bytes = 0
        self.headers_too_large = False
        self.size = 0
        self.too_big = False
        self.eight_bit = False
        self.at_line_start = True
        self._body = bytearray()

    def line(self, content: bytes) -> None:
        """One complete line without its CRLF (dots already handled)."""
        if self.in_headers:
            if not content:
                self.in_headers = False
                self._count(1)
                return
            if content[:1] in (b" ", b"\t") and self.headers:
                self._add_header_bytes(content)
                if not self.headers_too_large:
                    self.headers[-1] += "\n" + content.decode("utf-8", "surrogateescape")
                return
            if _HEADER_NAME.match(content):
                self._add_header_bytes(content)
                if not self.headers_too_large:
                    self.headers.append(content.decode("utf-8", "surrogateescape"))
                return
            self.in_headers = False  # not a header: the body starts here
        self.body_bytes(content + b"\n")

    def _add_header_bytes(self, content: bytes) -> None:
        self.header_bytes += len(content) + 1
        self._count(len(content) + 1)
        limit = self.settings.max_header_length
        if limit and self.header_bytes > limit:
            self.headers_too_large = True

    def body_bytes(self, data: bytes) -> None:
        self._count(len(data))
        if not self.eight_bit and not data.isascii():
            self.eight_bit = True
        if not self.too_big:
            self._body += data

    def _count(self, nbytes: int) -> None:
        self.size += nbytes
        limit = self.settings.max_message_size
        if limit and self.size > limit and not self.too_big:
            self.too_big = True
            self._body.clear()

    def take_chunk(self, force: bool = False) -> bytes | None:
        if self._body and (force or len(self._body) >= BODY_CHUNK_SIZE):
            chunk = bytes(self._body)
            self._body.clear()
            return chunk
        return None

    def hop_count(self) -> int:
        return sum(1 for h in self.headers if h.split(":", 1)[0].strip().lower() in TRACE_HEADERS)


# ---------------------------------------------------------------- the session


class SmtpSession:
    """One ESMTP server conversation. See the module docstring for the contract."""

    # Body lines are taken in runs (`_data_lines_in_bulk`); the tests turn it off to
    # compare with the line-by-line loop.
    bulk_body = True

    def __init__(self, policy: SmtpPolicy, settings: SessionSettings, client: ClientInfo) -> None:
        self.policy = policy
        self.settings = settings
        self.view = SessionView(client=client)
        self._state = _State.COMMAND
        self._buffer = bytearray()
        self._eof = False
        self._out: list[Output] = []
        self._nullserver: MailError | None = None
        self._connect_discard = False
        self._bad_commands = 0
        self._counters = throttle.CommandCounters()
        self._discard = False
        self._reader: _MessageReader | None = None
        self._bdat_remaining = 0
        self._bdat_size = 0
        self._bdat_last = False
        self._bdat_failed: Reply | None = None
        self._bdat_pending_cr = False
        self._auth_mechanism = ""
        self._auth_step: list[str] = []
        self._greeting_text = ""
        self.started = False

    # ------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def in_transaction(self) -> bool:
        return self.view.envelope is not None

    @property
    def awaiting_queue(self) -> bool:
        return self._state is _State.AWAIT_QUEUE

    def start(self, early_talker: bool = False, greeting: str | None = None) -> list[Output]:
        """The greeting (`greeting`, else the settings' one). `early_talker`: the client
        spoke during greet_pause."""
        self.started = True
        if greeting is not None:
            self._greeting_text = greeting
        host = self.settings.hostname
        decision = self.policy.check_connect(self.view.client)
        if decision.verdict is Verdict.DISCARD:
            self._connect_discard = True
        if decision.refusal is not None:
            self._nullserver = decision.refusal
        if early_talker:
            self._nullserver = MailError("Command rejected", reply_code=550, status="5.0.0")
            self._emit(R.GREETING_REFUSED.render(host=host))
        else:
            self._emit(R.GREETING.render_lines(self._greeting_lines()))
        return self._drain()

    def feed(self, data: bytes, eof: bool = False) -> list[Output]:
        """Bytes from the client (and whether the input ended after them)."""
        if self._state is _State.CLOSED:
            return []
        self._buffer += data
        self._eof = self._eof or eof
        self._run()
        return self._drain()

    def wants_lookahead(self, data: bytes) -> bool:
        """Whether the answer to `data` may depend on input already waiting behind it, so
        that the caller should read what is pending before `feed`: a DATA command (a
        message written before the 354 is refused) and HELO/EHLO before ESMTP (a client
        writing ahead of PIPELINING). For anything else the check would cost a system
        call per read for nothing."""
        if self._state is not _State.COMMAND:
            return False
        end = data.rfind(b"\n", 0, len(data) - 1) + 1
        last = data[end:] if end else bytes(self._buffer[-64:]) + data
        return last.lstrip(b" \t")[:4].lower() in _LOOKAHEAD_VERBS

    def message_queued(self, qid: str) -> list[Output]:
        """The message of the last `MessageComplete` is safely queued as `qid`."""
        self._require_await_queue()
        self._emit(R.MESSAGE_ACCEPTED.render(qid=qid))
        self._end_message()
        return self._drain()

    def message_failed(self, error: MailError) -> list[Output]:
        """The message of the last `MessageComplete` could not be queued."""
        self._require_await_queue()
        self._emit(Reply.from_error(error))
        self._end_message()
        if error.reply_code == 421:
            self._close()
        return self._drain()

    def tls_started(self) -> list[Output]:
        """The handshake succeeded: forget everything learnt before (RFC 3207 4.2)."""
        if self._state is not _State.AWAIT_TLS:
            raise RuntimeError("tls_started() without StartTLS")
        self.view.tls = True
        self.view.helo = None
        self.view.esmtp = False
        self.view.authenticated = None
        self.view.envelope = None
        self._state = _State.COMMAND
        self._run()
        return self._drain()

    def tls_failed(self) -> list[Output]:
        self._close()
        return self._drain()

    def timeout(self) -> list[Output]:
        """The client said nothing for too long."""
        if self._state is not _State.CLOSED:
            if self._reader is not None:
                self._emit(MessageAborted("timeout"))
                self._reader = None
            host = self.settings.hostname
            self._emit(R.TIMEOUT.render(host=host, client=self.view.client.smtp_client))
            self._close()
        return self._drain()

    def shutdown(self) -> list[Output]:
        """The daemon is stopping: say so and close (not during an open transfer)."""
        if self._state is not _State.CLOSED:
            self._emit(R.SHUTTING_DOWN.render(host=self.settings.hostname))
            self._close()
        return self._drain()

    # ------------------------------------------------------------ plumbing

    def _emit(self, item: Output) -> None:
        self._out.append(item)
        if isinstance(item, Reply) and item.closes_session:
            self._close()

    def _drain(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _close(self) -> None:
        if self._state is _State.CLOSED:
            return
        if self._reader is not None and self._state in (_State.DATA, _State.BDAT):
            self._out.append(MessageAborted("connection closed"))
            self._reader = None
        self._state = _State.CLOSED
        self._buffer.clear()
        self._out.append(Close())

    def _require_await_queue(self) -> None:
        if self._state is not _State.AWAIT_QUEUE:
            raise RuntimeError("no message is waiting for the queue")

    def _greeting_lines(self) -> list[str]:
        text = self._greeting_text or self.settings.greeting or f"{self.settings.hostname}"
        lines = text.split("\n")
        first = lines[0].split(None, 1)
        # sendmail inserts "ESMTP" as the second word of the first line.
        if len(first) == 2:
            lines[0] = f"{first[0]} ESMTP {first[1]}"
        else:
            lines[0] = f"{lines[0]} ESMTP"
        return lines

    def _run(self) -> None:
        try:
            while self._state not in (_State.CLOSED, _State.AWAIT_QUEUE, _State.AWAIT_TLS):
                if self._state is _State.DATA:
                    if not self._run_data():
                        break
                elif self._state is _State.BDAT:
                    if not self._run_bdat():
                        break
                else:
                    line = self._next_line()
                    if line is None:
                        break
                    if self._state is _State.AUTH:
                        self._auth_response(line)
                    else:
                        self._command(line)
        except _ProtocolViolation as violation:
            if self._reader is not None:
                self._out.append(MessageAborted(violation.reply.text))
                self._reader = None
            self._emit(violation.reply)
        waiting = self._state in (_State.CLOSED, _State.AWAIT_QUEUE)
        if self._eof and not waiting and (not self._buffer or self._state is _State.AWAIT_TLS):
            self._close()

    def _next_line(self) -> str | None:
        """The next command line (CRLF removed), or None when more input is needed."""
        limit = self.settings.max_command_length
        newline = self._buffer.find(b"\n")
        if newline < 0:
            cr = self._buffer.find(b"\r")
            if 0 <= cr < len(self._buffer) - 1:
                raise _ProtocolViolation(R.BARE_CR.render())
            if limit and len(self._buffer) > limit:
                self._too_long()
            if self._eof and self._buffer:
                self._buffer.clear()  # a last line without CRLF: the client is gone
            return None
        if limit and newline > limit:
            self._too_long()
        raw = bytes(self._buffer[: newline + 1])
        del self._buffer[: newline + 1]
        if not raw.endswith(b"\r\n"):
            if b"\r" in raw:
                raise _ProtocolViolation(R.BARE_CR.render())
            raise _ProtocolViolation(R.BARE_LF.render())
        content = raw[:-2]
        if b"\r" in content:
            raise _ProtocolViolation(R.BARE_CR.render())
        return content.decode("utf-8", "surrogateescape")

    def _too_long(self) -> None:
        client = self.view.client.smtp_client
        raise _ProtocolViolation(
            R.COMMAND_TOO_LONG.render(host=self.settings.hostname, client=client)
        )

    def _input_pending(self) -> bool:
        return bool(self._buffer) or self._eof

    # ------------------------------------------------------------ commands

    _ALWAYS_ALLOWED = frozenset({"quit", "helo", "ehlo", "noop", "rset"})
    _UNIMPLEMENTED = frozenset({"send", "soml", "saml", "turn"})

    def _command(self, line: str) -> None:
        verb, _, args = line.lstrip(" \t").partition(" ")
        verb_lower = verb.lower()
        handler = getattr(self, f"_smtp_{verb_lower}", None) if verb_lower.isalpha() else None
        if verb_lower == "bdat" and not self.settings.chunking:
            handler = None
        known = handler is not None or verb_lower in self._UNIMPLEMENTED
        if self._nullserver is not None and known and verb_lower not in self._ALWAYS_ALLOWED:
            self._bad_commands += 1
            if self._bad_commands > MAX_BAD_COMMANDS:
                self._emit(R.TOO_MANY_BAD_COMMANDS.render(host=self.settings.hostname))
                return
            self._emit(Reply.from_error(self._nullserver))
            return
        if handler is None:
            if verb_lower in self._UNIMPLEMENTED:
                self._emit(R.NOT_IMPLEMENTED.render(line=printable(shorten(line))))
                return
            self._bad_commands += 1
            if self._bad_commands > MAX_BAD_COMMANDS:
                self._emit(R.TOO_MANY_BAD_COMMANDS.render(host=self.settings.hostname))
                return
            self._emit(R.UNRECOGNIZED.render(line=printable(shorten(line))))
            return
        handler(verb, args)

    # HELO / EHLO

    def _smtp_helo(self, verb: str, args: str) -> None:
        self._hello(verb, args, esmtp=False)

    def _smtp_ehlo(self, verb: str, args: str) -> None:
        self._hello(verb, args, esmtp=True)

    def _hello(self, verb: str, args: str, esmtp: bool) -> None:
        if self._input_pending() and not self.view.esmtp:
            # A client that writes ahead before PIPELINING is agreed (or before the
            # greeting could be read) is not a mail client: sendmail's answer.
            self._emit(R.PROTOCOL_ERROR.render())
            if self._nullserver is None:
                self._nullserver = MailError("Command rejected", reply_code=550, status="5.0.0")
            return
        if self._slow_down("helo", throttle.MAX_HELO_COMMANDS):
            return
        name = args.strip(" \t") if args.strip() else ""
        if not name:
            self._emit(R.HELLO_NEEDS_DOMAIN.render(verb=verb))
            return
        good, name = _helo_name_ok(args.lstrip(" \t"))
        if not good:
            self._emit(R.HELLO_INVALID_DOMAIN.render())
            return
        self.view.envelope = None
        self._discard = False
        self.view.helo = name
        self.view.esmtp = esmtp
        host = self.settings.hostname
        first = R.HELLO.render(host=host, client=self.view.client.smtp_client).lines[0]
        if not esmtp:
            self._emit(R.HELLO.render_lines([first]))
            return
        self._emit(R.HELLO.render_lines([first, *self._ehlo_keywords()]))

    def _ehlo_keywords(self) -> list[str]:
        if self._nullserver is not None:
            return ["ENHANCEDSTATUSCODES"]
        s = self.settings
        privacy = s.privacy
        words = ["ENHANCEDSTATUSCODES"]
        if s.pipelining:
            words.append("PIPELINING")
        if not privacy & {"noexpn", "goaway"}:
            words.append("EXPN")
        if not privacy & {"noverb", "goaway"}:
            words.append("VERB")
        if s.eight_bit_mime:
            words.append("8BITMIME")
        words.append(f"SIZE {s.max_message_size}" if s.max_message_size else "SIZE")
        if s.dsn and not privacy & {"noreceipts", "goaway"}:
            words.append("DSN")
        if self._etrn_allowed():
            words.append("ETRN")
        mechanisms = self._offered_mechanisms()
        if mechanisms and self.view.authenticated is None:
            words.append("AUTH " + " ".join(mechanisms))
        if s.tls_available and not self.view.tls:
            words.append("STARTTLS")
        words.append("DELIVERBY")
        if s.chunking:
            words.append("CHUNKING")
        if s.smtputf8:
            words.append("SMTPUTF8")
        words.append("HELP")
        return words

    def _etrn_allowed(self) -> bool:
        return self.settings.offer_etrn and not self.settings.privacy & {"noetrn", "goaway"}

    def _offered_mechanisms(self) -> tuple[str, ...]:
        if self.view.tls or self.settings.auth_without_tls:
            return self.settings.auth_mechanisms
        return ()

    # simple commands

    def _smtp_noop(self, verb: str, args: str) -> None:
        if self._slow_down("noop", self.settings.max_noop_commands):
            return
        self._emit(R.OK.render())

    def _smtp_rset(self, verb: str, args: str) -> None:
        self.view.envelope = None
        self._discard = False
        self._emit(R.RESET.render())

    def _smtp_quit(self, verb: str, args: str) -> None:
        self._emit(R.CLOSING.render(host=self.settings.hostname))
        self._close()

    def _smtp_verb(self, verb: str, args: str) -> None:
        if self.settings.privacy & {"noverb", "goaway"}:
            self._emit(R.VERBOSE_REFUSED.render())
        elif not self._slow_down("noop", self.settings.max_noop_commands):
            self._emit(R.VERBOSE.render())

    def _smtp_help(self, verb: str, args: str) -> None:
        topics = self.settings.help_topics
        if topics is None:
            self._emit(R.HELP_UNAVAILABLE.render(version=self.settings.version))
            return
        topic = args.strip().lower() or "smtp"
        lines = topics.get(topic)
        if not lines:
            self._emit(R.HELP_UNKNOWN.render(topic=printable(topic[:10])))
            return
        self._emit(R.HELP_LINE.render_lines([*lines, "End of HELP info"]))

    # MAIL

    def _smtp_mail(self, verb: str, args: str) -> None:
        view = self.view
        if self.settings.auth_required and view.authenticated is None:
            self._emit(R.AUTH_REQUIRED.render())
            return
        if view.envelope is not None:
            self._emit(R.SENDER_ALREADY.render())
            return
        if view.helo is None and self.settings.privacy & {"needmailhelo", "goaway"}:
            self._emit(R.NEED_HELO.render())
            return
        rest, scanned = _skipword(args, "from")
        if rest is None:
            self._emit(R.SYNTAX_SCANNING.render(word=printable(shorten(scanned))))
            return
        path, param_text, error = _split_path(rest)
        shown = printable(shorten(path))
        if error:
            self._emit(R.ADDRESS_SYNTAX.render(addr=shown, reason=error))
            return
        address = _path_address(path)
        if address:
            try:
                self.policy.check_address(address, sender=True)
            except MailError as refusal:
                self._emit(Reply.from_error(refusal, shown))
                return
        envelope = Envelope(sender=path.strip())
        envelope.macros["s"] = view.helo or ""
        envelope.macros["r"] = self._protocol_name()
        failure = self._mail_params(envelope, _parse_params(param_text))
        if failure is not None:
            self._emit(failure)
            return
        if _has_8bit(address) and not envelope.smtputf8:
            self._emit(R.NON_ASCII_ADDRESS.render(addr=shown))
            return
        limit = self.settings.max_message_size
        if limit and envelope.size_hint is not None and envelope.size_hint > limit:
            self._emit(R.SIZE_OVER_FIXED_MAX.render(max=limit))
            return
        view.envelope = envelope
        try:
            verdict = self.policy.check_mail(view, address)
        except MailError as refusal:
            view.envelope = None
            self._emit(Reply.from_error(refusal, shown))
            return
        self._discard = self._connect_discard or verdict is Verdict.DISCARD
        self._emit(R.SENDER_OK.render(addr=shown))

    def _protocol_name(self) -> str:
        name = "ESMTP" if self.view.esmtp else "SMTP"
        if self.view.esmtp and self.view.tls:
            name += "S"
        if self.view.esmtp and self.view.authenticated is not None:
            name += "A"
        return name

    def _mail_params(
        self, envelope: Envelope, params: list[tuple[str, str | None]]
    ) -> Reply | None:
        seen: set[str] = set()
        for keyword, value in params:
            key = keyword.upper()
            if key == "SIZE":
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="SIZE")
                size = _strtol(value)
                if size > LONG_MAX:
                    return R.SIZE_OVER_MAX_VALUE.render()
                if size < 0:
                    return R.SIZE_INVALID.render()
                envelope.size_hint = size
            elif key == "BODY" and self.settings.eight_bit_mime:
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="BODY")
                try:
                    envelope.body_type = BodyType(value.upper())
                except ValueError:
                    return R.UNKNOWN_BODY.render(value=printable(value))
                if envelope.body_type is BodyType.BINARY_MIME:
                    return R.UNKNOWN_BODY.render(value=printable(value))
            elif key == "RET" and self.settings.dsn:
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="RET")
                if "RET" in seen:
                    return R.PARAM_DUPLICATE.render(name="RET")
                try:
                    envelope.ret = Ret(value.upper())
                except ValueError:
                    return R.BAD_ARGUMENT.render(value=printable(value))
            elif key == "ENVID" and self.settings.dsn:
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="ENVID")
                if "ENVID" in seen:
                    return R.PARAM_DUPLICATE.render(name="ENVID")
                if not value or not _xtext_ok(value) or len(value) > 100:
                    return R.PARAM_SYNTAX.render(name="ENVID")
                envelope.envid = value
            elif key == "AUTH":
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="AUTH=")
                if "AUTH" in seen:
                    return R.PARAM_DUPLICATE.render(name="AUTH")
                if not value or not _xtext_ok(value):
                    return R.PARAM_SYNTAX.render(name="AUTH")
                # RFC 4954 5: trust AUTH= only from an authenticated client.
                envelope.auth = value if self.view.authenticated is not None else "<>"
            elif key == "SMTPUTF8" and self.settings.smtputf8:
                if value is not None:
                    return R.PARAM_NO_VALUE.render(name="SMTPUTF8")
                envelope.smtputf8 = True
            elif key == "BY":
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="BY")
                if not re.fullmatch(r"-?\d+;[RN]T?", value, re.IGNORECASE):
                    return R.PARAM_SYNTAX.render(name="BY")
                envelope.macros["deliverby"] = value
            else:
                return R.PARAM_UNRECOGNIZED.render(name=printable(shorten(keyword)))
            seen.add(key)
        return None

    # RCPT

    def _smtp_rcpt(self, verb: str, args: str) -> None:
        settings = self.settings
        wait = self._counters.rcpt_delay(
            settings.bad_rcpt_throttle, settings.bad_rcpt_throttle_delay
        )
        if wait:
            self._out.append(Pause(wait))
        if self.view.envelope is None:
            self._emit(R.NEED_MAIL_BEFORE_RCPT.render())
            return
        before = len(self._out)
        self._rcpt(args)
        refused = [o for o in self._out[before:] if isinstance(o, Reply) and o.code >= 400]
        if refused:
            self._counters.bad_recipients += 1

    def _rcpt(self, args: str) -> None:
        view = self.view
        envelope = view.envelope
        assert envelope is not None
        limit = self.settings.max_recipients
        if limit and len(envelope.recipients) >= limit:
            self._emit(R.TOO_MANY_RECIPIENTS.render())
            return
        rest, scanned = _skipword(args, "to")
        if rest is None:
            self._emit(R.SYNTAX_SCANNING.render(word=printable(shorten(scanned))))
            return
        path, param_text, error = _split_path(rest)
        shown = printable(shorten(path))
        if error:
            self._emit(R.ADDRESS_SYNTAX.render(addr=shown, reason=error))
            return
        address = _path_address(path)
        if not address:
            self._emit(R.ADDRESS_SYNTAX.render(addr=shown, reason="User address required"))
            return
        try:
            self.policy.check_address(address, sender=False)
        except MailError as refusal:
            self._emit(Reply.from_error(refusal, shown))
            return
        recipient = Recipient(address=path.strip())
        failure = self._rcpt_params(recipient, _parse_params(param_text))
        if failure is not None:
            self._emit(failure)
            return
        if _has_8bit(address) and not envelope.smtputf8:
            self._emit(R.NON_ASCII_ADDRESS.render(addr=shown))
            return
        try:
            verdict = self.policy.check_rcpt(view, address)
        except MailError as refusal:
            self._emit(Reply.from_error(refusal, shown))
            return
        if verdict is Verdict.DISCARD:
            self._discard = True
        envelope.recipients.append(recipient)
        self._emit(R.RECIPIENT_OK.render(addr=shown))

    def _rcpt_params(
        self, recipient: Recipient, params: list[tuple[str, str | None]]
    ) -> Reply | None:
        seen: set[str] = set()
        for keyword, value in params:
            key = keyword.upper()
            if key == "NOTIFY" and self.settings.dsn:
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="NOTIFY")
                if "NOTIFY" in seen:
                    return R.PARAM_DUPLICATE.render(name="NOTIFY")
                words = [w.strip().upper() for w in value.split(",")]
                try:
                    notify = frozenset(Notify(w) for w in words)
                except ValueError:
                    return R.BAD_NOTIFY.render(value=printable(value))
                if Notify.NEVER in notify and len(notify) > 1:
                    return R.BAD_NOTIFY.render(value=printable(value))
                recipient.notify = notify
            elif key == "ORCPT" and self.settings.dsn:
                if value is None:
                    return R.PARAM_NEEDS_VALUE.render(name="ORCPT")
                if "ORCPT" in seen:
                    return R.PARAM_DUPLICATE.render(name="ORCPT")
                addr_type, semi, xtext = value.partition(";")
                if not semi or not addr_type or not xtext or not _xtext_ok(xtext):
                    return R.PARAM_SYNTAX.render(name="ORCPT")
                if not _xtext_ok(addr_type):
                    return R.PARAM_SYNTAX.render(name="ORCPT")
                recipient.orcpt = value
            else:
                return R.PARAM_UNRECOGNIZED.render(name=printable(shorten(keyword)))
            seen.add(key)
        return None

    # DATA

    def _smtp_data(self, verb: str, args: str) -> None:
        envelope = self.view.envelope
        if envelope is None:
            self._emit(R.NEED_MAIL_COMMAND.render())
            return
        if not envelope.recipients:
            self._emit(R.NEED_RCPT.render())
            return
        if self._input_pending():
            # The message written before our 354: smuggling, or a broken client.
            self._emit(R.PROTOCOL_ERROR.render())
            self._close()
            return
        self._emit(R.START_DATA.render())
        self._begin_message(envelope)
        self._state = _State.DATA

    def _begin_message(self, envelope: Envelope) -> None:
        self._reader = _MessageReader(self.settings)
        self._out.append(MessageStart(envelope))

    def _run_data(self) -> bool:
        """Consume DATA lines; True when the message ended (the command loop goes on)."""
        reader = self._reader
        assert reader is not None
        buf = self._buffer
        pos = 0
        ended = False
        bulk = self.bulk_body
        try:
            while True:
                if bulk and reader.at_line_start and not reader.in_headers:
                    pos, ended, bulk = self._data_lines_in_bulk(reader, pos)
                    if ended:
                        break
                newline = buf.find(b"\n", pos)
                if newline < 0:
                    pos = self._data_partial_line(reader, pos)
                    break
                if newline == pos or buf[newline - 1] != 0x0D:
                    raise _ProtocolViolation(R.BARE_LF.render())
                content = bytes(buf[pos : newline - 1])
                pos = newline + 1
                if b"\r" in content:
                    raise _ProtocolViolation(R.BARE_CR.render())
                if not reader.at_line_start:
                    reader.body_bytes(content + b"\n")
                    reader.at_line_start = True
                    continue
                if content == b".":
                    ended = True
                    break
                if content.startswith(b"."):
                    content = content[1:]
                reader.line(content)
        finally:
            del buf[:pos]
        if ended:
            self._finish_message()
            return True
        self._flush_body()
        if self._eof:
            self._close()
        return False

    def _data_lines_in_bulk(self, reader: _MessageReader, pos: int) -> tuple[int, bool, bool]:
        """The body's complete lines from `pos` (at a line start) at once, up to and with
        the end-of-data line: (new pos, whether the message ended, whether to go on in
        bulk). What the line-by-line loop does, with bytes searches over the whole run of
        lines: when a line end is bare, the run is left to that loop, which finds the
        line and refuses it (False: no bulk for the rest of this input)."""
        buf = self._buffer
        last = buf.rfind(b"\n", pos)
        if last < 0 or buf.startswith(b".\r\n", pos):
            return pos, False, True  # no complete line, or the end at once: one by one
        dot = buf.find(b"\r\n.\r\n", pos, last + 1)
        end = last + 1 if dot < 0 else dot + 2
        run = bytes(buf[pos:end])
        line_ends = run.count(b"\r\n")
        if run.count(b"\n") != line_ends or run.count(b"\r") != line_ends:
            return pos, False, False
        run = run.replace(b"\r\n", b"\n")
        if run.startswith(b"."):
            run = run[1:]
        reader.body_bytes(run.replace(b"\n.", b"\n"))
        if dot < 0:
            return end, False, True
        return end + 3, True, True

    def _data_partial_line(self, reader: _MessageReader, pos: int) -> int:
        """An unfinished line: check it, pass a very long one on in pieces; the new pos."""
        buf = self._buffer
        cr = buf.find(b"\r", pos)
        if 0 <= cr < len(buf) - 1:
            raise _ProtocolViolation(R.BARE_CR.render())
        if len(buf) - pos <= BODY_CHUNK_SIZE or reader.in_headers:
            return pos
        keep = 1 if buf[-1:] == b"\r" else 0
        piece = bytes(buf[pos : len(buf) - keep])
        if reader.at_line_start and piece.startswith(b"."):
            piece = piece[1:]
        reader.body_bytes(piece)
        reader.at_line_start = False
        return len(buf) - keep

    def _flush_body(self, force: bool = False) -> None:
        if self._reader is None:
            return
        chunk = self._reader.take_chunk(force)
        if chunk:
            self._out.append(BodyChunk(chunk))

    def _finish_message(self) -> None:
        reader = self._reader
        envelope = self.view.envelope
        assert reader is not None and envelope is not None
        self._flush_body(force=True)
        refusal: Reply | None = None
        if reader.too_big:
            refusal = R.MESSAGE_TOO_BIG.render(max=self.settings.max_message_size)
        elif reader.headers_too_large:
            refusal = R.HEADERS_TOO_LARGE.render(max=self.settings.max_header_length)
        elif reader.hop_count() > self.settings.max_hop_count:
            client = self.view.client
            refusal = R.TOO_MANY_HOPS.render(
                count=reader.hop_count(),
                max=self.settings.max_hop_count,
                sender=_path_address(envelope.sender),
                via=client.name or "localhost",
                rcpt=envelope.recipients[0].address,
            )
        self._reader = None
        if refusal is not None:
            self._out.append(MessageAborted(refusal.text))
            self._emit(refusal)
            self.view.envelope = None
            self._discard = False
            if self._state is not _State.CLOSED:
                self._state = _State.COMMAND
            return
        if reader.eight_bit:
            envelope.flags.add("8")
        self._out.append(
            MessageComplete(envelope, tuple(reader.headers), reader.size, discard=self._discard)
        )
        self._state = _State.AWAIT_QUEUE

    def _end_message(self) -> None:
        self.view.envelope = None
        self._discard = False
        self._state = _State.COMMAND
        self._run()

    # BDAT (RFC 3030)

    def _smtp_bdat(self, verb: str, args: str) -> None:
        words = args.split()
        if not words or not words[0].isdigit() or len(words) > 2:
            self._emit(R.BDAT_SYNTAX.render())
            self._close()  # the chunk's length is unknown: the stream cannot be followed
            return
        if len(words) == 2 and words[1].upper() != "LAST":
            self._emit(R.BDAT_SYNTAX.render())
            self._close()
            return
        self._bdat_remaining = self._bdat_size = int(words[0])
        self._bdat_last = len(words) == 2
        envelope = self.view.envelope
        if self._bdat_failed is None:
            if envelope is None:
                self._bdat_failed = R.NEED_MAIL_COMMAND.render()
            elif not envelope.recipients:
                self._bdat_failed = R.NEED_RCPT.render()
            elif self._reader is None:
                self._begin_message(envelope)
                self._bdat_pending_cr = False
        self._state = _State.BDAT

    def _run_bdat(self) -> bool:
        take = min(self._bdat_remaining, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        self._bdat_remaining -= take
        if self._bdat_failed is None and data:
            self._bdat_lines(data)
        if self._bdat_remaining:
            self._flush_body()
            if self._eof:
                self._close()
            return False
        if self._bdat_failed is not None:
            failure = self._bdat_failed
            if self._bdat_last:
                self._bdat_failed = None
            if self._reader is not None:
                self._out.append(MessageAborted(failure.text))
                self._reader = None
            self.view.envelope = None
            self._state = _State.COMMAND
            self._emit(failure)
            return True
        if not self._bdat_last:
            self._flush_body()
            self._state = _State.COMMAND
            self._emit(R.BDAT_OK.render(size=self._bdat_size))
            return True
        if self._bdat_pending_cr:
            raise _ProtocolViolation(R.BARE_CR.render())
        if self._bdat_tail:
            self._bdat_line(self._bdat_tail)  # a last line without CRLF
            self._bdat_tail = b""
        self._finish_message()
        return True

    _bdat_tail = b""

    def _bdat_lines(self, data: bytes) -> None:
        if self._bdat_pending_cr:
            data = b"\r" + data
            self._bdat_pending_cr = False
        data = self._bdat_tail + data
        self._bdat_tail = b""
        pos = 0
        while True:
            newline = data.find(b"\n", pos)
            if newline < 0:
                tail = data[pos:]
                if tail.endswith(b"\r"):
                    self._bdat_pending_cr = True
                    tail = tail[:-1]
                if b"\r" in tail:
                    raise _ProtocolViolation(R.BARE_CR.render())
                self._bdat_tail = tail
                if len(tail) > BODY_CHUNK_SIZE and self._reader and not self._reader.in_headers:
                    self._reader.body_bytes(tail)
                    self._bdat_tail = b""
                return
            if newline == pos or data[newline - 1] != 0x0D:
                raise _ProtocolViolation(R.BARE_LF.render())
            content = data[pos : newline - 1]
            if b"\r" in content:
                raise _ProtocolViolation(R.BARE_CR.render())
            self._bdat_line(content)
            pos = newline + 1

    def _bdat_line(self, content: bytes) -> None:
        assert self._reader is not None
        self._reader.line(content)
        self._flush_body()

    # VRFY / EXPN / ETRN

    def _lookup_target(self, kind: str, refused: R.ReplyTemplate, args: str) -> str | None:
        """What VRFY and EXPN check first: PrivacyOptions (`need<kind>helo`, `no<kind>`,
        `goaway`) and a non-empty argument. The target, or None once refused."""
        privacy = self.settings.privacy
        if privacy & {f"need{kind}helo", "goaway"} and self.view.helo is None:
            self._emit(R.DEMAND_HELO.render())
            return None
        if privacy & {f"no{kind}", "goaway"}:
            self._emit(refused.render())
            return None
        target = args.strip()
        if not target:
            self._emit(R.ARGUMENT_REQUIRED.render())
            return None
        return target

    def _smtp_vrfy(self, verb: str, args: str) -> None:
        later = self._verify_slow_down()
        if later is None:
            return
        target = self._lookup_target("vrfy", R.VRFY_REFUSED, args)
        if target is None:
            return
        try:
            result = self.policy.verify(_path_address(target))
        except MailError as refusal:
            self._emit(Reply.from_error(refusal, printable(shorten(target))))
            return
        shown = _vrfy_form(result)
        if result.local:
            self._emit(R.VERIFIED.render(addr=shown))
        else:
            self._emit(R.NOT_LOCAL.render(addr=shown))
        if later:
            self._out.append(Pause(later))

    def _smtp_expn(self, verb: str, args: str) -> None:
        later = self._verify_slow_down()
        if later is None:
            return
        target = self._lookup_target("expn", R.EXPN_REFUSED, args)
        if target is None:
            return
        try:
            results = self.policy.expand(_path_address(target))
        except MailError as refusal:
            self._emit(Reply.from_error(refusal, printable(shorten(target))))
            return
        self._emit(R.VERIFIED.render_lines([_vrfy_form(r) for r in results]))
        if later:
            self._out.append(Pause(later))

    def _verify_slow_down(self) -> int | None:
        """VRFY and EXPN share one count; sendmail waits part of the delay before
        looking the address up and the rest after answering. None: disconnected."""
        delay = self._counters.count(
            "vrfy", throttle.MAX_VRFY_COMMANDS, children_limited=self.settings.children_limited
        )
        if delay.now:
            self._out.append(Pause(delay.now))
        if delay.disconnect:
            self._emit(R.TOO_MANY_BAD_COMMANDS.render(host=self.settings.hostname))
            return None
        return delay.later

    def _slow_down(self, kind: str, limit: int) -> bool:
        """Count a command of `kind` and wait as sendmail does before answering it;
        True when the client is disconnected instead."""
        delay = self._counters.count(kind, limit, children_limited=self.settings.children_limited)
        if delay.now + delay.later:
            self._out.append(Pause(delay.now + delay.later))
        if delay.disconnect:
            self._emit(R.TOO_MANY_BAD_COMMANDS.render(host=self.settings.hostname))
            return True
        return False

    def _smtp_etrn(self, verb: str, args: str) -> None:
        if not self._etrn_allowed():
            self._emit(R.ETRN_REFUSED.render())
            return
        node = args.strip()
        if not node:
            self._emit(R.ETRN_NEEDS_PARAMETER.render())
            return
        if self._slow_down("etrn", throttle.MAX_ETRN_COMMANDS):
            return
        if not re.fullmatch(r"[#@]?[A-Za-z0-9._\-\[\]:]+", node):
            self._emit(R.ETRN_INVALID.render())
            return
        self._out.append(EtrnRequest(node))
        self._emit(R.ETRN_STARTED.render(node=node))

    # STARTTLS

    def _smtp_starttls(self, verb: str, args: str) -> None:
        if args.strip():
            self._emit(R.TLS_NO_PARAMETERS.render())
            return
        if self.view.tls:
            self._emit(R.TLS_ALREADY_ACTIVE.render())
            return
        if not self.settings.tls_available:
            self._emit(R.TLS_UNAVAILABLE.render())
            return
        self._emit(R.TLS_READY.render())
        # CVE-2011-0411: whatever came with STARTTLS was sent in clear; drop it.
        self._buffer.clear()
        self._out.append(StartTLS())
        self._state = _State.AWAIT_TLS

    # AUTH (RFC 4954): PLAIN and LOGIN

    def _smtp_auth(self, verb: str, args: str) -> None:
        words = args.split()
        if not words:
            self._emit(R.AUTH_NEEDS_MECHANISM.render())
            return
        mechanism = words[0].upper()
        if self.view.authenticated is not None:
            self._emit(R.AUTH_ALREADY.render())
            return
        if mechanism not in self._offered_mechanisms():
            self._emit(R.AUTH_MECHANISM_UNAVAILABLE.render(mechanism=printable(words[0][:32])))
            return
        if self.view.envelope is not None:
            self._emit(R.AUTH_IN_TRANSACTION.render())
            return
        self._auth_mechanism = mechanism
        self._auth_step = []
        initial = words[1] if len(words) > 1 else None
        if initial is not None:
            self._auth_response(initial)
            return
        self._state = _State.AUTH
        self._auth_challenge()

    def _auth_challenge(self) -> None:
        if self._auth_mechanism == "LOGIN":
            prompt = "Username:" if not self._auth_step else "Password:"
            challenge = base64.b64encode(prompt.encode()).decode()
        else:
            challenge = ""
        self._emit(R.AUTH_CHALLENGE.render(challenge=challenge))

    def _auth_response(self, line: str) -> None:
        self._state = _State.COMMAND
        if line.strip() == "*":
            self._emit(R.AUTH_ABORTED.render())
            return
        decoded = _decode_b64(line.strip())
        if decoded is None:
            self._emit(R.AUTH_UNDECODABLE.render(text=printable(shorten(line.strip(), 40))))
            return
        self._auth_step.append(decoded)
        if self._auth_mechanism == "LOGIN" and len(self._auth_step) < 2:
            self._state = _State.AUTH
            self._auth_challenge()
            return
        if self._auth_mechanism == "PLAIN":
            parts = decoded.split("\x00")
            if len(parts) != 3:
                self._emit(R.AUTH_FAILED.render())
                return
            authzid, authcid, password = parts
        else:
            authcid, password = self._auth_step
            authzid = ""
        if authcid and self.policy.authenticate(authcid, password, authzid):
            self.view.authenticated = authzid or authcid
            self._emit(R.AUTH_SUCCEEDED.render())
        else:
            self._emit(R.AUTH_FAILED.render())


def _vrfy_form(result: VerifyResult) -> str:
    if result.full_name:
        return f"{result.full_name} <{result.address}>"
    return f"<{result.address}>"


def _strtol(text: str) -> int:
    """C strtol(): leading blanks, a sign, the digits that follow (0 when none)."""
    match = re.match(r"\s*([+-]?)(\d*)", text)
    assert match is not None
    digits = match.group(2)
    if not digits:
        return 0
    value = int(digits)
    return -value if match.group(1) == "-" else value


__all__ = [
    "BodyChunk",
    "ClientInfo",
    "Close",
    "ConnectDecision",
    "EtrnRequest",
    "MessageAborted",
    "MessageComplete",
    "MessageStart",
    "Output",
    "SessionSettings",
    "SessionView",
    "SmtpPolicy",
    "SmtpSession",
    "StartTLS",
    "Verdict",
    "VerifyResult",
]
