"""Open SMTP connections kept between the messages of one queue run, as sendmail's
connection cache keeps them (`ConnectionCacheSize`, `ConnectionCacheTimeout`).

After a transaction that ended cleanly the connection is put here instead of QUIT;
the next message for the same host and port takes it back and starts with RSET (a
connection whose RSET fails is dropped and a new one opened). At most `size` are
kept (the least recently used one is closed with QUIT to make room; size 0 keeps
none), a connection idle longer than `timeout` is closed instead of reused, and the
run closes all of them when it ends. Nothing here reads a message or decides a result.
"""

from __future__ import annotations

import smtplib
import time
from collections import OrderedDict
from collections.abc import Callable

from pysendmail.delivery.smtp_transcript import closing

Key = tuple[str, str, int]  # (host name, address, port)


def quit_and_close(client: smtplib.SMTP) -> None:
    closing(client)  # -v: "Closing connection to HOST" before the QUIT
    try:
        client.send(b"QUIT\r\n")
        client.getreply()
    except (OSError, smtplib.SMTPException):
        pass
    try:
        client.close()
    except OSError:
        pass


class ConnectionCache:
    def __init__(
        self,
        size: int = 2,
        timeout: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = max(0, size)
        self.timeout = timeout
        self.clock = clock
        self._idle: OrderedDict[Key, tuple[smtplib.SMTP, float]] = OrderedDict()

    def take(self, key: Key) -> smtplib.SMTP | None:
        """The idle connection to `key`, removed from the cache (the caller puts it back
        or closes it), or None. One idle too long is closed, not returned."""
        entry = self._idle.pop(key, None)
        if entry is None:
            return None
        client, since = entry
        if self.clock() - since > self.timeout:
            quit_and_close(client)
            return None
        return client

    def put(self, key: Key, client: smtplib.SMTP) -> None:
        """Keep `client` for the next message to `key` (or close it if none may be kept)."""
        if self.size == 0:
            quit_and_close(client)
            return
        old = self._idle.pop(key, None)
        if old is not None:
            quit_and_close(old[0])
        self._idle[key] = (client, self.clock())
        while len(self._idle) > self.size:
            _, (evicted, _) = self._idle.popitem(last=False)
            quit_and_close(evicted)

    def __len__(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        while self._idle:
            _, (client, _) = self._idle.popitem(last=False)
            quit_and_close(client)
