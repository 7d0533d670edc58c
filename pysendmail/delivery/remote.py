"""Remote delivery: SMTP to the destination's mail hosts, as sendmail's smtp/esmtp/relay
mailers do it, with smtplib for the connection and the replies.

- Where to: the routed host (`$h`) is a domain (MX lookup through dns.py), `[host]`
  (no MX lookup: the host's own addresses), an address literal `[127.0.0.1]`, or a
  colon-separated list of those (sendmail's `host1:host2` fallbacks). The port is the
  one in the mailer's `A=` (`A=TCP $h 2525`), else 25. MX hosts are tried in order,
  each of their addresses in turn, until one takes the transaction.
- One connection and one transaction for all the recipients handed in (the queue runner
  groups the recipients of one destination); each recipient gets its own result from
  its RCPT reply (250 / 450 / 550 in the same transaction).
- EHLO (HELO if refused), STARTTLS when offered (opportunistic, as sendmail: the
  certificate is not required to verify unless the caller's context says so), AUTH
  PLAIN or LOGIN when the caller has credentials for the host (authinfo), PIPELINING
  when offered (MAIL, all RCPTs and DATA in one write), SIZE, DSN parameters (NOTIFY,
  ORCPT, RET, ENVID) when the peer offers DSN, BODY=8BITMIME when it offers 8BITMIME.
- An 8-bit MIME message for a peer without 8BITMIME is converted to 7 bit
  (quoted-printable for the 8-bit parts), as sendmail's mime8to7 does, unless the
  mailer has F=8; a non-MIME 8-bit message follows EightBitMode (pass8: sent as is,
  mimefy: labelled and converted, strict: bounced with 5.6.3).
- Failures: a host that cannot be reached, refuses the greeting, or fails before DATA
  is skipped for the next one; when none is left the recipients still open are
  deferred with the last reason. A connection lost during DATA defers every recipient
  of the transaction (nothing was acknowledged). Permanent replies bounce.

The body is streamed from the df file; it is read whole only to convert 8-bit MIME.
"""

from __future__ import annotations

import base64
import email
import email.generator
import email.policy
import errno
import io
import os
import quopri
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pysendmail.config.model import Config, MailerSpec
from pysendmail.delivery import hoststatus
from pysendmail.delivery.connection_cache import ConnectionCache, Key, quit_and_close
from pysendmail.delivery.message import OutgoingMessage, bare_sender
from pysendmail.delivery.result import DeliveryResult
from pysendmail.delivery.smtp_transcript import (
    TranscribedSMTP,
    Transcript,
    connecting,
    using_cached,
)
from pysendmail.dns import DnsError, DnsTempFailure, Resolver, address_literal
from pysendmail.errors import MailError
from pysendmail.record import record

DEFAULT_PORT = 25


@record(frozen=True)
class RemoteRecipient:
    address: str  # as given to RCPT TO, without angle brackets
    notify: frozenset[str] | None = None  # DSN NOTIFY= values
    orcpt: str | None = None  # DSN ORCPT= as given ("rfc822;bob@example.com")


@record(frozen=True)
class AuthInfo:
    """Credentials for AUTH to a smart host (sendmail's authinfo / `AuthInfo:` entries)."""

    user: str  # the authentication id (sendmail's I:, or U: alone)
    password: str
    authzid: str = ""  # the authorization id (U:) when it differs
    mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN")  # M:, in our order of preference


_AUTHINFO_ITEM = re.compile(r'"([^"]*)"|(\S+)')


def parse_authinfo(value: str) -> AuthInfo | None:
    """An authinfo/access value: `"U:user" "I:authid" "P:secret" "M:PLAIN LOGIN"`
    (`P=` holds the password in base64). None when it has no usable credentials."""
    items: dict[str, str] = {}
    for quoted, bare in _AUTHINFO_ITEM.findall(value):
        item = quoted or bare
        if len(item) >= 2 and item[1] in ":=":
            key = item[0].upper()
            text = item[2:]
            if key == "P" and item[1] == "=":
                try:
                    text = base64.b64decode(text, validate=True).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    return None
            items[key] = text
    authid = items.get("I") or items.get("U")
    if not authid or "P" not in items:
        return None
    authzid = items.get("U", "") if items.get("U") != authid else ""
    offered = tuple(m.upper() for m in items.get("M", "").split()) or ("PLAIN", "LOGIN")
    return AuthInfo(authid, items["P"], authzid, offered)


