"""Submission by a user who may not write the queue, through the running daemon's local
socket (the other half is `daemons.localsubmit`).

The message is read from standard input first (spooled to an unlinked temporary file,
never held whole, with -i and the lone dot as `collect` reads them); then an SMTP session
on the Unix socket hands it over: MAIL FROM the -f address or the user's own name,
RCPT TO each recipient (with -t, the header recipients too, and the Bcc: lines are not
sent), DATA. The daemon knows the user from the kernel, whatever is said here.

`submit()` returns the exit status once the daemon said `250` after the message (it is
in the durable queue), or when the daemon refused for good (its reply printed as
sendmail prints a refused address). It returns None when the daemon is not there, would
not take the message now (4xx) or the connection broke before that `250`: the caller
then hands the spooled message to the submission directory instead.
"""

from __future__ import annotations

import os
import socket
import tempfile
from typing import BinaryIO, TextIO

from pysendmail import address
from pysendmail.cli.options import Invocation
from pysendmail.sysexits import ExitCode

CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 300.0
_CHUNK = 64 * 1024
_BCC = frozenset({"bcc", "resent-bcc"})


class Spool:
    """Standard input as `collect` reads it: parsed headers and the body on disk."""

    def __init__(self, stdin: BinaryIO, ignore_dots: bool) -> None:
        from pysendmail.cli.collect import collect

        self.body = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the spool)
        self.collected = collect(stdin, self.body.write, ignore_dots=ignore_dots)

    def message(self, *, drop_bcc: bool) -> list[bytes]:
        """The header block (and its blank line) as received, Bcc: left out on request."""
        lines = [
            (h.raw or h.text() + "\n").encode("utf-8", "surrogateescape")
            for h in self.collected.headers
            if not (drop_bcc and h.key in _BCC)
        ]
        return [*lines, b"\n"] if lines else []

    def chunks(self):
        self.body.seek(0)
        while chunk := self.body.read(_CHUNK):
            yield chunk

    def as_stream(self, *, drop_bcc: bool) -> BinaryIO:
        """The whole message again, for the submission directory."""
        copy = tempfile.TemporaryFile()  # noqa: SIM115 (the caller reads it)
        for line in self.message(drop_bcc=drop_bcc):
            copy.write(line)
        for chunk in self.chunks():
            copy.write(chunk)
        copy.seek(0)
        return copy  # type: ignore[return-value]


