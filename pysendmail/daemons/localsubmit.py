"""The daemon's local submission sockets, for local users who may not write the queue.

Python cannot be setuid, so a user's `sendmail` hands its message to the running daemon
over one of two Unix sockets in a directory that only the daemon's user may write (mode
0755; the sockets are 0666), so nobody else can put a socket of their own in its place.
Who the user is comes from the kernel (SO_PEERCRED), never from what the client says.

* `submit`: SMTP, for `sendmail -bs` run by a user. The session is what `sendmail -bs`
  run by that user is (`SmtpConnection`'s invoker): `${_}` is `user@localhost`, and an
  untrusted user who gives another envelope sender gets sendmail's
  `X-Authentication-Warning: HOST: USER owned process doing -bs`.
* `sendmail`: the command line itself, for `sendmail [flags] rcpt... < message`. The
  client sends its argv and its standard input as it read them; the daemon runs the very
  submission a user who may write the queue runs (the `command_line` callback, which the
  cli gives: this floor does not know the command line), as that uid, and answers with
  the exit status and what the command would have printed. So -F, -f, -N, -R, -V, -B,
  -h, -t, -oi and the rest give the same queue files by either way. The wire format:

      client: b"PYSENDMAIL-COMMAND-LINE 1\n", one JSON line {"argv": [...], "name":
              $NAME or null}, then the message in chunks (b"<hex length>\n" + bytes),
              ended by b"0\n"
      daemon: one JSON line {"status": int, "output": str, "retry": bool}

  A message whose end marker never came is dropped unread (the client did not finish).
  `retry` says nothing was queued for a reason of the moment: the client then hands the
  message to the submission directory instead.

The reply after the message comes only once the message is in the durable queue, as the
`250` after DATA on the SMTP socket. This module only moves bytes: the SMTP session is
`daemons.smtpd.SmtpConnection`; the command line is the callback's.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable

TYPE_CHECKING = False  # the client half is on the submission path: import little
if TYPE_CHECKING:
    from typing import BinaryIO

    from pysendmail.daemons.server import SmtpService

log = logging.getLogger("pysendmail.localsubmit")

SOCKET_NAME = "submit"
COMMAND_LINE_SOCKET_NAME = "sendmail"
COMMAND_LINE_MAGIC = b"PYSENDMAIL-COMMAND-LINE 1\n"
MAX_REQUEST_LINE = 1 << 20
MAX_SESSIONS = 32
SESSION_TIMEOUT = 300.0
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket, from the kernel."""
    _pid, uid, _gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return uid


# (argv, $NAME or None, uid, message, the user's terminal descriptor or None)
#   -> (exit status, printed text, retry elsewhere)
CommandLine = Callable[
    [list[str], "str | None", int, "BinaryIO", "int | None"], tuple[int, str, bool]
]


class LocalSubmitServer:
    """Accepts on the sockets; one thread per session, at most MAX_SESSIONS at once.

    `path` is the SMTP socket; with `command_line` the command-line socket is made
    beside it (COMMAND_LINE_SOCKET_NAME)."""

    def __init__(
        self,
        path: str,
        service_ref: Callable[[], SmtpService],
        command_line: CommandLine | None = None,
    ) -> None:
        self.path = path
        self.service_ref = service_ref
        self.command_line = command_line
        self._listeners: list[tuple[str, socket.socket]] = []
        self._slots = threading.BoundedSemaphore(MAX_SESSIONS)
        self._stopping = threading.Event()

    @property
    def command_line_path(self) -> str:
        return os.path.join(os.path.dirname(self.path), COMMAND_LINE_SOCKET_NAME)

    def start(self) -> LocalSubmitServer:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise OSError(f"{directory}: not a directory of this daemon's user")
        os.chmod(directory, 0o755)
        sockets: list[tuple[str, Callable[[socket.socket], None]]] = [(self.path, self.serve)]
        if self.command_line is not None:
            sockets.append((self.command_line_path, self.serve_command_line))
        for path, serve in sockets:
            listener = _listen(path)
            self._listeners.append((path, listener))
            threading.Thread(
                target=self._accept_loop, args=(listener, serve), name="localsubmit", daemon=True
            ).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        listeners, self._listeners = self._listeners, []
        for path, listener in listeners:
            try:
                os.unlink(path)
            except OSError:
                pass
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept_loop(self, listener: socket.socket, serve: Callable[[socket.socket], None]) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            self._slots.acquire()
            threading.Thread(target=self._session, args=(sock, serve), daemon=True).start()

    def _session(self, sock: socket.socket, serve: Callable[[socket.socket], None]) -> None:
        try:
            serve(sock)
        except Exception:  # one broken session never stops the others
            log.exception("local submission session failed")
        finally:
            self._slots.release()
            sock.close()

    def serve(self, sock: socket.socket) -> None:
        """One SMTP session, as `sendmail -bs` by the peer's user."""
        from pysendmail.daemons.smtpd import SmtpConnection, _Channel
        from pysendmail.protocol.smtp import ClientInfo
        from pysendmail.record import replace

        uid = peer_uid(sock)
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = f"Unknown UID {uid}"
        sock.settimeout(SESSION_TIMEOUT)
        service = self.service_ref()
        client = ClientInfo(addr="", name="", resolve="", display=f"{user}@localhost")
        settings = replace(service.settings_for(None, tls_on_connect=False), tls_available=False)
        connection = SmtpConnection(
            service,
            _Channel(sock),
            client,
            settings,
            daemon_name="",
            addr_macro="0",
            invoker=(uid, user),
        )
        connection.run()

    def serve_command_line(self, sock: socket.socket) -> None:
        """One command-line submission by the peer's user (see the module docstring)."""
        assert self.command_line is not None
        uid = peer_uid(sock)
        sock.settimeout(SESSION_TIMEOUT)
        # The first bytes may carry the user's terminal (-oew) as a descriptor.
        first, fds, _flags, _address = socket.recv_fds(sock, 1 << 16, 1)
        terminal = fds[0] if fds else None
        try:
            stream = _Joined(first, sock.makefile("rb"))
            with tempfile.TemporaryFile() as message:
                request = read_request(stream, message.write)
                if request is None:
                    return  # the client did not finish: nothing is queued
                argv, name = request
                message.seek(0)
                status, output, retry = self.command_line(argv, name, uid, message, terminal)
        finally:
            if terminal is not None:
                os.close(terminal)
        reply = {"status": status, "output": output, "retry": retry}
        sock.sendall(json.dumps(reply).encode() + b"\n")


