"""Shared parts of the POP3 benchmarks: an mbox written in the format local delivery
uses, and pysendmail's POP3 daemon serving it from a separate process (so the client's
work and the server's do not share one interpreter lock)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

USER = "bench"
PASSWORD = "bench password"


def message_bytes(number: int, body_size: int) -> bytes:
    """A plain message of about `body_size` bytes of body, with a dot-led line in it."""
    header = (
        f"Received: from client.example.com by mail.example.com; Thu, 26 Nov 2026 12:00:00 +0000\n"
        f"From: sender{number}@example.com\nTo: {USER}@example.com\n"
        f"Subject: benchmark message {number}\nMessage-ID: <bench-{number}@example.com>\n\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\n"
    body = line * max(1, body_size // len(line))
    return header.encode() + b".a line that begins with a dot\n" + body


def write_mbox(path: Path, count: int, body_size: int) -> int:
    """Write `count` messages as mail.local (and pysendmail.maildrop) lays them out."""
    stamp = time.asctime(time.gmtime(1764158400))
    with open(path, "wb", buffering=1 << 20) as out:
        for number in range(1, count + 1):
            out.write(f"From sender{number}@example.com {stamp}\n".encode())
            out.write(message_bytes(number, body_size))
            out.write(b"\n")
    return path.stat().st_size


def _serve(spool: str, ready) -> None:
    from pysendmail.daemons.pop3d import Listener, Pop3Daemon, Pop3Service, spool_maildrops

    service = Pop3Service(
        hostname="bench.example.com",
        verify=lambda user, password: (user, password) == (USER, PASSWORD),
        open_maildrop=spool_maildrops(Path(spool), "mbox"),
        allow_plaintext_auth=True,
    )
    daemon = Pop3Daemon(service, [Listener("127.0.0.1", 0)])
    (address,) = daemon.start()
    ready.send(address[1])
    ready.recv()  # until the parent says stop
    daemon.shutdown(drain_timeout=1.0)


class ServerProcess:
    """pysendmail's POP3 daemon in a child process, serving SPOOL/bench."""

    def __init__(self, spool: Path) -> None:
        parent_end, child_end = multiprocessing.Pipe()
        self._pipe = parent_end
        self._process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(str(spool), child_end), daemon=True
        )
        self._process.start()
        self.port = parent_end.recv()

    def stop(self) -> None:
        self._pipe.send("stop")
        self._process.join(10)


def machine() -> str:
    import platform

    return f"{os.cpu_count()} CPUs (nproc), Python {platform.python_version()}, {platform.platform()}"
