"""The POP3 daemon: sockets, threads, TLS, limits and signals around `protocol.pop3`.

This module only moves bytes between sockets and `Pop3Session`s and carries out the
events they return (send, pause, start TLS, close, log). It owns what the session
cannot: the connection limits, the life cycle of the listeners (drain on stop, a new
`Pop3Service` on reload), and a first, in-process guard of one session per user (the
session lock between processes is taken by `pop3_maildrops`, which also knows where a
user's mailbox is). What a session may do, and with which credentials, is all in the
`Pop3Service` the caller builds.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Sequence

from pysendmail.daemons.pop3_maildrops import HeldMaildrop
from pysendmail.errors import MailError
from pysendmail.log import LOGGER_NAME
from pysendmail.protocol.pop3 import (
    ApopSecret,
    Close,
    Log,
    Maildrop,
    MaildropInUse,
    OpenMaildrop,
    Pause,
    Pop3Session,
    Send,
    SessionSettings,
    StartTLS,
    Stream,
    Verify,
)
from pysendmail.record import record

logger = logging.getLogger(f"{LOGGER_NAME}.pop3d")

RECV_SIZE = 65536
# RETR and TOP read a message from the mailbox in blocks of this size, and write to the
# socket once this much is gathered (many small messages still go out in few writes).
READ_BLOCK_SIZE = 65536
SEND_BUFFER_SIZE = 65536
# RFC 1939 section 3: an inactivity autologout timer must be of at least 10 minutes.
IDLE_TIMEOUT = 600.0
TLS_HANDSHAKE_TIMEOUT = 60.0
# How soon a listener notices that it must stop (socketserver polls for it).
SHUTDOWN_POLL_INTERVAL = 0.1


@record(frozen=True)
class Listener:
    """One address to listen on; `implicit_tls` for POP3S (port 995)."""

    host: str
    port: int
    implicit_tls: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" + (" (pop3s)" if self.implicit_tls else "")


@record(frozen=True)
class Pop3Service:
    """Everything a new session is made from. Replaced whole on SIGHUP."""

    hostname: str
    verify: Verify
    open_maildrop: OpenMaildrop
    tls_context: ssl.SSLContext | None = None
    apop_secret: ApopSecret | None = None
    allow_plaintext_auth: bool = False
    failed_login_delay: float = 2.0
    max_failed_logins: int = 3
    max_sessions: int = 100
    idle_timeout: float = IDLE_TIMEOUT
    block_size: int = READ_BLOCK_SIZE


class _TCPListener(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False

    def __init__(self, listener: Listener, daemon: Pop3Daemon) -> None:
        self.address_family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        self.listener = listener
        self.pop3 = daemon
        super().__init__((listener.host, listener.port), _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPListener

    def handle(self) -> None:
        self.server.pop3.serve_connection(
            self.request, self.client_address, self.server.listener.implicit_tls
        )


class Pop3Daemon:
    """The listeners and the sessions behind them."""

    def __init__(self, service: Pop3Service, listeners: Sequence[Listener]) -> None:
        self.service = service
        self.listeners = tuple(listeners)
        self._servers: list[_TCPListener] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._apop_clock = 0  # the last clock value an APOP greeting used
        self._idle = threading.Condition(self._lock)
        self._users_in_session: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._stop_requested = False  # set from signal handlers: plain flags, no locks
        self._reload_requested = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> list[tuple[str, int]]:
        """`bind()`, then `serve()`: the bound addresses."""
        addresses = self.bind()
        self.serve()
        return addresses

    def bind(self) -> list[tuple[str, int]]:
        """Open every listening socket (errors show here, before any detaching)."""
        for listener in self.listeners:
            if listener.implicit_tls and self.service.tls_context is None:
                raise ValueError(f"{listener}: POP3S needs a TLS certificate and key")
        try:
            for listener in self.listeners:
                self._servers.append(_TCPListener(listener, self))
        except OSError:
            for server in self._servers:
                server.server_close()
            self._servers.clear()
            raise
        return [server.server_address[:2] for server in self._servers]

    def serve(self) -> None:
        """Accept on every bound socket, each in its own thread."""
        for server in self._servers:
            thread = threading.Thread(
                target=server.serve_forever,
                args=(SHUTDOWN_POLL_INTERVAL,),
                name=f"pop3d {server.listener}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def reload(self, service: Pop3Service) -> None:
        """New sessions use `service`; sessions already open keep the one they began with."""
        for listener in self.listeners:
            if listener.implicit_tls and service.tls_context is None:
                raise ValueError(f"{listener}: POP3S needs a TLS certificate and key")
        self.service = service

    def request_stop(self) -> None:
        """Safe in a signal handler (sets a flag, takes no lock): `serve_until_stopped`
        drains and returns."""
        self._stop_requested = True

    def request_reload(self) -> None:
        """Safe in a signal handler: `serve_until_stopped` calls its `reloader`."""
        self._reload_requested = True

    def serve_until_stopped(
        self, reloader: Callable[[], Pop3Service] | None = None, drain_timeout: float = 30.0
    ) -> None:
        """Wait for `request_stop`; honour `request_reload` with `reloader()` meanwhile.

        The flags are polled: a signal handler that took a lock (Event.set) could
        deadlock against the main thread holding that same lock when the signal came.
        """
        while not self._stop_requested:
            time.sleep(SHUTDOWN_POLL_INTERVAL)
            if self._reload_requested:
                self._reload_requested = False
                if reloader is not None:
                    try:
                        self.reload(reloader())
                        logger.info("configuration reloaded")
                    except Exception as error:  # a bad new config keeps the old one running
                        logger.error("reload failed, keeping the running configuration: %s", error)
        self.shutdown(drain_timeout)

    def shutdown(self, drain_timeout: float = 30.0) -> None:
        """Stop listening, let open sessions finish, then cut those still open.

        A session cut here loses its connection before QUIT, so it deletes nothing.
        """
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        if not self.wait_idle(drain_timeout):
            with self._lock:
                left = list(self._connections)
            for connection in left:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.wait_idle(5.0)
        for thread in self._threads:
            thread.join(timeout=5.0)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no connection is open; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._connections, timeout=timeout)

    # ------------------------------------------------------------ one connection

    def serve_connection(self, connection: socket.socket, peer: tuple, implicit_tls: bool) -> None:
        service = self.service
        peer_text = f"[{peer[0]}]:{peer[1]}"
        with self._lock:
            full = len(self._connections) >= service.max_sessions
            if not full:
                self._connections.add(connection)
        if full:
            logger.warning("%s: refused, %d sessions open", peer_text, service.max_sessions)
            try:
                connection.sendall(b"-ERR [SYS/TEMP] Too many connections, try later\r\n")
            except OSError:
                pass
            return
        conversation = _Conversation(self, service, connection)
        try:
            conversation.run(peer_text, implicit_tls)
        except TimeoutError:
            logger.info("%s: idle too long, closed", peer_text)
        except (OSError, ssl.SSLError) as error:
            logger.info("%s: connection lost: %s", peer_text, error)
        except Exception:  # one session's bug must not take the daemon down
            logger.exception("%s: session failed", peer_text)
        finally:
            conversation.end()

    def apop_timestamp(self, hostname: str) -> str:
        """RFC 1939's `<pid.clock@host>` for a greeting: the clock in nanoseconds, kept
        strictly increasing, so that no two greetings of this process share one."""
        with self._lock:
            self._apop_clock = max(self._apop_clock + 1, time.time_ns())
            return f"<{os.getpid()}.{self._apop_clock}@{hostname}>"

    def _swap_connection(self, old: socket.socket, new: socket.socket | None) -> None:
        with self._idle:
            self._connections.discard(old)
            if new is not None:
                self._connections.add(new)
            self._idle.notify_all()

    def _open_exclusive(self, service: Pop3Service, user: str) -> Maildrop:
        with self._lock:
            if user in self._users_in_session:
                raise MaildropInUse(user)
            self._users_in_session.add(user)
        try:
            maildrop = service.open_maildrop(user)
        except BaseException:
            self._give_back(user)
            raise
        return HeldMaildrop(maildrop, lambda: self._give_back(user))

    def _give_back(self, user: str) -> None:
        with self._lock:
            self._users_in_session.discard(user)


class _Conversation:
    """One connection: its socket (which STLS replaces) and its session."""

    def __init__(self, daemon: Pop3Daemon, service: Pop3Service, sock: socket.socket) -> None:
        self.daemon = daemon
        self.service = service
        self.sock = sock
        self.session: Pop3Session | None = None

    def run(self, peer_text: str, implicit_tls: bool) -> None:
        service = self.service
        if implicit_tls:
            self._start_tls()
        self.sock.settimeout(service.idle_timeout)
        self.session = session = Pop3Session(
            SessionSettings(
                hostname=service.hostname,
                tls_available=service.tls_context is not None,
                tls_active=implicit_tls,
                allow_plaintext_auth=service.allow_plaintext_auth,
                failed_login_delay=service.failed_login_delay,
                max_failed_logins=service.max_failed_logins,
                peer=peer_text,
                block_size=service.block_size,
            ),
            service.verify,
            lambda user: self.daemon._open_exclusive(service, user),
            apop_secret=service.apop_secret,
            apop_timestamp=self.daemon.apop_timestamp(service.hostname)
            if service.apop_secret
            else None,
        )
        events = session.greeting()
        while True:
            for event in events:
                if isinstance(event, Send):
                    self.sock.sendall(event.data)
                elif isinstance(event, Stream):
                    if not self._send_stream(event, peer_text):
                        return
                elif isinstance(event, Log):
                    logger.log(event.level, "%s", event.message)
                elif isinstance(event, Pause):
                    self.daemon._stopping.wait(event.seconds)
                elif isinstance(event, StartTLS):
                    self._start_tls()
                    self.sock.settimeout(service.idle_timeout)
                    session.tls_started()
                elif isinstance(event, Close):
                    return
            data = self.sock.recv(RECV_SIZE)
            if not data:
                return
            events = session.receive(data)

    def _send_stream(self, stream: Stream, peer_text: str) -> bool:
        """Write a RETR or TOP response block by block; False when the mailbox failed
        halfway: the client has a cut response, so the connection must end."""
        pending = bytearray()
        while True:
            try:
                block = next(stream.blocks, None)
            except (MailError, OSError) as error:
                logger.error(
                    "%s: mailbox read failed during a transfer, closing: %s", peer_text, error
                )
                return False
            if block is None:
                break
            pending += block
            if len(pending) >= SEND_BUFFER_SIZE:
                self.sock.sendall(pending)
                pending.clear()
        self.sock.sendall(pending)
        return True

    def _start_tls(self) -> None:
        assert self.service.tls_context is not None
        plain = self.sock
        plain.settimeout(TLS_HANDSHAKE_TIMEOUT)
        wrapped = self.service.tls_context.wrap_socket(
            plain, server_side=True, do_handshake_on_connect=False
        )
        # Registered before the handshake, so that a drain can cut a stuck one.
        self.daemon._swap_connection(plain, wrapped)
        self.sock = wrapped
        wrapped.do_handshake()

    def end(self) -> None:
        """Release the maildrop uncommitted (unless QUIT committed it) and close."""
        if self.session is not None:
            for event in self.session.connection_lost():
                if isinstance(event, Log):
                    logger.log(event.level, "%s", event.message)
        try:
            self.sock.close()
        finally:
            self.daemon._swap_connection(self.sock, None)
