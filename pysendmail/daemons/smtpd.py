"""The SMTP daemons: sockets, threads, TLS, limits and signals around `SmtpSession`.

One threaded `socketserver` listener per `DaemonPortOptions` entry; each connection is
one thread running one `SmtpConnection`, which only moves bytes between the socket and
the sans-IO session and carries out its events: a message's body is streamed into a
queue draft (`QueueStore.open_draft`), committed with the cf's `H` lines expanded as
sendmail does for SMTP mail (`stamp.default_headers`: Return-Path, Received, and the
Date/From/Message-Id the message lacks), and only then is the `250` sent. Nothing is
acknowledged before the queue files are durable; the queue store shares directory fsyncs between the
sessions committing at the same moment (group commit).

Limits: MaxDaemonChildren (at that many sessions the listening socket is closed, as
sendmail closes it, and opened again when one ends), ConnectionRateThrottle (connections
a second; more wait a second), Timeout.command between commands,
Timeout.datablock inside DATA, greet_pause. Signals (installed by `run_daemon`): SIGTERM
stops accepting, lets open transactions finish, tells idle clients 421 and exits;
SIGHUP builds a new service from the configuration and uses it for new connections
while the open ones finish with the old one.

Processes and signals: `smtp_process.py`.

`serve_stdio` runs one session on a pair of streams: `sendmail -bs`.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import BinaryIO

from pysendmail.config.model import Config, DaemonSpec, HeaderSpec
from pysendmail.daemons.server import (
    SmtpService,
    bs_auth_warnings,
    client_macros,
    daemon_specs,
    service_from_config,
)
from pysendmail.daemons.smtp_process import (
    detach,
    serve_until_signalled,
    serve_with_workers,
    worker_count,
    write_pid_file,
)
from pysendmail.daemons.threadpool import ThreadPool
from pysendmail.daemons.tls import tls_version_macros
from pysendmail.errors import MailError, QueueError
from pysendmail.headers import Header, deletes_bcc, header_from_lines
from pysendmail.protocol import smtp_throttle as throttle
from pysendmail.protocol.replies import Reply
from pysendmail.protocol.smtp import (
    BodyChunk,
    ClientInfo,
    Close,
    EtrnRequest,
    MessageAborted,
    MessageComplete,
    MessageStart,
    Output,
    Pause,
    SessionSettings,
    SmtpSession,
    StartTLS,
)
from pysendmail.queue.store import Draft
from pysendmail.record import replace
from pysendmail.stamp import HeaderTemplate, arpadate, default_headers, time_macro

log = logging.getLogger("pysendmail.smtpd")

RECV_SIZE = 64 * 1024
# How long a listener's accept() waits before it looks whether the daemon is stopping.
ACCEPT_WAIT = 0.2
# Read what is already waiting (sendmail's "is input pending" check), up to this much.
MAX_PENDING_READ = 1024 * 1024

# ---------------------------------------------------------------- one connection


class _Channel:
    """The byte stream of a connection: a socket (maybe TLS) or a pair of -bs streams."""

    def __init__(
        self,
        sock: socket.socket | None,
        reader: BinaryIO | None = None,
        writer: BinaryIO | None = None,
    ) -> None:
        self.sock = sock
        self.reader = reader
        self.writer = writer
        self._timeout: tuple[socket.socket, float | None] | None = None

    def fileno(self) -> int:
        if self.sock is not None:
            return self.sock.fileno()
        assert self.reader is not None
        return self.reader.fileno()

    def settimeout(self, seconds: float | None) -> None:
        """The limit on each read and write. A plain socket stays blocking and gets it
        as the kernel's SO_RCVTIMEO/SO_SNDTIMEO: Python's own timeouts poll(2) before
        every recv and send, a second system call and a second GIL release each time."""
        sock = self.sock
        if sock is None or self._timeout == (sock, seconds):
            return
        if type(sock) is socket.socket:
            if sock.gettimeout() is not None:
                sock.settimeout(None)
            value = _timeval(seconds or 0.0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        else:
            sock.settimeout(seconds)
        self._timeout = (sock, seconds)

    def _pending(self) -> bool:
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        try:
            ready, _, _ = select.select([self.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _read_once(self) -> bytes:
        if self.sock is not None:
            try:
                return self.sock.recv(RECV_SIZE)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                raise TimeoutError("timed out") from None
        assert self.reader is not None
        return os.read(self.reader.fileno(), RECV_SIZE)

    def read(self, lookahead: Callable[[bytes], bool] | None = None) -> tuple[bytes, bool]:
        """What the client sent (blocking for the first byte), and whether input ended.

        With `lookahead`, what is already pending behind the first read is read too while
        `lookahead` says that it matters (the session's `wants_lookahead`)."""
        data = self._read_once()
        if not data:
            return b"", True
        eof = False
        while (
            len(data) < MAX_PENDING_READ
            and (lookahead is None or lookahead(data))
            and self._pending()
        ):
            more = self._read_once()
            if not more:
                eof = True
                break
            data += more
        return data, eof

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.sock is not None:
            self.sock.sendall(data)
            return
        assert self.writer is not None
        self.writer.write(data)
        self.writer.flush()


def _timeval(seconds: float) -> bytes:
    """A struct timeval for SO_RCVTIMEO/SO_SNDTIMEO (0: no limit)."""
    whole = int(seconds)
    return struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))


