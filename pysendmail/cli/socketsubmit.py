"""Submission by a user who may not write the queue, through the running daemon's local
sockets (the other half is `daemons.localsubmit`).

`sendmail [flags] rcpt... < message` by such a user: standard input is read first, as
it came (spooled to an unlinked temporary file, never held whole; without -i it ends
at a line holding a lone dot, as `collect` ends it, so a user typing at a terminal is
not kept waiting for an end of file), then the command line and that input go to the
daemon's command-line socket. The daemon runs the same submission a user who may write
the queue runs (`submit_for_peer`, here, run in the daemon), as the uid the kernel
names, so the queue files are those of a direct submission: the same From: with the
-F full name, the same `X-Authentication-Warning: HOST: USER set sender to ADDR using
-f`, the same DSN parameters (-N, -R, -V), body type (-B), hop count (-h), macros (-M,
-p, which are dropped for an untrusted user as on the submission directory's way), -t
with its Bcc: removal. What the daemon printed is printed here.

`submit()` returns the exit status once the daemon answered (the message is then in the
durable queue, or was refused). It returns None when the daemon is not there, would not
take the message now, or the connection broke before its answer: the caller then hands
the spooled input to the submission directory instead.

`sendmail -bs` by such a user is relayed to the SMTP socket (`relay_session`).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO, TextIO

from pysendmail.cli.options import Invocation
from pysendmail.sysexits import ExitCode

CONNECT_TIMEOUT = 10.0
REPLY_TIMEOUT = 300.0
_CHUNK = 64 * 1024
_DOT_LINES = (b".\n", b".\r\n", b".")


class Spool:
    """Standard input as the command read it, kept in an unlinked temporary file."""

    def __init__(self, stdin: BinaryIO, ignore_dots: bool) -> None:
        from pysendmail.cli.collect import input_lines

        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the spool)
        if ignore_dots:
            while chunk := stdin.read(_CHUNK):
                self.file.write(chunk)
        else:
            for line in input_lines(stdin):  # type: ignore[attr-defined]
                self.file.write(line)
                if line in _DOT_LINES:
                    break  # the end of the message: the rest is not read, as by collect

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(_CHUNK):
            yield chunk

    def rewound(self) -> BinaryIO:
        """The spooled input from its start, for the submission directory."""
        self.file.seek(0)
        return self.file  # type: ignore[return-value]


def submit(
    path: str, inv: Invocation, spool: Spool, out: TextIO, *, error_mode: str = "p"
) -> int | None:
    """Hand the command line and the spooled input to the daemon's command-line socket
    at `path`; see the module docstring. With -oew the caller's terminal (as ttypath()
    finds it, with this user's rights) goes along as a descriptor for the daemon to
    write the errors to."""
    from pysendmail.daemons.localsubmit import (
        MAX_REQUEST_LINE,
        chunk,
        parse_reply,
        request_head,
    )

    terminal = None
    if error_mode == "w":
        from pysendmail.cli.deadletter import terminal_fd

        terminal = terminal_fd()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
        sock.settimeout(REPLY_TIMEOUT)
        argv = list(inv.source_argv) or [inv.program]
        head = request_head(argv, os.environ.get("NAME"))
        if terminal is not None:
            head = head[socket.send_fds(sock, [head], [terminal]) :]
        sock.sendall(head)
        for piece in spool.chunks():
            sock.sendall(chunk(piece))
        sock.sendall(chunk(b""))
        with sock.makefile("rb") as replies:
            line = replies.readline(MAX_REQUEST_LINE)
    except OSError:
        return None
    finally:
        sock.close()
        if terminal is not None:
            os.close(terminal)
    reply = parse_reply(line)
    if reply is None:
        return None
    status, output, retry = reply
    if retry:
        return None
    out.write(output)
    return status


def submit_for_peer(
    daemon_inv: Invocation, on_queued: Callable[[], Callable[[str], None] | None]
) -> Callable[[list[str], str | None, int, BinaryIO, int | None], tuple[int, str, bool]]:
    """The daemon's half: a command line sent by user `uid`, run as the submission of a
    user who may write the queue would run it, with the daemon's configuration (its cf
    and its own -O settings) and what only a trusted user may say taken out. The delivery
    mode is the user's: -odi delivers before answering, -odb leaves it to the daemon's
    delivery (`on_queued`), -odq to the queue runs."""

    def run(argv: list[str], name: str | None, uid: int, message: BinaryIO, terminal: int | None):
        import io

        from pysendmail.cli import runtime
        from pysendmail.cli import submit as direct
        from pysendmail.cli.deadletter import opener_of
        from pysendmail.cli.handoff import untrusted_view
        from pysendmail.cli.options import MODE_DELIVER, ArgumentError, parse_args
        from pysendmail.cli.sendmail import refusals

        try:
            inv = parse_args(argv, environ={} if name is None else {"NAME": name})
        except ArgumentError as exc:
            return int(ExitCode.USAGE), f"{exc}\n", False
        problems = inv.errors + refusals(inv)
        if inv.mode != MODE_DELIVER:
            problems.append("Only a message submission may be handed to the daemon")
        if problems:
            return int(ExitCode.USAGE), "".join(f"{line}\n" for line in problems), False
        user_cf = inv.config_file
        inv = untrusted_view(inv)
        config = runtime.load_config(daemon_inv)
        ctx = runtime.submit_context(config, inv)
        ctx.config_from_command_line = user_cf
        ctx.terminal_opener = opener_of(terminal)  # the user's, never the daemon's own
        caller = direct.Caller.from_uid(uid)
        printed = io.StringIO()
        outcome = direct.submit(ctx, inv, caller, message, printed)
        queued = [qid for qid in (outcome.qid, outcome.report_qid) if qid]
        if not queued and outcome.exit_code == ExitCode.TEMPFAIL:
            return outcome.exit_code, printed.getvalue(), True
        status = outcome.exit_code
        if queued and ctx.delivery_mode == "i":
            failures = direct._failure_hook(ctx, caller, printed)
            verbose = printed if inv.verbose else None
            status = direct._deliver_now(config, queued, status, verbose, failures)
        elif queued and ctx.delivery_mode == "b":
            deliver = on_queued()
            for qid in queued if deliver is not None else ():
                deliver(qid)
        return direct.status_by_error_mode(ctx, status), printed.getvalue(), False

    return run


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
    """Where the daemon of this queue listens for local SMTP sessions (-bs)."""
    return os.path.join(queue_dir.rstrip("/") + "-socket", "submit")


def command_line_socket_path(queue_dir: str) -> str:
    """Where the daemon of this queue takes command-line submissions."""
    from pysendmail.daemons.localsubmit import COMMAND_LINE_SOCKET_NAME

    return os.path.join(os.path.dirname(socket_path(queue_dir)), COMMAND_LINE_SOCKET_NAME)