class _Refused(Exception):
    """A permanent refusal: the reply is printed and decides the exit status."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class _Unavailable(Exception):
    """The daemon cannot take the message now: hand it over another way."""


class _Client:
    """The few SMTP commands needed, on a connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = b""

    def reply(self) -> tuple[int, list[str]]:
        lines: list[str] = []
        while True:
            while b"\n" not in self.pending:
                data = self.sock.recv(_CHUNK)
                if not data:
                    raise _Unavailable("connection closed")
                self.pending += data
            raw, self.pending = self.pending.split(b"\n", 1)
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if len(line) < 3 or not line[:3].isdigit():
                raise _Unavailable(f"not an SMTP reply: {line!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def command(self, line: str, expect: tuple[int, ...]) -> list[str]:
        self.sock.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return self.check(*self.reply(), expect)

    @staticmethod
    def check(code: int, lines: list[str], expect: tuple[int, ...]) -> list[str]:
        if code in expect:
            return lines
        if 400 <= code < 500 or code < 200:
            raise _Unavailable(" ".join(lines))
        raise _Refused(code, lines[-1] if lines else "")


def _plain_text(reply: str) -> str:
    """A reply's text without its enhanced status code (`5.1.1 ...` -> `...`)."""
    first, _, rest = reply.partition(" ")
    return rest if first.count(".") == 2 and first[:1] in "245" else reply


def _exit_status(code: int, reply: str) -> int:
    status = reply.split(" ", 1)[0]
    if status.endswith(".1.1"):
        return int(ExitCode.NOUSER)
    if status.endswith(".1.2"):
        return int(ExitCode.NOHOST)
    if status in ("5.1.3", "5.1.7", "5.5.2", "5.5.4"):
        return int(ExitCode.USAGE)
    return int(ExitCode.UNAVAILABLE)


def _bare(text: str) -> str:
    try:
        return address.parse_item(text).addr_spec or text
    except Exception:  # an address the daemon will judge (and refuse) itself
        return text.strip()


def envelope_recipients(inv: Invocation, spool: Spool, old_style: bool) -> list[str]:
    """The recipients as the direct submission finds them (argv, then -t headers)."""
    from pysendmail.cli.submit import header_recipients

    lists = list(inv.recipients)
    if inv.read_recipients:
        for header in header_recipients(spool.collected.headers):
            items = address.split_list(header.unfolded(), old_style=old_style)
            if items:
                lists.append(", ".join(items))
    found: list[str] = []
    for text in lists:
        for item in address.parse_list(text, old_style=old_style):
            if item.addr_spec and item.addr_spec not in found:
                found.append(item.addr_spec)
    return found


def submit(
    path: str, inv: Invocation, sender: str, spool: Spool, out: TextIO, *, old_style: bool
) -> int | None:
    """Hand the spooled message to the daemon on `path`; see the module docstring."""
    if inv.read_recipients and spool.collected.headers_have_bare_cr:
        out.write("Message refused: a header line holds a bare carriage return\n")
        return int(ExitCode.DATAERR)
    try:
        recipients = envelope_recipients(inv, spool, old_style)
    except Exception:
        return None  # a list the daemon's way cannot carry: the submission directory can
    if not recipients:
        from pysendmail.cli.submit import NO_HEADER_RECIPIENTS

        out.write(NO_HEADER_RECIPIENTS + "\n")
        return int(ExitCode.OK)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
        sock.settimeout(REPLY_TIMEOUT)
        return _session(_Client(sock), inv, sender, recipients, spool, out)
    except (OSError, _Unavailable):
        return None
    finally:
        sock.close()


def _session(
    client: _Client, inv: Invocation, sender: str, recipients: list[str], spool: Spool, out
) -> int | None:
    try:
        client.check(*client.reply(), (220,))
        extensions = {
            line.split(" ")[0].upper() for line in client.command("EHLO localhost", (250,))[1:]
        }
        client.command(f"MAIL FROM:<{_bare(sender)}>{_mail_params(inv, extensions)}", (250,))
    except _Refused as refused:
        out.write(f"{sender}... {_plain_text(refused.text)}\n")
        return _exit_status(refused.code, refused.text)
    status = 0
    accepted = 0
    for rcpt in recipients:
        try:
            client.command(f"RCPT TO:<{rcpt}>{_rcpt_params(inv, extensions)}", (250, 251))
            accepted += 1
        except _Refused as refused:
            out.write(f"{rcpt}... {_plain_text(refused.text).split('... ', 1)[-1]}\n")
            status = status or _exit_status(refused.code, refused.text)
    if not accepted:
        _quit(client)
        return status
    try:
        client.command("DATA", (354,))
        _send_message(client, spool, drop_bcc=inv.read_recipients)
        client.check(*client.reply(), (250,))
    except _Refused as refused:
        out.write(f"{_plain_text(refused.text)}\n")
        return _exit_status(refused.code, refused.text)
    _quit(client)
    return status


def _mail_params(inv: Invocation, extensions: set[str]) -> str:
    params = []
    if inv.body_type and "8BITMIME" in extensions:
        params.append(f"BODY={inv.body_type.upper()}")
    if "DSN" in extensions:
        if inv.ret:
            params.append(f"RET={inv.ret.upper()}")
        if inv.envid:
            params.append(f"ENVID={inv.envid}")
    return "".join(f" {p}" for p in params)


def _rcpt_params(inv: Invocation, extensions: set[str]) -> str:
    if inv.notify and "DSN" in extensions:
        return f" NOTIFY={inv.notify.upper()}"
    return ""


def _send_message(client: _Client, spool: Spool, *, drop_bcc: bool) -> None:
    """DATA's content: LF sent as CRLF, leading dots doubled, then CRLF.CRLF."""
    from itertools import chain

    out = bytearray()
    at_line_start = True
    for piece in chain(spool.message(drop_bcc=drop_bcc), spool.chunks()):
        start = 0
        while start < len(piece):
            end = piece.find(b"\n", start)
            segment = piece[start:] if end < 0 else piece[start:end]
            if at_line_start and segment.startswith(b"."):
                out += b"."
            out += segment
            if end < 0:
                at_line_start = not segment
                break
            out += b"\r\n"
            at_line_start = True
            start = end + 1
        if len(out) >= _CHUNK:
            client.sock.sendall(out)
            out.clear()
    if not at_line_start:
        out += b"\r\n"
    out += b".\r\n"
    client.sock.sendall(out)


def _quit(client: _Client) -> None:
    try:
        client.command("QUIT", (221,))
    except (OSError, _Unavailable, _Refused):
        pass


def relay_session(path: str, instream: BinaryIO, outstream: BinaryIO) -> int | None:
    """`sendmail -bs` by a user who may not write the queue: the bytes of standard input
    go to the daemon's socket and its replies to standard output, until the daemon ends
    the session. None when no daemon answers there (nothing was read from stdin)."""
    import select

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    sock.setblocking(True)
    in_fd, out_fd = instream.fileno(), outstream.fileno()
    watched = [sock, in_fd]
    try:
        while True:
            ready, _, _ = select.select(watched, [], [], REPLY_TIMEOUT)
            if not ready:
                return int(ExitCode.TEMPFAIL)
            if sock in ready:
                data = sock.recv(_CHUNK)
                if not data:
                    return int(ExitCode.OK)  # the daemon ended the session
                view = memoryview(data)
                while view:
                    view = view[os.write(out_fd, view) :]
            if in_fd in ready:
                data = os.read(in_fd, _CHUNK)
                if data:
                    sock.sendall(data)
                else:
                    sock.shutdown(socket.SHUT_WR)  # the client is done; read the rest
                    watched = [sock]
    except OSError:
        return int(ExitCode.IOERR)
    finally:
        sock.close()


def socket_path(queue_dir: str) -> str:
    """Where the daemon of this queue listens for local submissions."""
    return os.path.join(queue_dir.rstrip("/") + "-socket", "submit")