class SmtpConnection:
    """Runs one session: reads, feeds, writes, and carries out the session's events."""

    def __init__(
        self,
        service: SmtpService,
        channel: _Channel,
        client: ClientInfo,
        settings: SessionSettings,
        *,
        daemon_name: str = "MTA",
        addr_macro: str | None = None,
        invoker: tuple[int, str] | None = None,
    ) -> None:
        self.service = service
        self.invoker = invoker  # -bs: the uid and name of the user who ran it
        self.channel = channel
        self.client = client
        self.daemon_name = daemon_name
        self.session = SmtpSession(service.policy, settings, client)
        self._macros = client_macros(client, addr_macro)
        self._outbox = bytearray()
        self._draft: Draft | None = None
        self._draft_error: MailError | None = None
        self._tls_macros: dict[str, str] = {}
        self.draining = False
        self.idle = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------ main loop

    def run(self, early_talker: bool = False) -> None:
        service = self.service
        greeting = service.greeting(self._macros, time.time())
        try:
            self._handle(self.session.start(early_talker, greeting=greeting))
            while not self.session.closed:
                in_data = self.session.in_transaction and not self.session.awaiting_queue
                timeout = service.data_timeout if in_data else service.command_timeout
                self.channel.settimeout(timeout or None)
                with self._lock:
                    self.idle = not self.session.in_transaction
                    if self.draining and self.idle:
                        self._handle(self.session.shutdown())
                        break
                try:
                    data, eof = self.channel.read(self.session.wants_lookahead)
                except TimeoutError:
                    self._handle(self.session.timeout())
                    break
                except (OSError, ssl.SSLError):
                    data, eof = b"", True
                finally:
                    with self._lock:
                        self.idle = False
                if eof and not data and self.draining:
                    self._handle(self.session.shutdown())
                    break
                self._handle(self.session.feed(data, eof))
        except (OSError, ssl.SSLError) as error:
            log.info("%s: connection lost: %s", self.client.smtp_client, error)
        finally:
            self._abort_draft()

    def stop(self) -> None:
        """SIGTERM: close now if idle, otherwise once the open transaction is over."""
        with self._lock:
            self.draining = True
            if self.idle and self.channel.sock is not None:
                try:
                    self.channel.sock.shutdown(socket.SHUT_RD)
                except OSError:
                    pass

    # ------------------------------------------------------------ events

    def _flush(self) -> None:
        if self._outbox:
            data = bytes(self._outbox)
            self._outbox.clear()
            self.channel.write(data)

    def _handle(self, outputs: list[Output]) -> None:
        queue = collections.deque(outputs)
        while queue:
            item = queue.popleft()
            if isinstance(item, Reply):
                self._outbox += item.to_bytes()
            elif isinstance(item, BodyChunk):
                self._write_body(item.data)
            elif isinstance(item, MessageStart):
                self._open_draft()
            elif isinstance(item, MessageComplete):
                self._flush()
                queue.extend(self._complete(item))
            elif isinstance(item, MessageAborted):
                self._abort_draft()
            elif isinstance(item, StartTLS):
                self._flush()
                queue.extend(self._start_tls())
            elif isinstance(item, EtrnRequest):
                if self.service.etrn is not None:
                    self.service.etrn(item.node)
            elif isinstance(item, Pause):
                self._flush()
                self.service.pause(item.seconds)
            elif isinstance(item, Close):
                self._flush()
        self._flush()

    def _open_draft(self) -> None:
        self._abort_draft()
        self._draft_error = None
        try:
            self._draft = self.service.store.open_draft()
        except QueueError as error:
            self._draft_error = error

    def _write_body(self, data: bytes) -> None:
        if self._draft is None:
            return
        try:
            self._draft.write(data)
        except QueueError as error:
            self._draft_error = error
            self._abort_draft()

    def _abort_draft(self) -> None:
        if self._draft is not None:
            self._draft.abort()
            self._draft = None

    def _complete(self, done: MessageComplete) -> list[Output]:
        draft, self._draft = self._draft, None
        if self._draft_error is not None or draft is None:
            error = self._draft_error or QueueError("queue: no draft")
            self._draft_error = None
            return self.session.message_failed(error)
        if done.discard:
            draft.abort()
            qid = draft.qid
            self.service.mail_log.event(qid, "discarded")
            return self.session.message_queued(qid)
        envelope = done.envelope
        now = time.time()
        envelope.macros.update(
            {"_": self.client.smtp_client, "daemon_flags": "", **self._tls_macros}
        )
        message_headers = [header_from_lines(h.split("\n")) for h in done.headers]
        refusal = self._header_checks(message_headers)
        if refusal == "discard":
            draft.abort()
            self.service.mail_log.event(draft.qid, "discarded")
            return self.session.message_queued(draft.qid)
        if refusal is not None:
            draft.abort()
            return self.session.message_failed(refusal)
        if deletes_bcc(message_headers):
            envelope.flags.add("b")  # sendmail's EF_DELETE_BCC: Bcc: is dropped at delivery
        warnings = []
        if self.invoker is not None:
            warnings = bs_auth_warnings(self.service, *self.invoker, envelope.sender)
        headers = default_headers(
            self._header_templates(),
            message_headers,
            self._header_macros(draft.qid, done, now),
            warnings,
        )
        try:
            qid = draft.commit(
                envelope,
                headers,
                msg_size=done.size,
                hostname=self.service.hostname,
                now=now,
            )
        except QueueError as error:
            draft.abort()
            return self.session.message_failed(error)
        self.service.mail_log.accepted(
            qid,
            sender=envelope.sender,
            size=done.size,
            nrcpts=len(envelope.recipients),
            msgid=_message_id(headers),
            bodytype=envelope.body_type.value if envelope.body_type else None,
            proto=envelope.macros.get("r"),
            daemon=self.daemon_name,
            relay=self.client.smtp_client,
        )
        if self.service.on_queued is not None:
            self.service.on_queued(qid)
        return self.session.message_queued(qid)

    def _header_checks(self, headers: list[Header]) -> MailError | str | None:
        """The cf's header check rulesets (`HName: $>rs`) over the received headers, as
        sendmail runs them while collecting: the first `$#error` refuses the message with
        its reply, `$#discard` drops it ("discard"); None lets it in."""
        checks = getattr(self.service.policy, "rule_checks", None)
        if checks is None or not getattr(checks, "world", None) or not checks.world.header_checks:
            return None
        for header in headers:
            verdict = checks.header(self.session.view, header.name, header.value)
            if verdict is None or verdict.accepted:
                continue
            if verdict.action == "discard":
                return "discard"
            code, _, rest = (verdict.reply or "550 5.7.1 Header refused").partition(" ")
            status, _, text = rest.partition(" ")
            if not code.isdigit() or not status[:1].isdigit():
                code, status, text = "550", "5.7.1", verdict.reply or "Header refused"
            return MailError(text, reply_code=int(code), status=status)
        return None

    def _header_templates(self) -> tuple[HeaderTemplate | HeaderSpec, ...]:
        service = self.service
        return service.header_templates or (HeaderTemplate("Received", service.received_template),)

    def _header_macros(self, qid: str, done: MessageComplete, now: float) -> dict[str, str]:
        """The macros sendmail has set when it stamps an SMTP message's headers."""
        envelope = done.envelope
        date = arpadate(now)
        macros = {
            **self.service.macros,
            **self._macros,
            **self._tls_macros,
            "j": self.service.hostname,
            "s": envelope.macros.get("s", ""),
            "r": envelope.macros.get("r", ""),
            "i": qid,
            "a": date,
            "b": date,
            "t": time_macro(now),
            "g": _sender_macro(envelope.sender, self.service.hostname),
            # No full name travels over SMTP, so no Full-Name: and a bare From: <$g>.
            "x": "",
        }
        if len(envelope.recipients) == 1:
            macros["u"] = envelope.recipients[0].address
        if self.session.view.authenticated is not None:
            macros["auth_type"] = "PLAIN"
            macros["auth_authen"] = self.session.view.authenticated
        return macros

    def _start_tls(self) -> list[Output]:
        context = self.service.tls_context
        sock = self.channel.sock
        if context is None or sock is None:
            return self.session.tls_failed()
        try:
            wrapped = context.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError) as error:
            log.info("%s: STARTTLS failed: %s", self.client.smtp_client, error)
            return self.session.tls_failed()
        self.channel.sock = wrapped
        self._tls_macros = tls_version_macros(wrapped)
        return self.session.tls_started()


