"""The SMTP dialogue as `sendmail -v` shows it, for the outbound client.

`TranscribedSMTP` is `smtplib.SMTP` that, when given a `transcript` (a function taking
one line of text), writes each command it sends as `>>> COMMAND` and each reply line
as the server sent it (`250-PIPELINING`, `250 2.0.0 queued`); the message itself is
not shown, its final dot is (`>>> .`); nor are credentials (`>>> AUTH PLAIN` without
its initial response, no line answering a 334 challenge). Commands sent together
(PIPELINING) are shown one a line, in the order they went out. Without a transcript
it is smtplib.SMTP.

The lines sendmail writes around the dialogue are made here too, so that one module
holds their wording: `Connecting to HOST [port N] via MAILER...` before a new
connection (the port when the mailer names one in its `A=TCP $h PORT`), `Using cached
ESMTP connection to HOST via MAILER...` when a queue run takes an open connection
again (after its RSET), and `Closing connection to HOST` before the QUIT that ends it.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable

Transcript = Callable[[str], None]


class TranscribedSMTP(smtplib.SMTP):
    ehlo_msg = "EHLO"  # verbs in capitals, as sendmail sends them (smtplib: "ehlo")
    transcript: Transcript | None = None
    shown_host = ""  # the host as the -v lines name it ("[127.0.0.2]", an MX name)
    _in_message = False  # between the 354 to DATA and the reply to the final dot
    _in_challenge = False  # after a 334 to AUTH: the next line holds credentials

    def send(self, s: bytes | str) -> None:
        transcript = self.transcript
        if transcript is not None:
            data = s.encode("ascii", "replace") if isinstance(s, str) else s
            if self._in_message:
                if data.endswith(b"\r\n.\r\n") or data == b".\r\n":
                    transcript(">>> .")
            elif not self._in_challenge:  # credentials are never shown
                for line in data.decode("utf-8", "replace").split("\r\n")[:-1]:
                    if line[:5].upper() == "AUTH ":
                        line = " ".join(line.split()[:2])
                    transcript(f">>> {line}")
        super().send(s)

    def putcmd(self, cmd: str, args: str = "") -> None:
        super().putcmd("HELO" if cmd == "helo" else cmd, args)

    def getreply(self) -> tuple[int, bytes]:
        code, text = super().getreply()
        self._in_message = code == 354
        self._in_challenge = code == 334
        transcript = self.transcript
        if transcript is not None and code != -1:
            lines = text.decode("utf-8", "replace").split("\n")
            for line in lines[:-1]:
                transcript(f"{code}-{line}")
            transcript(f"{code} {lines[-1]}".rstrip())
        return code, text


def connecting(host: str, mailer: str, port: int | None) -> str:
    """The line before a new connection; `port` only when the mailer names one."""
    where = f"{host} port {port}" if port else host
    return f"Connecting to {where} via {mailer}..."


def using_cached(client: smtplib.SMTP, host: str, mailer: str) -> str:
    kind = "ESMTP" if client.does_esmtp else "SMTP"
    return f"Using cached {kind} connection to {host} via {mailer}..."


def closing(client: smtplib.SMTP) -> None:
    """Say that a connection with a transcript is being closed (before its QUIT)."""
    transcript = getattr(client, "transcript", None)
    if transcript is not None:
        transcript(f"Closing connection to {getattr(client, 'shown_host', '')}")
