"""POP3 server sessions, sans-IO: bytes in, events out.

This module owns the POP3 conversation: RFC 1939 (USER PASS APOP STAT LIST RETR DELE
NOOP RSET QUIT TOP UIDL and the AUTHORIZATION / TRANSACTION / UPDATE states), RFC 2449
(CAPA and the response codes [IN-USE] [AUTH] [SYS/TEMP] [SYS/PERM]), RFC 2595 (STLS) and
RFC 5034 (AUTH PLAIN). The wire form of a message (CRLF line ends, byte-stuffing,
sizes counted in the octets sent) is `pop3wire`'s.

It never touches a socket, a file, a lock or the clock. What it needs from outside comes
through three narrow doors the daemon fills in: `verify(user, password)` for credentials,
`open_maildrop(user)` returning a `Maildrop` (already locked for this session), and
`apop_secret(user)` when APOP is offered (with the greeting's timestamp, which the
daemon makes). What the daemon must do comes back as events: `Send` bytes, `Stream`
the blocks of a RETR or TOP response (pulling a block reads the next block of the
message from the maildrop), `Pause` before going on (the delay after a failed login),
`StartTLS`, `Close`, and `Log` lines. Deletions reach the mailbox only through `Maildrop.commit`,
called in the UPDATE state after QUIT; `connection_lost()` closes the maildrop with
nothing deleted.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import itertools
import logging
import secrets
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Protocol

from pysendmail.errors import MailError, TempFailure
from pysendmail.protocol.pop3wire import message_chunks, multiline
from pysendmail.record import record

# RFC 2449: a command line is at most 255 octets with its CRLF. A SASL response line
# (RFC 5034) may be longer: PLAIN carries two names and a password in base64.
MAX_COMMAND_LINE = 255
MAX_SASL_LINE = 2048
# A message number longer than this cannot name a message; it only costs int() time.
_MAX_NUMBER_DIGITS = 10


def unique_id(uid: str) -> str:
    """`uid` if RFC 1939 allows it in UIDL (1-70 characters 0x21-0x7E), else its SHA-1.

    Maildir names written by other programs can be longer or hold other characters;
    the digest keeps them unique and just as stable.
    """
    if 1 <= len(uid) <= 70 and all("!" <= ch <= "~" for ch in uid):
        return uid
    return hashlib.sha1(uid.encode("utf-8", "surrogateescape")).hexdigest()


# ---------------------------------------------------------------- what the session needs


class MessageInfo(Protocol):
    """What the session needs to know of one message of an opened maildrop."""

    @property
    def uid(self) -> str:
        """Stable across sessions and deliveries while the message stays in the maildrop."""
        ...

    @property
    def wire_size(self) -> int:
        """crlf_size() of the message: the octets RETR sends before byte-stuffing."""
        ...


class Maildrop(Protocol):
    """A user's mailbox, opened and indexed for one session by `open_maildrop(user)`.

    `pysendmail.maildrop.open_maildrop()` gives one. `messages` is the index made once
    when the maildrop was opened, numbered from 1; messages delivered afterwards are not
    in it and must survive `commit`. Failures are `MailError`s: temporary ones
    (`is_temporary`) become `[SYS/TEMP]`, the others `[SYS/PERM]`.
    """

    @property
    def messages(self) -> Sequence[MessageInfo]: ...

    def iter_bytes(self, number: int, chunk_size: int = ...) -> Iterator[bytes]:
        """Message `number` (1-based) as stored for the user (no mbox From_ line), in
        blocks of at most `chunk_size` octets, read as they are asked for."""
        ...

    def commit(self, deleted: Collection[int]) -> None:
        """Remove these messages (1-based numbers) atomically; keep every other one."""
        ...

    def close(self) -> None:
        """Give the maildrop up (locks released). Nothing is deleted but by `commit`."""
        ...


class MaildropInUse(TempFailure):
    """Another session holds this maildrop: `-ERR [IN-USE]`."""

    status = "4.2.0"


Verify = Callable[[str, str], bool]
OpenMaildrop = Callable[[str], Maildrop]
ApopSecret = Callable[[str], str | None]


# ---------------------------------------------------------------- what the session asks for


@record(frozen=True)
class Send:
    """Bytes to write to the client, in order."""

    data: bytes


@record(frozen=True)
class Stream:
    """Blocks to write to the client, in order, pulled one at a time (RETR and TOP).

    Pulling a block reads the mailbox: a `MailError` or `OSError` raised then comes after
    the `+OK` line went out, so the daemon can only log it and close the connection
    (which commits nothing).
    """

    blocks: Iterator[bytes]


@record(frozen=True)
class Pause:
    """Wait this long before the next event and before reading more (failed-login delay)."""

    seconds: float


@record(frozen=True)
class StartTLS:
    """Start TLS as the server now (the +OK has been sent), then call `tls_started()`."""


@record(frozen=True)
class Close:
    """Close the connection after the events before this one."""


@record(frozen=True)
class Log:
    """A line for the mail log."""

    level: int
    message: str


Event = Send | Stream | Pause | StartTLS | Close | Log


@record(frozen=True)
class SessionSettings:
    """What the daemon tells a session about its connection and its policy."""

    hostname: str = "localhost"
    tls_available: bool = False  # a server TLS context exists: STLS is offered
    tls_active: bool = False  # the connection is already TLS (POP3S on 995)
    allow_plaintext_auth: bool = False  # USER/PASS and AUTH PLAIN without TLS
    failed_login_delay: float = 2.0  # seconds, doubled after each further failure
    max_failed_logins: int = 3  # then the connection is closed
    max_bad_commands: int = 20  # -ERR replies to bad commands before closing
    peer: str = ""  # for log lines
    block_size: int = 65536  # RETR and TOP read the mailbox in blocks of this many octets


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


def _ok(text: str) -> Send:
    return Send(b"+OK " + text.encode() + b"\r\n")


def _err(text: str) -> Send:
    return Send(b"-ERR " + text.encode() + b"\r\n")


class _BadCommand(Exception):
    """A command the client got wrong: answered with -ERR and counted."""


_AUTH_FAILED = "[AUTH] Authentication failed"
_PLAINTEXT_REFUSED = "[AUTH] Plaintext authentication disallowed on non-secure connection"


class Pop3Session:
    """One POP3 connection's state machine. Feed `receive(data)`; act on the events."""

    def __init__(
        self,
        settings: SessionSettings,
        verify: Verify,
        open_maildrop: OpenMaildrop,
        *,
        apop_secret: ApopSecret | None = None,
        apop_timestamp: str | None = None,
    ) -> None:
        self.settings = settings
        self._verify = verify
        self._open_maildrop = open_maildrop
        self._apop_secret = apop_secret
        self.apop_timestamp = (
            (apop_timestamp or f"<{secrets.token_hex(8)}@{settings.hostname}>")
            if apop_secret
            else None
        )
        self.state = State.AUTHORIZATION
        self.tls_active = settings.tls_active
        self.user: str | None = None  # authenticated user, once in TRANSACTION
        self._pending_user: str | None = None  # after USER, before PASS
        self._sasl_plain = False  # waiting for the AUTH PLAIN response line
        self._buffer = b""
        self._discarding = False  # inside an overlong line, until its LF
        self._failed_logins = 0
        self._bad_commands = 0
        self._maildrop: Maildrop | None = None
        self._messages: Sequence[MessageInfo] = ()
        self._deleted: set[int] = set()  # 1-based message numbers

    # ------------------------------------------------------------ the daemon's calls

    def greeting(self) -> list[Event]:
        text = f"{self.settings.hostname} POP3 server ready"
        if self.apop_timestamp:
            text += " " + self.apop_timestamp
        return [_ok(text)]

    def receive(self, data: bytes) -> list[Event]:
        """Take bytes from the client; return what to do, in order."""
        events: list[Event] = []
        if self.state is State.CLOSED:
            return events
        self._buffer += data
        while self.state is not State.CLOSED:
            newline = self._buffer.find(b"\n")
            limit = MAX_SASL_LINE if self._sasl_plain else MAX_COMMAND_LINE
            if self._discarding:
                if newline < 0:
                    self._buffer = b""
                    break
                self._buffer = self._buffer[newline + 1 :]
                self._discarding = False
                continue
            if newline < 0:
                if len(self._buffer) > limit:
                    self._buffer = b""
                    self._discarding = True
                    events += self._too_long()
                break
            line = self._buffer[:newline]
            self._buffer = self._buffer[newline + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) + 2 > limit:
                events += self._too_long()
                continue
            line_events = self._line(line)
            events += line_events
            if any(isinstance(event, StartTLS) for event in line_events):
                # What a client sent after STLS in the same packet was sent in clear
                # text before the handshake: it must not be taken as coming over TLS.
                self._buffer = b""
                break
        return events

    def tls_started(self) -> None:
        """The handshake after STLS succeeded: forget everything said before it."""
        self.tls_active = True
        self._pending_user = None
        self._buffer = b""

    def connection_lost(self) -> list[Event]:
        """The client went away (or the daemon is closing it): nothing is deleted."""
        events: list[Event] = []
        if self._maildrop is not None:
            maildrop, self._maildrop = self._maildrop, None
            maildrop.close()
            if self._deleted:
                events.append(
                    Log(
                        logging.INFO,
                        f"{self.user}: connection lost, {len(self._deleted)} "
                        "deletions not committed",
                    )
                )
        self.state = State.CLOSED
        return events

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # ------------------------------------------------------------ commands

    def _bad(self, text: str) -> list[Event]:
        self._bad_commands += 1
        if self._bad_commands >= self.settings.max_bad_commands:
            events = [_err("Too many bad commands, closing connection"), Close()]
            events[:0] = self.connection_lost()
            return events
        return [_err(text)]

    def _too_long(self) -> list[Event]:
        self._sasl_plain = False  # an overlong SASL response ends the exchange too
        return self._bad("line too long")

    def _line(self, line: bytes) -> list[Event]:
        if b"\0" in line:
            self._sasl_plain = False
            return self._bad("NUL byte in command")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._sasl_plain = False
            return self._bad("command is not valid UTF-8")
        if self._sasl_plain:
            self._sasl_plain = False
            return self._auth_plain_response(text)
        keyword, _, argument = text.partition(" ")
        keyword = keyword.upper()
        if not keyword.isascii() or not keyword.isalpha() or len(keyword) > 4:
            return self._bad("unknown command")
        handler = _COMMANDS.get(keyword)
        if handler is None:
            return self._bad("unknown command")
        states = _STATES_OF[keyword]
        if self.state not in states:
            return self._bad(f"{keyword} not valid in the {self.state.value} state")
        try:
            return handler(self, argument)
        except _BadCommand as bad:
            return self._bad(str(bad))

    def _capa(self, argument: str) -> list[Event]:
        self._no_argument(argument)
        lines = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        if self.state is State.AUTHORIZATION:
            if self._plaintext_allowed():
                lines += ["USER", "SASL PLAIN"]
            if self.settings.tls_available and not self.tls_active:
                lines.append("STLS")
        lines.append("IMPLEMENTATION pysendmail")
        body = "".join(line + "\r\n" for line in lines).encode()
        return [Send(multiline("Capability list follows", body))]

    def _noop(self, argument: str) -> list[Event]:
        self._no_argument(argument)
        return [_ok("")]

    def _quit(self, argument: str) -> list[Event]:
        self._no_argument(argument)
        if self.state is State.AUTHORIZATION:
            self.state = State.CLOSED
            return [_ok(f"{self.settings.hostname} POP3 server signing off"), Close()]
        return self._update()

    def _stls(self, argument: str) -> list[Event]:
        self._no_argument(argument)
        if not self.settings.tls_available or self.tls_active:
            raise _BadCommand("STLS not available" if not self.tls_active else "TLS already active")
        return [_ok("Begin TLS negotiation"), StartTLS()]

    # ------------------------------------------------------------ authorization

    def _plaintext_allowed(self) -> bool:
        return self.tls_active or self.settings.allow_plaintext_auth

    def _user(self, argument: str) -> list[Event]:
        if not self._plaintext_allowed():
            return self._bad(_PLAINTEXT_REFUSED)
        name = argument.strip()
        if not name or not name.isprintable() or " " in name:
            raise _BadCommand("USER takes one name")
        self._pending_user = name
        return [_ok("send PASS")]

    def _pass(self, argument: str) -> list[Event]:
        if not self._plaintext_allowed():
            return self._bad(_PLAINTEXT_REFUSED)
        if self._pending_user is None:
            raise _BadCommand("USER first")
        user, self._pending_user = self._pending_user, None
        return self._login(user, argument, "USER")

    def _apop(self, argument: str) -> list[Event]:
        if self._apop_secret is None or self.apop_timestamp is None:
            raise _BadCommand("APOP not available")
        parts = argument.split(" ")
        if len(parts) != 2 or not parts[0] or len(parts[1]) != 32:
            raise _BadCommand("APOP takes a name and an MD5 digest")
        user, digest = parts[0], parts[1].lower()
        secret = self._apop_secret(user)
        # An unknown user is compared against a random secret so that the reply, and
        # its time, do not say which part was wrong.
        expected = hashlib.md5(
            (
                self.apop_timestamp + (secret if secret is not None else secrets.token_hex())
            ).encode(),
            usedforsecurity=False,
        ).hexdigest()
        good = hmac.compare_digest(expected, digest) and secret is not None
        return self._after_check(user, good, "APOP")

    def _auth(self, argument: str) -> list[Event]:
        words = argument.split()
        if not words:
            return [Send(multiline("SASL mechanisms follow", b"PLAIN\r\n"))]
        if words[0].upper() != "PLAIN" or len(words) > 2:
            raise _BadCommand("Unsupported authentication mechanism")
        if not self._plaintext_allowed():
            return self._bad(_PLAINTEXT_REFUSED)
        if len(words) == 2:
            return self._auth_plain_response(words[1])
        self._sasl_plain = True
        return [Send(b"+ \r\n")]

    def _auth_plain_response(self, response: str) -> list[Event]:
        response = response.strip()
        if response == "*":
            return self._bad("AUTH cancelled")
        try:
            decoded = b"" if response == "=" else base64.b64decode(response, validate=True)
            authzid, authcid, password = decoded.decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return self._bad("[AUTH] Invalid AUTH PLAIN response")
        if authzid and authzid != authcid:
            # Acting as another user is not something this server grants.
            return self._after_check(authcid, False, "PLAIN")
        return self._login(authcid, password, "PLAIN")

    def _login(self, user: str, password: str, mechanism: str) -> list[Event]:
        good = bool(user) and self._verify(user, password)
        return self._after_check(user, good, mechanism)

    def _after_check(self, user: str, good: bool, mechanism: str) -> list[Event]:
        peer = f" from {self.settings.peer}" if self.settings.peer else ""
        if not good:
            self._failed_logins += 1
            delay = self.settings.failed_login_delay * 2 ** (self._failed_logins - 1)
            events: list[Event] = [
                Log(logging.WARNING, f"authentication failed for {user!r}{peer} ({mechanism})"),
                Pause(delay),
                _err(_AUTH_FAILED),
            ]
            if self._failed_logins >= self.settings.max_failed_logins:
                self.state = State.CLOSED
                events.append(Close())
            return events
        try:
            maildrop = self._open_maildrop(user)
        except (MailError, OSError) as error:
            return self._maildrop_failure(error, f"{user}: maildrop{peer}", "Maildrop")
        self._maildrop = maildrop
        self._messages = tuple(maildrop.messages)
        self._deleted = set()
        self.user = user
        self.state = State.TRANSACTION
        count, octets = self._totals()
        return [
            Log(logging.INFO, f"{user}: logged in{peer} ({mechanism}), {count} messages"),
            _ok(f"maildrop has {count} messages ({octets} octets)"),
        ]

    # ------------------------------------------------------------ transaction

    def _totals(self) -> tuple[int, int]:
        live = [self._messages[number - 1] for number in self._live_numbers()]
        return len(live), sum(message.wire_size for message in live)

    def _live_numbers(self) -> list[int]:
        return [n for n in range(1, len(self._messages) + 1) if n not in self._deleted]

    def _no_argument(self, argument: str) -> None:
        if argument.strip():
            raise _BadCommand("no argument expected")

    def _number(self, word: str) -> int:
        """The number of a message that is there and not deleted, from the client's `word`."""
        if not word.isascii() or not word.isdigit() or len(word) > _MAX_NUMBER_DIGITS:
            raise _BadCommand("invalid message number")
        number = int(word)
        if not 1 <= number <= len(self._messages):
            raise _BadCommand("no such message")
        if number in self._deleted:
            raise _BadCommand(f"message {number} already deleted")
        return number

    def _one_number(self, argument: str) -> int:
        words = argument.split()
        if len(words) != 1:
            raise _BadCommand("one message number expected")
        return self._number(words[0])

    def _stat(self, argument: str) -> list[Event]:
        self._no_argument(argument)
        count, octets = self._totals()
        return [_ok(f"{count} {octets}")]

    def _list(self, argument: str) -> list[Event]:
        return self._listing(argument, lambda message: str(message.wire_size), "messages")

    def _uidl(self, argument: str) -> list[Event]:
        return self._listing(argument, lambda message: unique_id(message.uid), "unique-id listing")

    def _listing(
        self, argument: str, field: Callable[[MessageInfo], str], title: str
    ) -> list[Event]:
        if argument.strip():
            number = self._one_number(argument)
            return [_ok(f"{number} {field(self._messages[number - 1])}")]
        lines = [f"{n} {field(self._messages[n - 1])}\r\n" for n in self._live_numbers()]
        return [Send(multiline(title + " follows", "".join(lines).encode()))]

    def _stream(self, first_line: str, number: int, top: int | None) -> list[Event]:
        """The message as a `Stream`, its first block read now so that a mailbox that
        cannot be read still gets an -ERR instead of a `+OK` and a cut connection."""
        assert self._maildrop is not None
        try:
            blocks = iter(self._maildrop.iter_bytes(number, self.settings.block_size))
            first_block = next(blocks, b"")
        except (MailError, OSError) as error:
            return self._maildrop_failure(error, f"{self.user}: message {number}", "Message")
        stored = itertools.chain((first_block,), blocks)
        return [Stream(message_chunks(b"+OK " + first_line.encode() + b"\r\n", stored, top))]

    def _maildrop_failure(self, error: Exception, context: str, what: str) -> list[Event]:
        if isinstance(error, MaildropInUse):
            return [
                Log(logging.INFO, f"{context}: in use"),
                _err("[IN-USE] Maildrop is locked by another session"),
            ]
        if isinstance(error, OSError) or (isinstance(error, MailError) and error.is_temporary):
            return [
                Log(logging.ERROR, f"{context}: {error}"),
                _err(f"[SYS/TEMP] {what} unavailable, try again later"),
            ]
        return [
            Log(logging.ERROR, f"{context}: {error} (left untouched)"),
            _err(f"[SYS/PERM] {what} cannot be read; ask the postmaster"),
        ]

    def _retr(self, argument: str) -> list[Event]:
        number = self._one_number(argument)
        octets = self._messages[number - 1].wire_size
        return self._stream(f"{octets} octets", number, None)

    def _top(self, argument: str) -> list[Event]:
        words = argument.split()
        if len(words) != 2:
            raise _BadCommand("TOP takes a message number and a line count")
        number = self._number(words[0])
        if not words[1].isascii() or not words[1].isdigit() or len(words[1]) > _MAX_NUMBER_DIGITS:
            raise _BadCommand("invalid line count")
        return self._stream("top of message follows", number, int(words[1]))

    def _dele(self, argument: str) -> list[Event]:
        number = self._one_number(argument)
        self._deleted.add(number)
        return [_ok(f"message {number} deleted")]

    def _rset(self, argument: str) -> list[Event]:
        self._no_argument(argument)
        self._deleted.clear()
        count, octets = self._totals()
        return [_ok(f"maildrop has {count} messages ({octets} octets)")]

    # ------------------------------------------------------------ update

    def _update(self) -> list[Event]:
        self.state = State.UPDATE
        maildrop, self._maildrop = self._maildrop, None
        assert maildrop is not None
        deleted = frozenset(self._deleted)
        try:
            if deleted:
                maildrop.commit(deleted)
        except (MailError, OSError) as error:
            self.state = State.CLOSED
            return [
                Log(logging.ERROR, f"{self.user}: deletions not committed: {error}"),
                _err("[SYS/TEMP] Some deleted messages not removed"),
                Close(),
            ]
        finally:
            maildrop.close()
        self.state = State.CLOSED
        count = len(self._messages) - len(deleted)
        events: list[Event] = []
        if deleted:
            events.append(Log(logging.INFO, f"{self.user}: {len(deleted)} messages deleted"))
        events += [
            _ok(f"{self.settings.hostname} POP3 server signing off ({count} messages left)"),
            Close(),
        ]
        return events


