"""A small LMTP server (RFC 2033) for the delivery tests: over TCP or a Unix socket on
this machine, or over its standard input and output when run as a program
(`python lmtp_server.py --stdio DIR`, as a mailer with P=/path and F=z is run).

Each accepted recipient's copy is written to DIR/<local part>.N. The local part says
what the server does: `nobody` is refused at RCPT (550 5.1.1), `full` accepted at RCPT
and then refused after the final dot with 452 4.2.2, `gone` refused after the dot with
550 5.2.1, anyone else gets 250 after the dot. The connection log (DIR/connections)
gets one line per session, DIR/commands every MAIL and RCPT line. It offers DSN.
"""

from __future__ import annotations

import itertools
import os
import socketserver
import sys
import threading
from pathlib import Path
from typing import BinaryIO

_counter = itertools.count(1)
_lock = threading.Lock()


def serve_session(rfile: BinaryIO, wfile: BinaryIO, spool: Path) -> None:
    """One LMTP session on a pair of byte streams."""

    def say(line: str) -> None:
        wfile.write(line.encode() + b"\r\n")
        wfile.flush()

    with _lock, open(spool / "connections", "a") as log:
        log.write(f"session {os.getpid()}\n")
    say("220 lmtp.test LMTP ready")
    sender = None
    rcpts: list[str] = []
    while True:
        raw = rfile.readline()
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        verb = line[:4].upper()
        if verb in ("MAIL", "RCPT"):
            with _lock, open(spool / "commands", "a") as commands:
                commands.write(line + "\n")
        if verb == "LHLO":
            say("250-lmtp.test")
            say("250-PIPELINING")
            say("250-DSN")
            say("250 ENHANCEDSTATUSCODES")
        elif verb == "MAIL":
            sender, rcpts = line[10:].strip().strip("<>"), []
            say("250 2.1.0 sender ok")
        elif verb == "RCPT":
            address = line[8:].strip().split(">")[0].strip("<")
            if address.split("@")[0] == "nobody":
                say(f"550 5.1.1 <{address}>: no such mailbox")
            else:
                rcpts.append(address)
                say("250 2.1.5 recipient ok")
        elif verb == "DATA":
            if sender is None or not rcpts:
                say("503 5.5.1 no valid recipients")
                continue
            say("354 go ahead")
            body = bytearray()
            while True:
                chunk = rfile.readline()
                if not chunk or chunk in (b".\r\n", b".\n"):
                    break
                body += chunk[1:] if chunk.startswith(b"..") else chunk
            for address in rcpts:
                local = address.split("@")[0]
                if local == "full":
                    say(f"452 4.2.2 <{address}>: mailbox full")
                elif local == "gone":
                    say(f"550 5.2.1 <{address}>: mailbox disabled")
                else:
                    with _lock:
                        name = f"{local}.{next(_counter)}-{os.getpid()}"
                    (spool / name).write_bytes(bytes(body))
                    say(f"250 2.0.0 <{address}> delivered")
            sender, rcpts = None, []
        elif verb == "RSET":
            sender, rcpts = None, []
            say("250 2.0.0 ok")
        elif verb == "QUIT":
            say("221 2.0.0 bye")
            return
        else:
            say("500 5.5.2 unknown command")


def make_handler(spool: Path) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            serve_session(self.rfile, self.wfile, spool)

    return Handler


class TcpLmtpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class UnixLmtpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    # --stdio DIR: one session on standard input and output, as a mailer program
    try:
        serve_session(sys.stdin.buffer, sys.stdout.buffer, Path(sys.argv[2]))
    except BaseException:
        import traceback

        (Path(sys.argv[2]) / "error").write_text(traceback.format_exc())
        raise