def _message_id(headers: list[Header]) -> str | None:
    for header in headers:
        if header.key == "message-id":
            return " ".join(header.value.split())
    return None


def _sender_macro(sender: str, hostname: str) -> str:
    """`$g` of an SMTP message: the MAIL FROM address without its angle brackets,
    qualified with $j when it names no domain ("" for the null sender)."""
    bare = sender.strip()
    if bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1]
    if bare and "@" not in bare:
        bare = f"{bare}@{hostname}"
    return bare


# ---------------------------------------------------------------- listeners


class _Handler(socketserver.BaseRequestHandler):
    server: SmtpListener

    def handle(self) -> None:
        self.server.serve_connection(self.request, self.client_address)


class SmtpListener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """One DaemonPortOptions entry: a listening socket and a thread per connection."""

    daemon_threads = True
    block_on_close = False  # stop() drains the open sessions itself
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, spec: DaemonSpec, service_ref: Callable[[], SmtpService]) -> None:
        self.spec = spec
        self.address_family = socket.AF_INET6 if spec.family == "inet6" else socket.AF_INET
        self._service_ref = service_ref
        self.connections: set[SmtpConnection] = set()
        self._connections_lock = threading.Lock()
        self._slots: threading.Semaphore | None = None
        self._slots_size = 0
        self._rate = throttle.ConnectionRate()
        self.stopping = threading.Event()
        self._stopped = threading.Event()
        self.listening = True
        self._pool = ThreadPool(f"smtpd-{spec.name or 'MTA'}")
        host = spec.addr or ("::" if spec.family == "inet6" else "0.0.0.0")
        super().__init__((host, spec.port), _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        self._pool.submit(self.process_request_thread, request, client_address)

    def server_activate(self) -> None:
        super().server_activate()
        # accept() blocks at most this long, so that serve() sees stop_accepting. A
        # blocking accept wakes one waiter per connection, where select() on the socket
        # would wake every worker process and all but one would find nothing to accept.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(ACCEPT_WAIT))

    @property
    def port(self) -> int:
        return self.server_address[1]

    def _limit(self) -> threading.Semaphore | None:
        size = self._service_ref().max_daemon_children
        if size <= 0:
            return None
        if self._slots is None or self._slots_size != size:
            self._slots, self._slots_size = threading.BoundedSemaphore(size), size
        return self._slots

    def serve(self, poll_interval: float = 0.2) -> None:
        """Accept connections until `stop_accepting`, each served in its own thread.

        At MaxDaemonChildren open sessions the listening socket is closed, as sendmail
        closes it "so peer fails quickly": new clients are refused at once (ECONNREFUSED)
        instead of waiting; it is opened again once a session ends."""
        try:
            while not self.stopping.is_set():
                slots = self._limit()
                if slots is not None and not slots.acquire(blocking=False):
                    self._refuse_until_free(slots, poll_interval)
                    continue
                try:
                    accepted = self._accept_one()
                except BaseException:
                    if slots is not None:
                        slots.release()
                    raise
                if accepted is None:
                    if slots is not None:
                        slots.release()
                    continue
                sock, peer = accepted
                self._throttle()
                try:
                    self.process_request(sock, peer)
                except Exception:
                    self.handle_error(sock, peer)
                    self.shutdown_request(sock)
        finally:
            self._stopped.set()

    def _accept_one(self) -> tuple[socket.socket, object] | None:
        try:
            sock, peer = self.socket.accept()
        except OSError:  # ACCEPT_WAIT passed, or the socket was closed by stop_accepting
            return None
        if self.stopping.is_set():
            sock.close()
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, peer

    def _refuse_until_free(self, slots: threading.Semaphore, poll_interval: float) -> None:
        log.info(
            "rejecting connections on daemon %s: %d children", self.spec.name, self._slots_size
        )
        self.socket.close()
        self.listening = False
        try:
            while not slots.acquire(timeout=poll_interval):
                if self.stopping.is_set():
                    return
            slots.release()
        finally:
            if not self.stopping.is_set():
                self.socket = socket.socket(self.address_family, self.socket_type)
                self.server_bind()
                self.server_activate()
                self.listening = True

    def _throttle(self) -> None:
        """ConnectionRateThrottle: beyond that many connections a second on this daemon,
        wait a second before serving the next ("deferring connections", never refused)."""
        service = self._service_ref()
        wait = self._rate.admit(service.connection_rate_throttle, time.time())
        if wait:
            log.info(
                "deferring connections on daemon %s: %d per second",
                self.spec.name,
                service.connection_rate_throttle,
            )
            service.pause(wait)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        slots = self._slots
        if slots is not None:
            try:
                slots.release()
            except ValueError:
                pass

    def serve_connection(self, sock: socket.socket, peer: tuple) -> None:
        service = self._service_ref()
        tls_on_connect = "s" in self.spec.modifiers
        if tls_on_connect:
            if service.tls_context is None:
                return
            try:
                # Not the listening socket's SO_RCVTIMEO (ACCEPT_WAIT), which accept()
                # passed on to this one: Python's own timeout, or none.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(0))
                sock.settimeout(service.command_timeout or None)
                sock = service.tls_context.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                return
        addr = peer[0]
        if addr.startswith("::ffff:"):
            addr = addr[7:]
        name, resolve = service.hosts.client_name(addr)
        client = ClientInfo(addr=addr, name=name, resolve=resolve, port=peer[1])
        settings = service.settings_for(self.spec, tls_on_connect)
        connection = SmtpConnection(
            service, _Channel(sock), client, settings, daemon_name=self.spec.name or "MTA"
        )
        if tls_on_connect:
            connection.session.view.tls = True
        with self._connections_lock:
            if self.stopping.is_set():
                return
            self.connections.add(connection)
        try:
            early = False
            pause = service.greet_pause
            if service.greet_pause_for is not None:
                pause = service.greet_pause_for(addr)
            if pause > 0:
                ready, _, _ = select.select([sock], [], [], pause)
                early = bool(ready)
            connection.run(early)
        finally:
            with self._connections_lock:
                self.connections.discard(connection)

    def stop_accepting(self) -> None:
        self.stopping.set()
        self._stopped.wait(5.0)
        self.server_close()

    def drain(self) -> None:
        with self._connections_lock:
            open_connections = list(self.connections)
        for connection in open_connections:
            connection.stop()

    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self.connections)