_AUTH = frozenset({State.AUTHORIZATION})
_TRANS = frozenset({State.TRANSACTION})
_BOTH = _AUTH | _TRANS

_COMMANDS: dict[str, Callable[[Pop3Session, str], list[Event]]] = {
    "CAPA": Pop3Session._capa,
    "NOOP": Pop3Session._noop,
    "QUIT": Pop3Session._quit,
    "STLS": Pop3Session._stls,
    "USER": Pop3Session._user,
    "PASS": Pop3Session._pass,
    "APOP": Pop3Session._apop,
    "AUTH": Pop3Session._auth,
    "STAT": Pop3Session._stat,
    "LIST": Pop3Session._list,
    "UIDL": Pop3Session._uidl,
    "RETR": Pop3Session._retr,
    "TOP": Pop3Session._top,
    "DELE": Pop3Session._dele,
    "RSET": Pop3Session._rset,
}
_STATES_OF: dict[str, frozenset[State]] = {
    "CAPA": _BOTH,
    "NOOP": _TRANS,
    "QUIT": _BOTH,
    "STLS": _AUTH,
    "USER": _AUTH,
    "PASS": _AUTH,
    "APOP": _AUTH,
    "AUTH": _AUTH,
    "STAT": _TRANS,
    "LIST": _TRANS,
    "UIDL": _TRANS,
    "RETR": _TRANS,
    "TOP": _TRANS,
    "DELE": _TRANS,
    "RSET": _TRANS,
}
