"""The client side of LMTP (RFC 2033), sans-IO: bytes from the server go in, the bytes
to send come out, and at the end one reply per recipient.

The dialogue is sendmail's for a mailer with F=z: wait for the greeting, `LHLO $j`,
`MAIL FROM:<$g>`, one `RCPT TO:<$u>` per recipient, `DATA`, the message, the final
dot, then one reply per recipient that RCPT accepted, in RCPT order (the point of
LMTP: each mailbox says for itself whether it took the message), then `QUIT`.

The message itself is not pushed through this object: when `wants_body` turns true
the caller streams the dot-stuffed message and calls `body_sent()`. Nothing here
reads a clock or a socket.
"""

from __future__ import annotations

from enum import Enum


class Phase(Enum):
    GREETING = "greeting"
    LHLO = "lhlo"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    BODY = "body"
    RESULTS = "results"
    QUIT = "quit"
    DONE = "done"


Reply = tuple[int, str]


class ReplyReader:
    """Splits a byte stream into SMTP/LMTP replies (`250-a` `250 b` is one reply, its
    texts joined by newlines)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[str] = []

    def feed(self, data: bytes) -> list[Reply]:
        self._buffer += data
        replies: list[Reply] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            raw, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            code_text, sep = line[:3], line[3:4]
            if not code_text.isdigit():
                replies.append((0, line))  # not a reply: the caller treats it as fatal
                self._lines = []
                continue
            self._lines.append(line[4:])
            if sep != "-":
                replies.append((int(code_text), "\n".join(self._lines).strip()))
                self._lines = []
        return replies


class LmtpClient:
    """One LMTP transaction for `recipients` (addresses as RCPT TO gets them).

    `results[i]` is recipient i's final reply, or None while undecided; when the
    dialogue ends early (`failure` set) the undecided ones were not delivered.
    """

    def __init__(
        self,
        lhlo_name: str,
        sender: str,
        recipients: list[str],
        *,
        dsn_mail_params: str = "",
        dsn_rcpt_params: list[str] | None = None,
    ) -> None:
        self.lhlo_name = lhlo_name
        self.sender = sender
        self.recipients = recipients
        # DSN parameters (RET=, ENVID=; NOTIFY=, ORCPT=), sent only if LHLO offers DSN
        self.dsn_mail_params = dsn_mail_params
        self.dsn_rcpt_params = dsn_rcpt_params or [""] * len(recipients)
        self.phase = Phase.GREETING
        self.results: list[Reply | None] = [None] * len(recipients)
        self.failure: Reply | None = None  # what ended the dialogue early
        self.extensions: set[str] = set()
        self._reader = ReplyReader()
        self._next_rcpt = 0
        self._accepted: list[int] = []  # indexes RCPT accepted, in order
        self._reported = 0  # replies after the final dot seen so far

    @property
    def wants_body(self) -> bool:
        return self.phase is Phase.BODY

    @property
    def done(self) -> bool:
        return self.phase is Phase.DONE

    def receive(self, data: bytes) -> bytes:
        """Feed server bytes; returns the bytes to send now (maybe none)."""
        out = b""
        for code, text in self._reader.feed(data):
            if self.phase is Phase.LHLO and code == 250:
                # the first line names the server, each further line is one keyword
                lines = text.split("\n")[1:]
                self.extensions = {line.split()[0].upper() for line in lines if line.strip()}
            out += self._on_reply((code, " ".join(text.split("\n"))))
            if self.done:
                break
        return out

    def body_sent(self) -> None:
        """The caller has sent the whole message and its final dot."""
        assert self.phase is Phase.BODY
        self.phase = Phase.RESULTS

    def connection_lost(self, reason: str) -> None:
        if not self.done:
            self.failure = self.failure or (421, reason)
            self.phase = Phase.DONE

    # ------------------------------------------------------------ the state table

    def _on_reply(self, reply: Reply) -> bytes:
        code = reply[0]
        phase = self.phase
        if phase is Phase.GREETING:
            if code != 220:
                return self._fail(reply)
            self.phase = Phase.LHLO
            return self._line(f"LHLO {self.lhlo_name}")
        if phase is Phase.LHLO:
            if code != 250:
                return self._fail(reply)
            self.phase = Phase.MAIL
            params = self.dsn_mail_params if "DSN" in self.extensions else ""
            return self._line(f"MAIL FROM:<{self.sender}>{params}")
        if phase is Phase.MAIL:
            if code != 250:
                # every recipient gets the MAIL reply: 5xx bounces them, 4xx defers
                self.results = [reply] * len(self.recipients)
                return self._quit()
            return self._send_rcpt()
        if phase is Phase.RCPT:
            index = self._next_rcpt - 1
            if code in (250, 251):
                self._accepted.append(index)
            else:
                self.results[index] = reply
            return self._send_rcpt()
        if phase is Phase.DATA:
            if code != 354:
                for index in self._accepted:
                    self.results[index] = reply
                return self._quit()
            self.phase = Phase.BODY
            return b""
        if phase is Phase.RESULTS:
            self.results[self._accepted[self._reported]] = reply
            self._reported += 1
            if self._reported == len(self._accepted):
                return self._quit()
            return b""
        if phase is Phase.QUIT:
            self.phase = Phase.DONE
            return b""
        return b""  # BODY (a reply before the dot is a protocol error) or DONE

    def _send_rcpt(self) -> bytes:
        if self._next_rcpt < len(self.recipients):
            index = self._next_rcpt
            self._next_rcpt += 1
            self.phase = Phase.RCPT
            params = self.dsn_rcpt_params[index] if "DSN" in self.extensions else ""
            return self._line(f"RCPT TO:<{self.recipients[index]}>{params}")
        if not self._accepted:
            return self._quit()
        self.phase = Phase.DATA
        return self._line("DATA")

    def _quit(self) -> bytes:
        self.phase = Phase.QUIT
        return self._line("QUIT")

    def _fail(self, reply: Reply) -> bytes:
        self.failure = reply
        if reply[0] == 0:  # garbage, not a reply: stop talking
            self.phase = Phase.DONE
            return b""
        return self._quit()

    @staticmethod
    def _line(text: str) -> bytes:
        return (text + "\r\n").encode("utf-8", "surrogateescape")
