"""Delivery to mailers with F=z: LMTP (RFC 2033), as sendmail speaks it.

- `P=/path` (Cyrus' deliver, dovecot-lmtp, `mail.local -l` run for real): the program
  is started as prog.py starts mailer programs (A=, E=, D=, U=, /=, the cleared
  environment) with one end of a socket pair as its standard input and output, and
  the LMTP dialogue runs over it.
- `P=[IPC]`: `A=TCP $h [port]` connects to the host (an address literal, or a name
  looked up without MX), `A=FILE /path/socket` to a Unix-domain socket.

One transaction carries all the recipients handed in. After the final dot the server
gives one reply per accepted recipient, and each recipient gets its own result from
its own reply (250 sent, 452 deferred, 550 bounced ...). A dialogue cut short defers
every recipient that had no final reply yet: nothing was acknowledged for them. The
protocol itself is in lmtp_protocol.py; this module only moves its bytes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Sequence

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.lmtp_protocol import LmtpClient
from pysendmail.delivery.message import OutgoingMessage, bare_sender
from pysendmail.delivery.prog import (
    MailerUserError,
    ProgramSettings,
    RunIdentity,
    expand_argv,
    home_of,
    mailer_directories,
    mailer_identity,
    mailer_macros,
    mailer_root_dir,
    mailer_wait,
    spawn_program,
)
from pysendmail.delivery.remote import (
    RemoteRecipient,
    dsn_mail_params,
    dsn_rcpt_params,
    parse_destination,
    reply_result,
    smtp_data_stream,
)
from pysendmail.delivery.result import DeliveryResult
from pysendmail.dns import DnsError, DnsTempFailure, Resolver, address_literal
from pysendmail.envelope import ControllingUser
from pysendmail.record import field, record

DEFAULT_LMTP_TIMEOUT = 300.0


@record(frozen=True)
class LmtpTarget:
    """One recipient: the address to report, `$u` for RCPT TO, `$h`, and who controls
    it (the identity a P=/path mailer without F=S or U= runs as)."""

    recipient: str
    user: str
    host: str = ""
    controlling_user: ControllingUser | RunIdentity | None = None
    notify: frozenset[str] | None = None  # DSN NOTIFY= values, when the sender gave them
    orcpt: str | None = None  # DSN ORCPT= as queued


@record(frozen=True)
class LmtpSettings:
    lhlo_name: str  # $j
    program: ProgramSettings = field(default_factory=ProgramSettings)
    resolver: Resolver | None = None  # for A=TCP host names; literals need none
    timeout: float = DEFAULT_LMTP_TIMEOUT  # per read from the server


class _Unreachable(Exception):
    def __init__(self, text: str, status: str = "4.4.1") -> None:
        super().__init__(text)
        self.text = text
        self.status = status


def diagnostic_type(mailer: MailerSpec) -> str:
    """The third part of the mailer's T= (`T=DNS/RFC822/LMTP`), which DSNs print."""
    parts = mailer.fields.get("T", "").split("/")
    return parts[2] if len(parts) >= 3 and parts[2] else "smtp"


def deliver_lmtp(
    message: OutgoingMessage,
    targets: Sequence[LmtpTarget],
    mailer: MailerSpec,
    settings: LmtpSettings,
    *,
    allow_root: bool = False,
    ret: str | None = None,
    envid: str | None = None,
) -> list[DeliveryResult]:
    """One LMTP transaction for `targets`; one DeliveryResult per target, in order.
    The DSN parameters (`ret`, `envid`, each target's NOTIFY= and ORCPT=) go to a
    server that offers DSN. Never raises for a delivery problem."""
    if not targets:
        return []
    proc: subprocess.Popen[bytes] | None = None
    try:
        if mailer.path == "[IPC]":
            channel, relay, host = _connect(mailer, targets[0].host, settings)
        else:
            channel, proc = _start(message, targets, mailer, settings, allow_root)
            relay, host = "local", ""
    except _Unreachable as failure:
        return [
            DeliveryResult.deferred(t.recipient, failure.text, failure.status, mailer=mailer.name)
            for t in targets
        ]
    client = LmtpClient(
        settings.lhlo_name,
        bare_sender(message.sender),
        [t.user for t in targets],
        dsn_mail_params=dsn_mail_params(ret, envid),
        dsn_rcpt_params=[
            dsn_rcpt_params(RemoteRecipient(t.user, notify=t.notify, orcpt=t.orcpt))
            for t in targets
        ],
    )
    try:
        channel.settimeout(settings.timeout)
        converse(channel, client, message)
    finally:
        channel.close()
        exit_code = _reap(proc, mailer, settings) if proc is not None else None
    kind = diagnostic_type(mailer)
    results = []
    for target, reply in zip(targets, client.results, strict=True):
        if reply is not None:
            code, text = reply
            results.append(
                reply_result(
                    target.recipient,
                    code,
                    text,
                    host=host,
                    relay=relay,
                    mailer=mailer.name,
                    diagnostic_type=kind,
                )
            )
        else:
            results.append(_undecided(target, client, mailer, relay, exit_code))
    return results