def authinfo_keys(host: str, address: str) -> list[str]:
    """The keys sendmail's authinfo ruleset tries, in order: the host and its parent
    domains, the address and its shorter prefixes, then the default `AuthInfo:`."""
    keys = []
    labels = host.lower().rstrip(".").split(".")
    keys += ["AuthInfo:" + ".".join(labels[i:]) for i in range(len(labels)) if labels[i]]
    if ":" in address:
        keys.append("AuthInfo:IPv6:" + address)
    else:
        octets = address.split(".")
        keys += ["AuthInfo:" + ".".join(octets[:n]) for n in range(len(octets), 0, -1)]
    keys.append("AuthInfo:")
    return keys


def authinfo_lookup(
    lookup: Callable[[str], str | None],
) -> Callable[[str, str], AuthInfo | None]:
    """An `auth_lookup` over a map (the authinfo map, or the access map's `AuthInfo:`
    entries): the first key of `authinfo_keys` that has a value decides."""

    def find(host: str, address: str) -> AuthInfo | None:
        for key in authinfo_keys(host, address):
            value = lookup(key)
            if value is not None:
                return parse_authinfo(value)
        return None

    return find


@record(frozen=True)
class RemoteSettings:
    resolver: Resolver
    helo_name: str  # $j
    connect_timeout: float = 300.0
    command_timeout: float = 300.0
    data_timeout: float = 3600.0
    starttls: bool = True
    tls_context: ssl.SSLContext | None = None  # None: opportunistic, unverified
    # (host name, address) -> credentials; see authinfo_lookup
    auth_lookup: Callable[[str, str], AuthInfo | None] | None = None
    eight_bit_mode: str = "pass8"
    connection_cache_size: int = 2  # ConnectionCacheSize: connections a queue run keeps
    connection_cache_timeout: float = 300.0  # ConnectionCacheTimeout: their idle limit
    host_status_dir: str | None = None  # HostStatusDirectory, resolved; None: not kept

    @classmethod
    def from_config(cls, config: Config, resolver: Resolver, **overrides: object) -> RemoteSettings:
        connect = float(config.option("Timeout.connect", 0) or 0)  # type: ignore[arg-type]
        values: dict[str, object] = {
            "resolver": resolver,
            "helo_name": config.hostname,
            "connect_timeout": connect or float(config.option("Timeout.initial", 300)),  # type: ignore[arg-type]
            "command_timeout": float(config.option("Timeout.rcpt", 300)),  # type: ignore[arg-type]
            "data_timeout": float(config.option("Timeout.datafinal", 3600)),  # type: ignore[arg-type]
            "eight_bit_mode": str(config.option("EightBitMode", "pass8") or "pass8"),
            "connection_cache_size": int(config.option("ConnectionCacheSize", 2) or 0),  # type: ignore[call-overload]
            "connection_cache_timeout": float(config.option("ConnectionCacheTimeout", 300) or 0),  # type: ignore[arg-type]
            "host_status_dir": hoststatus.resolve_dir(
                str(config.option("HostStatusDirectory") or ""),
                str(config.option("QueueDirectory", "/var/spool/mqueue")),
            ),
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------- destinations


def parse_destination(destination: str) -> list[tuple[str, bool]]:
    """`example.com` → [("example.com", False)]; `[mx.example.com]:backup.example` →
    [("mx.example.com", True), ("backup.example", False)]. True means: skip MX lookup."""
    parts: list[tuple[str, bool]] = []
    text = destination.strip()
    pos = 0
    while pos < len(text):
        if text[pos] == "[":
            end = text.find("]", pos)
            if end < 0:
                end = len(text)
            inner = text[pos + 1 : end]
            literal = address_literal(f"[{inner}]")
            parts.append((literal if literal else inner.rstrip("."), True))
            pos = end + 1
        else:
            end = text.find(":", pos)
            if end < 0:
                end = len(text)
            name = text[pos:end].strip().rstrip(".")
            if name:
                parts.append((name, False))
            pos = end
        if pos < len(text) and text[pos] == ":":
            pos += 1
    return parts


def mailer_port(mailer: MailerSpec | None, default: int = DEFAULT_PORT) -> int:
    """The port of `A=TCP $h PORT`, or the default."""
    if mailer is None:
        return default
    argv = mailer.argv
    if len(argv) >= 3 and argv[0].upper() == "TCP":
        try:
            return int(argv[2])
        except ValueError:
            return default
    return default


# ---------------------------------------------------------------- replies and results

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s+")


def _reply_text(message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return " ".join(text.split("\n")).strip()


def _split_enhanced(code: int, text: str) -> tuple[str, str]:
    match = _ENHANCED.match(text)
    if match:
        return match.group(1), text[match.end() :]
    return f"{str(code)[0]}.0.0", text


@record
class _Transaction:
    """Results decided so far, by recipient index."""

    recipients: list[RemoteRecipient]
    results: dict[int, DeliveryResult]
    last_failure: str = "Deferred: no mail host could be reached"
    last_status: str = "4.4.1"

    def open_indices(self) -> list[int]:
        return [i for i in range(len(self.recipients)) if i not in self.results]


def reply_result(
    recipient: str,
    code: int,
    text: str,
    *,
    host: str,
    relay: str,
    mailer: str,
    diagnostic_type: str = "smtp",
) -> DeliveryResult:
    """The result of an SMTP or LMTP reply to one recipient (RCPT, or the final dot)."""
    status, rest = _split_enhanced(code, text)
    extra = {
        "mailer": mailer,
        "relay": relay,
        "remote_mta": f"dns; {host}" if host else None,
        "diagnostic_code": f"{diagnostic_type}; {code} {text}",
    }
    if 200 <= code < 300:
        return DeliveryResult.sent(recipient, f"Sent ({rest})" if rest else "Sent", **extra)
    if 400 <= code < 500:
        if not status.startswith("4"):
            status = "4.0.0"
        return DeliveryResult.deferred(recipient, f"Deferred: {code} {text}", status, **extra)
    if not status.startswith("5"):
        status = "5.0.0"
    words = "User unknown" if status == "5.1.1" else "Service unavailable"
    return DeliveryResult.bounced(recipient, words, status, **extra)


class _HostFailed(Exception):
    """This host did not take the transaction: try the next one."""

    def __init__(self, text: str, status: str = "4.4.1", errno: int = 0) -> None:
        self.errno = errno
        super().__init__(text)
        self.text = text
        self.status = status


class _DataLost(Exception):
    """The connection broke after DATA started: defer everything still open."""


# ---------------------------------------------------------------- entry point


def deliver_remote(
    message: OutgoingMessage,
    recipients: Sequence[RemoteRecipient | str],
    destination: str,
    settings: RemoteSettings,
    *,
    mailer: MailerSpec | None = None,
    ret: str | None = None,
    envid: str | None = None,
    cache: ConnectionCache | None = None,
    transcript: Transcript | None = None,
    transcript_who: str = "",
) -> list[DeliveryResult]:
    """Send `message` to `recipients` at `destination` (the routed `$h`) in one SMTP
    transaction; one DeliveryResult per recipient, in order. Never raises for a
    delivery problem. With a `cache` (a queue run's) a connection left open by an
    earlier message to the same host is used, and this one is left open. With a
    `transcript` (-v) each connection and dialogue is shown there as sendmail shows
    it, its first line naming `transcript_who` (the recipients)."""
    rcpts = [r if isinstance(r, RemoteRecipient) else RemoteRecipient(r) for r in recipients]
    if not rcpts:
        return []
    mailer_name = mailer.name if mailer is not None else "esmtp"
    port = mailer_port(mailer)
    state = _Transaction(rcpts, {})
    try:
        hosts = _mail_hosts(destination, settings.resolver)
    except MailError as err:
        return [DeliveryResult.from_error(r.address, err, mailer=mailer_name) for r in rcpts]
    for host in hosts:
        try:
            addresses = settings.resolver.host_addresses(host)
        except (DnsError, DnsTempFailure) as err:
            state.last_failure, state.last_status = f"Deferred: {err.text}", "4.4.3"
            if len(hosts) == 1 and not err.is_temporary:
                return [
                    DeliveryResult.from_error(rcpts[i].address, err, mailer=mailer_name)
                    for i in range(len(rcpts))
                ]
            continue
        for address in addresses:
            try:
                _session(
                    message, state, host, address, port, settings, mailer, ret, envid, cache,
                    _Verbose(transcript, transcript_who, _shown_host(host, destination))
                    if transcript is not None
                    else None,
                )  # fmt: skip
            except _HostFailed as failure:
                state.last_failure, state.last_status = failure.text, failure.status
                _keep_host_status(settings, host, failure=failure)
                continue
            except _DataLost as lost:
                state.last_failure, state.last_status = str(lost), "4.4.2"
            _keep_host_status(settings, host, results=list(state.results.values()))
            for index in state.open_indices():
                state.results[index] = DeliveryResult.deferred(
                    rcpts[index].address,
                    state.last_failure,
                    state.last_status,
                    mailer=mailer_name,
                    relay=f"{host}. [{address}]",
                    remote_mta=f"dns; {host}",
                )
            return [state.results[i] for i in range(len(rcpts))]
    for index in state.open_indices():
        state.results[index] = DeliveryResult.deferred(
            rcpts[index].address, state.last_failure, state.last_status, mailer=mailer_name
        )
    return [state.results[i] for i in range(len(rcpts))]


def _keep_host_status(
    settings: RemoteSettings,
    host: str,
    *,
    failure: _HostFailed | None = None,
    results: Sequence[DeliveryResult] = (),
) -> None:
    """What sendmail keeps in HostStatusDirectory after trying `host`: the connection
    failure (errno, exit 75), or the last SMTP reply of the transaction."""
    if settings.host_status_dir is None:
        return
    if failure is not None:
        reply = None if failure.errno else failure.text.removeprefix("Deferred: ")
        status = hoststatus.HostStatus(
            errno=failure.errno, exit_status=75, dsn=failure.status, reply=reply
        )
    else:
        replies = [r for r in results if (r.diagnostic_code or "").startswith("smtp; ")]
        last = replies[-1] if replies else None
        status = hoststatus.HostStatus(
            dsn=last.status if last is not None else None,
            reply=last.diagnostic_code.removeprefix("smtp; ") if last else None,  # type: ignore[union-attr]
        )
    hoststatus.store(settings.host_status_dir, host, status._replace(last_use=int(time.time())))


def _mail_hosts(destination: str, resolver: Resolver) -> list[str]:
    hosts: list[str] = []
    for name, skip_mx in parse_destination(destination):
        if skip_mx:
            hosts.append(name)
        else:
            hosts.extend(mx.name for mx in resolver.resolve_mx(name))
    if not hosts:
        raise DnsError(f"Host unknown ({destination!r}: no host)")
    return hosts


# ---------------------------------------------------------------- one SMTP session


def _session(
    message: OutgoingMessage,
    state: _Transaction,
    host: str,
    address: str,
    port: int,
    settings: RemoteSettings,
    mailer: MailerSpec | None,
    ret: str | None,
    envid: str | None,
    cache: ConnectionCache | None = None,
    verbose: _Verbose | None = None,
) -> None:
    """One connection to one address (a cached one when the run has it). Fills
    state.results for every recipient it decides; raises _HostFailed to move on,
    _DataLost after DATA broke."""
    mailer_name = mailer.name if mailer is not None else "esmtp"
    relay = f"{host}. [{address}]"
    key = (host.lower(), address, port)
    client = _reused(cache, key, verbose) if cache is not None else None
    fresh = client is None
    if client is None:
        client = TranscribedSMTP(
            local_hostname=settings.helo_name, timeout=settings.connect_timeout
        )
        if verbose is not None:
            client.transcript, client.shown_host = verbose.transcript, verbose.host
            named_port = port if mailer_port(mailer, 0) else None
            verbose.say(connecting(verbose.host, mailer_name, named_port))
    elif verbose is not None:
        verbose.say(using_cached(client, verbose.host, mailer_name))
    reusable = False
    try:
        if fresh:
            _open(client, host, address, port, settings)
        elif client.sock is not None:
            client.sock.settimeout(settings.command_timeout)
        reusable = _transaction(
            client, message, state, host, relay, settings, mailer, mailer_name, ret, envid
        )
    except smtplib.SMTPServerDisconnected as err:
        raise _HostFailed(f"Deferred: Connection reset by {host}. ({err})") from None
    except (OSError, smtplib.SMTPException) as err:
        if isinstance(err, _DataLost | _HostFailed):
            raise
        raise _HostFailed(f"Deferred: {host}.: {err}") from None
    finally:
        _keep_or_close(client, cache, key, reusable)


class _Verbose:
    """Where -v lines go for one connection, and the names its lines use."""

    __slots__ = ("host", "transcript", "who")

    def __init__(self, transcript: Transcript, who: str, host: str) -> None:
        self.transcript, self.who, self.host = transcript, who, host

    def say(self, text: str) -> None:
        self.transcript(f"{self.who}... {text}")


def _shown_host(host: str, destination: str) -> str:
    """The host as sendmail's -v lines name it: in brackets when $h gave it so."""
    bracketed = f"[{host}]"
    return bracketed if bracketed.lower() in destination.lower() else host


def _open(
    client: smtplib.SMTP, host: str, address: str, port: int, settings: RemoteSettings
) -> None:
    """Connect, greet (EHLO, else HELO), STARTTLS when offered, AUTH when we have
    credentials for the host; raises _HostFailed when this host will not do."""
    try:
        code, greeting = client.connect(address, port)
    except ConnectionRefusedError:
        refused = f"Deferred: Connection refused by {host}."
        raise _HostFailed(refused, errno=errno.ECONNREFUSED) from None
    except TimeoutError:
        timed_out = f"Deferred: Connection timed out with {host}."
        raise _HostFailed(timed_out, errno=errno.ETIMEDOUT) from None
    except (OSError, smtplib.SMTPException) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        code = getattr(err, "errno", 0) or 0
        raise _HostFailed(f"Deferred: {host}.: {reason}", errno=code) from None
    if code != 220:
        raise _HostFailed(f"Deferred: {code} {_reply_text(greeting)}", "4.0.0")
    if client.sock is not None:
        client.sock.settimeout(settings.command_timeout)
        # our writes are whole commands or large blocks: Nagle would only add delay
        client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _hello(client, host)
    if settings.starttls and client.has_extn("starttls"):
        context = settings.tls_context or _opportunistic_context()
        # smtplib takes the TLS server name from the host it was built with; we
        # connect to an address, so tell it the MX name the certificate must show
        client._host = host
        try:
            client.starttls(context=context)
        except (ssl.SSLError, OSError, ValueError, smtplib.SMTPException) as err:
            raise _HostFailed(f"Deferred: {host}.: STARTTLS failed: {err}", "4.7.0") from None
        _hello(client, host)
    _authenticate(client, host, address, settings)


def _reused(
    cache: ConnectionCache, key: Key, verbose: _Verbose | None = None
) -> smtplib.SMTP | None:
    """A cached connection to `key` that answers RSET, or None (a dead one is closed)."""
    client = cache.take(key)
    if client is None:
        return None
    if isinstance(client, TranscribedSMTP):  # this run's -v output, or none
        client.transcript = verbose.transcript if verbose is not None else None
    try:
        code, _ = _command(client, "RSET")
    except (OSError, smtplib.SMTPException):
        code = 0
    if code != 250:
        quit_and_close(client)
        return None
    return client


def _keep_or_close(
    client: smtplib.SMTP, cache: ConnectionCache | None, key: Key, reusable: bool
) -> None:
    """After a transaction: into the run's cache if it ended cleanly, else QUIT/close."""
    if reusable and cache is not None:
        cache.put(key, client)
    elif reusable:
        quit_and_close(client)
    else:
        try:
            client.close()
        except OSError:
            pass


def _opportunistic_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _hello(client: smtplib.SMTP, host: str) -> None:
    code, reply = client.ehlo()
    if code == 250:
        return
    code, reply = client.helo()
    if code != 250:
        raise _HostFailed(f"Deferred: {code} {_reply_text(reply)}", "4.0.0")


def _authenticate(client: smtplib.SMTP, host: str, address: str, settings: RemoteSettings) -> None:
    if settings.auth_lookup is None or not client.has_extn("auth"):
        return
    creds = settings.auth_lookup(host, address)
    if creds is None:
        return
    offered = client.esmtp_features.get("auth", "").upper().split()
    client.user, client.password = creds.user, creds.password
    for mechanism in ("PLAIN", "LOGIN"):
        if mechanism not in offered or mechanism not in creds.mechanisms:
            continue
        try:
            if mechanism == "PLAIN":
                token = f"{creds.authzid}\0{creds.user}\0{creds.password}"
                client.auth("PLAIN", lambda challenge=None, t=token: t)
            else:
                client.auth("LOGIN", client.auth_login)
            return
        except smtplib.SMTPAuthenticationError as err:
            # a credentials problem: keep the mail and let the admin fix authinfo
            text = _reply_text(err.smtp_error)
            raise _HostFailed(f"Deferred: AUTH failure: {err.smtp_code} {text}", "4.7.0") from None
    raise _HostFailed(f"Deferred: {host} offers no AUTH mechanism we use", "4.7.0")


def _mail_params(
    client: smtplib.SMTP,
    size: int | None,
    eight_bit_body: bool,
    ret: str | None,
    envid: str | None,
) -> str:
    params = []
    if size is not None and client.has_extn("size"):
        params.append(f"SIZE={size}")
    if eight_bit_body and client.has_extn("8bitmime"):
        params.append("BODY=8BITMIME")
    mail = "".join(" " + p for p in params)
    return mail + (dsn_mail_params(ret, envid) if client.has_extn("dsn") else "")


def _rcpt_params(client: smtplib.SMTP, recipient: RemoteRecipient) -> str:
    return dsn_rcpt_params(recipient) if client.has_extn("dsn") else ""


def dsn_mail_params(ret: str | None, envid: str | None) -> str:
    """` RET=... ENVID=...` for a MAIL command to a peer that offers DSN (SMTP or LMTP)."""
    params = []
    if ret:
        params.append(f"RET={ret.upper()}")
    if envid:
        params.append(f"ENVID={_xtext(envid)}")
    return "".join(" " + p for p in params)


def dsn_rcpt_params(recipient: RemoteRecipient) -> str:
    """` NOTIFY=... ORCPT=...` for an RCPT command to a peer that offers DSN."""
    params = []
    if recipient.notify:
        params.append("NOTIFY=" + ",".join(sorted(n.upper() for n in recipient.notify)))
    if recipient.orcpt:
        kind, _, value = recipient.orcpt.partition(";")
        params.append(f"ORCPT={kind};{_xtext(value)}" if value else f"ORCPT=rfc822;{_xtext(kind)}")
    return "".join(" " + p for p in params)


def _xtext(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        out.append(f"+{code:02X}" if code < 33 or code > 126 or ch in "+=" else ch)
    return "".join(out)


def _transaction(
    client: smtplib.SMTP,
    message: OutgoingMessage,
    state: _Transaction,
    host: str,
    relay: str,
    settings: RemoteSettings,
    mailer: MailerSpec | None,
    mailer_name: str,
    ret: str | None,
    envid: str | None,
) -> bool:
    flags = mailer.flags if mailer is not None else frozenset()
    outgoing = message
    eight_bit = message.has_8bit()
    if eight_bit and not client.has_extn("8bitmime") and "8" not in flags:
        converted = convert_to_7bit(message, settings.eight_bit_mode)
        if converted is None:
            for index in state.open_indices():
                state.results[index] = DeliveryResult.bounced(
                    state.recipients[index].address,
                    "Cannot send 8-bit data to 7-bit destination",
                    "5.6.3",
                    mailer=mailer_name,
                    relay=relay,
                )
            return False
        outgoing, eight_bit = converted, converted.has_8bit()
    open_indices = state.open_indices()
    size = _message_size(outgoing)
    limit = client.esmtp_features.get("size", "").strip()
    if size is not None and limit.isdigit() and 0 < int(limit) < size:
        # the peer announced it would refuse it: bounce now rather than send it in vain
        for index in open_indices:
            state.results[index] = DeliveryResult.bounced(
                state.recipients[index].address,
                f"Message is too large; {limit} bytes max",
                "5.3.4",
                mailer=mailer_name,
                relay=relay,
                remote_mta=f"dns; {host}",
                diagnostic_code=f"smtp; 552 5.3.4 Message is too large; {limit} bytes max",
            )
        _quit(client)
        return False
    sender = bare_sender(message.sender)
    mail_cmd = f"MAIL FROM:<{sender}>" + _mail_params(client, size, eight_bit, ret, envid)
    rcpt_cmds = [
        f"RCPT TO:<{state.recipients[i].address}>" + _rcpt_params(client, state.recipients[i])
        for i in open_indices
    ]
    pipelining = client.has_extn("pipelining")
    if pipelining:
        client.send(("\r\n".join([mail_cmd, *rcpt_cmds, "DATA"]) + "\r\n").encode("utf-8"))
        mail_code, mail_text = _get_reply(client)
        rcpt_replies = [_get_reply(client) for _ in rcpt_cmds]
        data_code, data_text = _get_reply(client)
    else:
        mail_code, mail_text = _command(client, mail_cmd)
        rcpt_replies = []
        if mail_code == 250:
            rcpt_replies = [_command(client, cmd) for cmd in rcpt_cmds]
        data_code, data_text = 0, ""
    if mail_code != 250:
        if 400 <= mail_code < 500 or mail_code < 200:
            raise _HostFailed(f"Deferred: {mail_code} {mail_text}", "4.0.0")
        for index in open_indices:
            state.results[index] = reply_result(
                state.recipients[index].address,
                mail_code,
                mail_text,
                host=host,
                relay=relay,
                mailer=mailer_name,
            )
        _quit(client)
        return False
    accepted: list[int] = []
    for index, (code, text) in zip(open_indices, rcpt_replies, strict=True):
        if code in (250, 251):
            accepted.append(index)
        else:
            state.results[index] = reply_result(
                state.recipients[index].address,
                code,
                text,
                host=host,
                relay=relay,
                mailer=mailer_name,
            )
    if not accepted:
        # a pipelined DATA that a server wrongly accepted is abandoned by closing
        if data_code != 354:
            _quit(client)
        return False
    if not pipelining:
        data_code, data_text = _command(client, "DATA")
    if data_code != 354:
        for index in accepted:
            code = data_code if data_code >= 400 else 451
            state.results[index] = reply_result(
                state.recipients[index].address,
                code,
                data_text,
                host=host,
                relay=relay,
                mailer=mailer_name,
            )
        _quit(client)
        return False
    if client.sock is not None:
        client.sock.settimeout(settings.data_timeout)
    try:
        for chunk in smtp_data_stream(outgoing):
            client.send(chunk)
        final_code, final_text = _get_reply(client)
    except (OSError, smtplib.SMTPServerDisconnected) as err:
        raise _DataLost(f"Deferred: Lost connection with {host} during data ({err})") from None
    for index in accepted:
        state.results[index] = reply_result(
            state.recipients[index].address,
            final_code,
            final_text,
            host=host,
            relay=relay,
            mailer=mailer_name,
        )
    return True  # a clean end: the connection may serve the next message


def _get_reply(client: smtplib.SMTP) -> tuple[int, str]:
    code, text = client.getreply()
    return code, _reply_text(text)


def _command(client: smtplib.SMTP, line: str) -> tuple[int, str]:
    client.send((line + "\r\n").encode("utf-8"))
    return _get_reply(client)


def _quit(client: smtplib.SMTP) -> None:
    try:
        client.send(b"QUIT\r\n")
        client.getreply()
    except (OSError, smtplib.SMTPException):
        pass


def _message_size(message: OutgoingMessage) -> int | None:
    body = message.body
    if isinstance(body, bytes):
        return len(message.headers) + 1 + len(body)
    if isinstance(body, Path):
        try:
            return len(message.headers) + 1 + os.stat(body).st_size
        except OSError:
            return None
    return None


# ---------------------------------------------------------------- data


def smtp_data_stream(message: OutgoingMessage, chunk_size: int = 65536) -> Iterator[bytes]:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, `.` at the end,
    in blocks of at least `chunk_size` bytes (the last one carries the final dot)."""
    partial = b""
    pending = bytearray()
    for chunk in message.iter_message(chunk_size):
        data = partial + chunk
        cut = data.rfind(b"\n") + 1
        partial = data[cut:]
        if cut:
            pending += _dot_stuff(data[:cut])
            if len(pending) >= chunk_size:
                yield bytes(pending)
                pending.clear()
    tail = partial.removesuffix(b"\r")
    if tail:
        pending += _dot_stuff(tail + b"\n")
    yield bytes(pending + b".\r\n")


def _dot_stuff(lines: bytes) -> bytes:
    lines = lines.replace(b"\r\n", b"\n")
    lines = re.sub(rb"(?m)^\.", b"..", lines)
    return lines.replace(b"\n", b"\r\n")


# ---------------------------------------------------------------- 8 bit to 7 bit


def convert_to_7bit(
    message: OutgoingMessage, eight_bit_mode: str = "pass8"
) -> OutgoingMessage | None:
    """The message re-encoded for a peer without 8BITMIME (sendmail's mime8to7): each
    8-bit leaf part becomes quoted-printable. A non-MIME message is sent as is with
    EightBitMode=pass8, labelled text/plain and converted with mimefy, and refused
    (None) with strict."""
    is_mime = message.header_value("MIME-Version") is not None
    mode = (eight_bit_mode or "pass8").lower()
    if not is_mime:
        if mode.startswith("s"):
            return None
        if mode.startswith("p"):
            return message
    data = message.headers + b"\n" + b"".join(message.iter_body())
    parsed = email.message_from_bytes(data, policy=email.policy.compat32)
    if not is_mime:
        parsed["MIME-Version"] = "1.0"
        if parsed.get("Content-Type") is None:
            parsed["Content-Type"] = "text/plain; charset=unknown-8bit"
    for part in parsed.walk():
        if part.is_multipart():
            continue
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if cte in ("base64", "quoted-printable"):
            continue
        raw = part.get_payload(decode=True)  # for 7bit/8bit/binary: the bytes as they are
        if not isinstance(raw, bytes) or not re.search(rb"[\x80-\xff]", raw):
            continue
        encoded = quopri.encodestring(raw.replace(b"\r\n", b"\n"))
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(encoded.decode("ascii"))
    out = io.BytesIO()
    email.generator.BytesGenerator(out, mangle_from_=False, policy=email.policy.compat32).flatten(
        parsed
    )
    return OutgoingMessage.from_bytes(
        message.sender, out.getvalue(), received_at=message.received_at
    )


# ---------------------------------------------------------------- many destinations


@record(frozen=True)
class RemoteTarget:
    """One routed recipient for an SMTP mailer: `$h` (the destination) and the address
    for RCPT TO, with its DSN parameters."""

    host: str
    recipient: RemoteRecipient


def deliver_by_destination(
    message: OutgoingMessage,
    targets: Sequence[RemoteTarget],
    settings: RemoteSettings,
    *,
    mailer: MailerSpec | None = None,
    ret: str | None = None,
    envid: str | None = None,
) -> list[DeliveryResult]:
    """deliver_remote once per destination (case-insensitive `$h`), one connection each;
    results in the order of `targets`."""
    groups: dict[str, list[int]] = {}
    for index, target in enumerate(targets):
        groups.setdefault(target.host.lower().rstrip("."), []).append(index)
    results: dict[int, DeliveryResult] = {}
    for indices in groups.values():
        host = targets[indices[0]].host
        batch = [targets[i].recipient for i in indices]
        sent = deliver_remote(message, batch, host, settings, mailer=mailer, ret=ret, envid=envid)
        results.update(zip(indices, sent, strict=True))
    return [results[i] for i in range(len(targets))]
