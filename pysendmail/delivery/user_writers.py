"""Mailbox writers kept for a queue run: one child process per mailbox owner.

Delivering into a user's mailbox as root means writing as that user, and a fork per
message costs more than the write (bench/README.md). During a queue run the local
mailer keeps one child per (uid, gid): forked on the first message for that user,
switched to the user for good, then fed every further message of that user in the
run, each one appended, fsync'ed and answered on its own before the next is sent.
The locks (dot-lock as root, fcntl in the child) and the mailbox checks are the same
as for a lone delivery, done per message, so is the result: a child that dies or
answers nonsense costs only the message it was writing (deferred, as a lone child's
death is) and the next message gets a new child.

The wire between parent and child is a stream socket: a request (the operation's
name and arguments, pickled, length-prefixed), the message in length-prefixed
chunks ending with an empty one (or an abort mark when the parent could not read
the df), then the child's answer (capture_outcome's tuple). The message is read by
the parent, which may open the root-only df; the child only writes.
"""

from __future__ import annotations

import functools
import gc
import os
import pickle
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pysendmail.maildrop import (
    WRITE_OPERATIONS,
    MailboxOwner,
    MaildropTempError,
    become,
    capture_outcome,
    reraise_outcome,
)

_LENGTH = struct.Struct("!I")
_ABORT = 0xFFFFFFFF  # in place of a chunk length: the parent gave up on the message


class _Aborted(OSError):
    """The parent could not read the message: the child truncates what it wrote."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("peer closed")
        data += chunk
    return bytes(data)


def _recv_frame(sock: socket.socket) -> bytes | None:
    """One length-prefixed frame; None for the abort mark."""
    (size,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
    if size == _ABORT:
        return None
    return _recv_exact(sock, size) if size else b""


def _send_frame(sock: socket.socket, data: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 65536


class _Child:
    """One forked writer, switched to `owner` for the rest of its life."""

    def __init__(self, owner: MailboxOwner) -> None:
        self.owner = owner
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the child: serve until the parent closes its end
            code = 0
            try:
                # keep only the wire: no listening socket, client connection, queue file
                # or other child's wire of the parent stays open in a child that lives
                # for the whole run (a client would not see its connection close)
                # (with the collector off: a parent object found garbage here must not
                # close a number this child has reused)
                gc.disable()
                wire = theirs.fileno()
                os.closerange(3, wire)
                os.closerange(wire + 1, _max_fd())
                code = _serve(theirs, owner)
            finally:
                os._exit(code)
        theirs.close()
        self.pid = pid
        self.sock = ours

    def run(self, operation: str, args: tuple, message: Iterable[bytes]) -> Any:
        _send_frame(self.sock, pickle.dumps((operation, args)))
        try:
            for chunk in message:
                if chunk:
                    _send_frame(self.sock, bytes(chunk))
        except OSError as err:
            if isinstance(err, BrokenPipeError | ConnectionError):
                raise
            self.sock.sendall(_LENGTH.pack(_ABORT))  # the df could not be read
            self._answer()
            raise
        _send_frame(self.sock, b"")
        return reraise_outcome(self._answer())

    def _answer(self) -> tuple:
        return pickle.loads(_recv_frame(self.sock) or b"")

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


def _serve(sock: socket.socket, owner: MailboxOwner) -> int:
    try:
        become(owner)
    except OSError:
        return 1  # the parent sees EOF on its first request and defers that message
    while True:
        try:
            request = _recv_frame(sock)
        except EOFError:
            return 0
        operation, args = pickle.loads(request or b"")
        stream = _Stream(sock)
        write = functools.partial(WRITE_OPERATIONS[operation], *args, stream)
        outcome = capture_outcome(write)
        try:
            stream.drain()
        except EOFError:
            return 0
        if stream.aborted and outcome[0] == "ok":
            outcome = capture_outcome(_raise_aborted)
        _send_frame(sock, pickle.dumps(outcome))


def _raise_aborted() -> None:
    raise MaildropTempError("the queued message could not be read")


class _Stream:
    """The message chunks as the parent sends them, as an iterable for the writer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.finished = False
        self.aborted = False

    def __iter__(self) -> Iterator[bytes]:
        while not self.finished:
            chunk = _recv_frame(self.sock)
            if chunk is None:
                self.finished = self.aborted = True
                raise _Aborted("message not readable")  # the writer truncates
            if not chunk:
                self.finished = True
                return
            yield chunk

    def drain(self) -> None:
        """Read what the writer left unread (it failed before the end)."""
        for _ in self:
            pass


class UserWriters:
    """The children of one queue run, by (uid, gid). Safe for one thread at a time;
    the local mailer keeps one pool per runner thread. Close it at the end of the run."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, int], _Child] = {}
        self._lock = threading.Lock()

    def run(
        self, owner: MailboxOwner, operation: str, args: tuple, message: Iterable[bytes]
    ) -> Any:
        key = (owner.uid, owner.gid)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = _Child(owner)
            try:
                return child.run(operation, args, message)
            except (EOFError, ConnectionError, pickle.UnpicklingError) as err:
                # the child is gone: this message was not acknowledged; a new child
                # takes the next one
                del self._children[key]
                child.close()
                raise MaildropTempError(f"delivery child died: {err!r}") from None

    def close(self) -> None:
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.close()

    def __enter__(self) -> UserWriters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
