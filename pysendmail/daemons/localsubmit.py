"""The daemon's local submission socket: SMTP on a Unix socket for local users.

A user who may not write the queue (Python cannot be setuid) hands a message to the
running daemon here. Who the user is comes from the kernel (SO_PEERCRED), never from
what the client says; the session is then what `sendmail -bs` run by that user is
(`SmtpConnection`'s invoker): `${_}` is `user@localhost`, and an untrusted user who gives
another envelope sender gets sendmail's `X-Authentication-Warning: HOST: USER owned
process doing -bs`. The `250`
after DATA comes only once the message is in the durable queue, as for any session.

The socket is `submit` (mode 0666) in a directory that only the daemon's user may write
(mode 0755), so nobody else can put a socket of their own in its place. This module
only moves bytes: the SMTP session is `daemons.smtpd.SmtpConnection`.
"""

from __future__ import annotations

import logging
import os
import pwd
import socket
import stat
import struct
import threading
from collections.abc import Callable

from pysendmail.daemons.server import SmtpService
from pysendmail.protocol.smtp import ClientInfo
from pysendmail.record import replace

log = logging.getLogger("pysendmail.localsubmit")

SOCKET_NAME = "submit"
MAX_SESSIONS = 32
SESSION_TIMEOUT = 300.0
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket, from the kernel."""
    _pid, uid, _gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return uid


class LocalSubmitServer:
    """Accepts on the socket; one thread per session, at most MAX_SESSIONS at once."""

    def __init__(self, path: str, service_ref: Callable[[], SmtpService]) -> None:
        self.path = path
        self.service_ref = service_ref
        self._listener: socket.socket | None = None
        self._slots = threading.BoundedSemaphore(MAX_SESSIONS)
        self._stopping = threading.Event()

    def start(self) -> LocalSubmitServer:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o755, exist_ok=True)
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise OSError(f"{directory}: not a directory of this daemon's user")
        os.chmod(directory, 0o755)
        try:
            os.unlink(self.path)  # a socket left by a daemon that died
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o666)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="localsubmit", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            self._slots.acquire()
            threading.Thread(target=self._session, args=(sock,), daemon=True).start()

    def _session(self, sock: socket.socket) -> None:
        try:
            self.serve(sock)
        except Exception:  # one broken session never stops the others
            log.exception("local submission session failed")
        finally:
            self._slots.release()
            sock.close()

    def serve(self, sock: socket.socket) -> None:
        """One session, as `sendmail -bs` by the peer's user."""
        from pysendmail.daemons.smtpd import SmtpConnection, _Channel

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