def converse(channel: socket.socket, client: LmtpClient, message: OutgoingMessage) -> None:
    """Run the client's dialogue over `channel` until it is done or the channel fails."""
    while not client.done:
        try:
            data = channel.recv(65536)
        except OSError as err:
            client.connection_lost(f"{type(err).__name__}: {err}")
            return
        if not data:
            client.connection_lost("connection closed by the LMTP server")
            return
        try:
            out = client.receive(data)
            if out:
                channel.sendall(out)
            if client.wants_body:
                for chunk in smtp_data_stream(message):
                    channel.sendall(chunk)
                client.body_sent()
        except OSError as err:
            client.connection_lost(f"{type(err).__name__}: {err}")
            return


def _undecided(
    target: LmtpTarget,
    client: LmtpClient,
    mailer: MailerSpec,
    relay: str,
    exit_code: int | None,
) -> DeliveryResult:
    """A recipient without a final reply: it was not delivered, so it waits (a
    program that exited with a sysexits code says how)."""
    if exit_code:
        result = DeliveryResult.from_exit(
            target.recipient, exit_code, mailer=mailer.name, relay=relay
        )
        if not result.is_success:
            return result
    code, text = client.failure or (451, "no reply from the LMTP server")
    if code >= 500 and client.failure is not None:
        status = "4.0.0"  # a refused greeting or LHLO says nothing about the mailbox
    else:
        status = "4.4.2" if code in (0, 421) else "4.0.0"
    return DeliveryResult.deferred(
        target.recipient,
        f"Deferred: {code} {text}" if code else f"Deferred: LMTP protocol error: {text}",
        status,
        mailer=mailer.name,
        relay=relay,
    )


# ---------------------------------------------------------------- P=[IPC]


def _connect(
    mailer: MailerSpec, host: str, settings: LmtpSettings
) -> tuple[socket.socket, str, str]:
    argv = mailer.argv
    kind = argv[0].upper() if argv else "TCP"
    if kind == "FILE":
        if len(argv) < 2:
            raise _Unreachable("Deferred: A=FILE without a socket path", "4.3.5")
        path = argv[1]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(settings.timeout)
        try:
            sock.connect(path)
        except OSError as err:
            sock.close()
            raise _Unreachable(f"Deferred: {path}: {err.strerror or err}") from None
        return sock, path, ""
    name = expand_argv([argv[1]], {"h": host}, [])[0] if len(argv) >= 2 else host
    try:
        port = int(argv[2]) if len(argv) >= 3 else 25
    except ValueError:
        raise _Unreachable(f"Deferred: bad port in A= of {mailer.name}", "4.3.5") from None
    last = f"Deferred: no address for {name}"
    for hostname, _skip_mx in parse_destination(name) or [(name, True)]:
        try:
            literal = address_literal(hostname) or address_literal(f"[{hostname}]")
            if literal is not None:
                addresses = [literal]
            elif settings.resolver is not None:
                addresses = settings.resolver.host_addresses(hostname)
            else:
                raise _Unreachable(f"Deferred: cannot look up {hostname}", "4.4.3")
        except (DnsError, DnsTempFailure) as err:
            last = f"Deferred: {err.text}"
            continue
        for address in addresses:
            try:
                sock = socket.create_connection((address, port), timeout=settings.timeout)
            except OSError as err:
                last = f"Deferred: {hostname}.: {err.strerror or err}"
                continue
            return sock, f"{hostname}. [{address}]", hostname
    raise _Unreachable(last)


# ---------------------------------------------------------------- P=/path


def _start(
    message: OutgoingMessage,
    targets: Sequence[LmtpTarget],
    mailer: MailerSpec,
    settings: LmtpSettings,
    allow_root: bool,
) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    first = targets[0]
    try:
        identity = mailer_identity(
            mailer,
            first.controlling_user,
            settings.program,
            keep_root=allow_root and "S" in mailer.flags,
        )
    except MailerUserError as err:
        raise _Unreachable(f"Deferred: {err}", "4.3.5") from None
    home = identity.home if identity else home_of(first.controlling_user)
    values = mailer_macros(message, first.host, home)
    argv = expand_argv(mailer.argv, values, [t.user for t in targets])
    ours, theirs = socket.socketpair()
    try:
        started = spawn_program(
            argv,
            executable=mailer.path,
            identity=identity,
            environment=settings.program.environment,
            directories=mailer_directories(mailer, home),
            root_dir=mailer_root_dir(mailer, values),
            stdin=theirs.fileno(),
            stdout=theirs.fileno(),
            stderr=subprocess.DEVNULL,
        )
    finally:
        theirs.close()
    if isinstance(started, OSError):
        ours.close()
        program = os.path.basename(mailer.path)
        raise _Unreachable(f"Deferred: Cannot exec {program}: {started.strerror or started}")
    return ours, started


def _reap(proc: subprocess.Popen[bytes], mailer: MailerSpec, settings: LmtpSettings) -> int | None:
    """Wait for the program (W= at most, else the read timeout); kill it if it hangs.
    Its exit code, or None when it had to be killed."""
    wait = mailer_wait(mailer) or settings.timeout
    try:
        return proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()
        return None