class _Joined:
    """Bytes already received, then the rest of the stream: readline() and read()."""

    def __init__(self, first: bytes, rest: BinaryIO) -> None:
        self.pending = first
        self.rest = rest

    def readline(self, limit: int = -1) -> bytes:
        while b"\n" not in self.pending and (limit < 0 or len(self.pending) < limit):
            more = self.rest.read1(1 << 16) if hasattr(self.rest, "read1") else b""
            if not more:
                break
            self.pending += more
        end = self.pending.find(b"\n") + 1 or len(self.pending)
        if limit >= 0:
            end = min(end, limit)
        line, self.pending = self.pending[:end], self.pending[end:]
        return line

    def read(self, size: int) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:size], self.pending[size:]
            return data
        return self.rest.read(size)


def _listen(path: str) -> socket.socket:
    """A listening socket at `path`, mode 0666 from the moment it appears there: it is
    bound under a temporary name, made 0666, then renamed into place."""
    try:
        os.unlink(path)  # a socket left by a daemon that died
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    making = f"{path}.{os.getpid()}.new"
    try:
        os.unlink(making)
    except FileNotFoundError:
        pass
    listener.bind(making)
    os.chmod(making, 0o666)
    listener.listen(64)
    os.rename(making, path)
    return listener


def request_head(argv: list[str], name: str | None) -> bytes:
    """What the client sends before the message."""
    return COMMAND_LINE_MAGIC + json.dumps({"argv": argv, "name": name}).encode() + b"\n"


def chunk(data: bytes) -> bytes:
    """One piece of the message as sent; an empty one ends the message."""
    return b"%x\n" % len(data) + data


def read_request(
    stream: BinaryIO, write: Callable[[bytes], object]
) -> tuple[list[str], str | None] | None:
    """Read a whole request: (argv, name), the message passed to `write`. None when the
    request is malformed or ends before the message's end marker."""
    if stream.readline(len(COMMAND_LINE_MAGIC)) != COMMAND_LINE_MAGIC:
        return None
    try:
        fields = json.loads(stream.readline(MAX_REQUEST_LINE))
        argv = [str(arg) for arg in fields["argv"]]
        name = fields.get("name")
    except (ValueError, KeyError, TypeError):
        return None
    if not argv or not (name is None or isinstance(name, str)):
        return None
    while True:
        size_line = stream.readline(32)
        try:
            size = int(size_line.strip(), 16) if size_line.endswith(b"\n") else -1
        except ValueError:
            return None
        if size < 0:
            return None
        if size == 0:
            return argv, name
        while size:
            data = stream.read(min(size, 1 << 16))
            if not data:
                return None
            write(data)
            size -= len(data)


def parse_reply(line: bytes) -> tuple[int, str, bool] | None:
    """The daemon's answer, or None when it is not one."""
    try:
        fields = json.loads(line)
        return int(fields["status"]), str(fields["output"]), bool(fields["retry"])
    except (ValueError, KeyError, TypeError):
        return None