class SmtpServer:
    """All the listeners of one configuration, with reload and drain."""

    def __init__(self, service: SmtpService, daemons: tuple[DaemonSpec, ...]) -> None:
        self.service = service
        self.listeners = [SmtpListener(spec, self._current) for spec in daemons]
        self._threads: list[threading.Thread] = []

    def _current(self) -> SmtpService:
        return self.service

    def start(self) -> SmtpServer:
        for listener in self.listeners:
            thread = threading.Thread(
                target=listener.serve,
                kwargs={"poll_interval": 0.2},
                name=f"smtpd-{listener.spec.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def reload(self, service: SmtpService) -> None:
        """New connections use `service`; open ones keep the one they started with."""
        self.service = service

    def stop(self, timeout: float = 60.0) -> None:
        """Stop accepting, let open transactions finish, close idle sessions with 421."""
        for listener in self.listeners:
            listener.stop_accepting()
        for listener in self.listeners:
            listener.drain()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(listener.open_connections() for listener in self.listeners):
                break
            for listener in self.listeners:
                listener.drain()
            time.sleep(0.05)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(timeout=5.0)


# ---------------------------------------------------------------- entry points


def serve_stdio(
    config: Config | SmtpService,
    instream: BinaryIO,
    outstream: BinaryIO,
    user: str | None = None,
    uid: int | None = None,
) -> int:
    """`sendmail -bs`: one SMTP session on a pair of binary streams; the exit status.

    `instream` must have a file descriptor (stdin, a pipe, a socket): input that is
    already waiting when HELO/EHLO or DATA is read is sendmail's protocol error."""
    service = config if isinstance(config, SmtpService) else service_from_config(config)
    uid = os.getuid() if uid is None else uid
    if user is None:
        import pwd

        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
    client = ClientInfo(addr="", name="", resolve="", display=f"{user}@localhost")
    channel = _Channel(None, instream, outstream)
    settings = service.settings_for(None, tls_on_connect=False)
    settings = replace(settings, tls_available=False)
    connection = SmtpConnection(
        service, channel, client, settings, daemon_name="", addr_macro="0", invoker=(uid, user)
    )
    connection.run()
    return 0


def run_daemon(
    config: Config,
    foreground: bool,
    *,
    rebuild: Callable[[], Config] | None = None,
    argv: list[str] | None = None,
    service: SmtpService | None = None,
    companion: Callable[[Callable[[], SmtpService]], Callable[[], None]] | None = None,
) -> int:
    """`-bd` (foreground False: detach, as sendmail does) and `-bD`.

    Binds every DaemonPortOptions listener before detaching (so a busy port is reported
    to the caller), writes PidFile, serves until SIGTERM/SIGINT and drains; SIGHUP calls
    `rebuild` (default: translate the same cf again) and serves new connections with it.
    Returns the exit status."""
    server = SmtpServer(
        service or service_from_config(config, deliver_queued=True), daemon_specs(config)
    )
    if not foreground:
        detach()
    pid_file = config.option("PidFile")
    if pid_file:
        try:
            write_pid_file(str(pid_file), argv or sys.argv)
        except OSError as error:
            log.warning("cannot write pid file %s: %s", pid_file, error)
            pid_file = None

    def rebuild_service() -> SmtpService:
        if rebuild is not None:
            return service_from_config(rebuild(), deliver_queued=True)
        from pysendmail.config.translate import translate

        fresh = translate(config.cf_path, hostname=config.hostname)
        return service_from_config(fresh, deliver_queued=True)

    # Started after detaching and after forking the workers (threads do not survive
    # fork): given the current service, it returns its own stop (the local submission
    # socket of cli/modes.py).
    stops: list[Callable[[], None]] = []

    def start_companion() -> None:
        if companion is not None:
            stops.append(companion(server._current))

    workers = worker_count(config)
    try:
        if workers > 1:
            serve_with_workers(server, workers, rebuild_service, on_started=start_companion)
        else:
            start_companion()
            serve_until_signalled(server, rebuild_service)
    finally:
        for stop_companion in stops:
            stop_companion()
        if pid_file:
            try:
                os.unlink(str(pid_file))
            except OSError:
                pass
    return 0
