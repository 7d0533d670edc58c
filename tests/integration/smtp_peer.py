"""A remote SMTP server for delivery tests: aiosmtpd on 127.0.0.1, at a port the OS chose."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A loopback port nobody listens on (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_peer(handler: object) -> Iterator[int]:
    """aiosmtpd serving `handler` (its handle_* methods) until the block ends; gives its port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()
