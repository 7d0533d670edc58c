"""Glue between a queued message and the mailers of `pysendmail.delivery`.

The runner hands each mailer a `QueuedMessage` and the deliveries routed to it; the
adapters here turn the queued message into the `OutgoingMessage` that mailer expects:
the qf headers rendered for that mailer's flags (`H?P?Return-Path`, `?D?`, `?F?`,
`?M?`, `?x?Full-Name` ...), `$g` set to the envelope sender, Bcc removed when the qf has
flag `b`, and the body streamed from the df. They return one DeliveryResult per
delivery, in order, as the runner's Deliverer protocol asks.

A deliverer's `rewrite` (set by queue/service.py from rewriting.MailerAddresses) gives
its mailer the envelope sender and the header addresses through the mailer's rulesets
(S=, R=, genericstable, masquerading); without it the message goes out as queued.

A delivery is any object with `mailer` (routing.Delivery): the local adapter takes the
user from `user`, the prog adapter the command and the file adapter the path from
`user` too (`$u` of `$#prog $:command`), both with `controlling_user` when set.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO, Any

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.connection_cache import ConnectionCache
from pysendmail.delivery.dsn import bare
from pysendmail.delivery.file import deliver_file
from pysendmail.delivery.lmtp import LmtpSettings, LmtpTarget, deliver_lmtp
from pysendmail.delivery.local import LocalRecipient, LocalSettings, deliver_local, lookup_user
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.prog import ProgramSettings, ProgramTarget, deliver_prog, run_mailer
from pysendmail.delivery.remote import RemoteRecipient, RemoteSettings, deliver_remote
from pysendmail.delivery.result import DeliveryResult
from pysendmail.delivery.rewrite import AddressRewrite, rewrite_headers
from pysendmail.delivery.user_writers import UserWriters
from pysendmail.headers import render

# The flags of Debian's stock local mailer (mail.local), used when no M line is given.
DEFAULT_LOCAL_FLAGS = "lsDFMAw5:/|@qPSXfmnz9"
DEFAULT_PROG_FLAGS = "lsDFMoqeu9"
DEFAULT_FILE_FLAGS = "lsDFMPEouq9"
DEFAULT_SMTP_FLAGS = "mDFMuXa"


def outgoing(
    message: Any,
    mailer_flags: str,
    rewrite: AddressRewrite | None = None,
    *,
    line_limit: int = 0,
) -> OutgoingMessage:
    """The queued message as a mailer with `mailer_flags` gets it. With `rewrite` (the
    mailer's rulesets: rewriting.MailerAddresses.for_mailer), the envelope sender (`$g`)
    and the addresses of the sender and recipient headers are rewritten for it; the
    queue file itself is never changed."""
    queue_file = message.queue_file
    queued_sender = bare(queue_file.sender)
    sender = queued_sender
    header_list = queue_file.headers
    if rewrite is not None:
        if queued_sender:
            sender = rewrite(queued_sender, True, False) or queued_sender
        from_domain = getattr(rewrite, "from_domain", None)
        header_list = rewrite_headers(
            header_list,
            rewrite,
            line_limit=line_limit,
            from_domain=from_domain(queued_sender) if from_domain and queued_sender else None,
        )
    macros = {**queue_file.macros, "g": sender or "MAILER-DAEMON"}
    headers = render(header_list, mailer_flags, macros, remove_bcc=queue_file.has_flag("b"))
    return OutgoingMessage(
        sender=queue_file.sender if sender == queued_sender else sender,
        headers=headers,
        body=message.df_path,
        received_at=float(queue_file.queued_at),
        eight_bit=True if queue_file.has_flag("8") else None,
        original_sender=None if sender == queued_sender else queue_file.sender,
    )


def _outgoing_for(deliverer: Any, message: Any, flags: str) -> OutgoingMessage:
    """outgoing() with the deliverer's mailer rewriting and L= line limit."""
    mailer = getattr(deliverer, "mailer", None)
    limit = mailer.fields.get("L", "") if mailer is not None else ""
    return outgoing(
        message,
        flags,
        getattr(deliverer, "rewrite", None),
        line_limit=int(limit) if limit.isdigit() else 0,
    )


def _queued_address(message: Any, delivery: Any) -> str:
    """The recipient as its qf R line has it (what sendmail's -v lines name)."""
    origin = message.recipient_of(delivery) if hasattr(message, "recipient_of") else None
    return str(origin.address) if origin is not None else str(getattr(delivery, "address", ""))


def _recipient_of(message: Any, delivery: Any) -> str:
    return str(getattr(delivery, "recipient", None) or getattr(delivery, "address", ""))


class LocalDeliverer:
    """The `local` mailer: mail.local-style mailboxes, or the cf's local program."""

    rewrite: AddressRewrite | None = None  # the mailer's rulesets (service.py sets it)

    def __init__(self, settings: LocalSettings, mailer: MailerSpec | None = None) -> None:
        self.settings = settings
        self.mailer = mailer
        self._run = threading.local()  # this thread's queue run: its UserWriters

    def begin_run(self, verbose: IO[str] | None = None) -> None:
        """A queue run starts: as root, keep one writer child per user until it ends."""
        if os.geteuid() == 0:
            self._run.writers = UserWriters()

    def end_run(self) -> None:
        writers = getattr(self._run, "writers", None)
        self._run.writers = None
        if writers is not None:
            writers.close()

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        flags = self.mailer.fields.get("F", "") if self.mailer else DEFAULT_LOCAL_FLAGS
        out = _outgoing_for(self, message, flags)
        targets = [
            LocalRecipient(
                recipient=_recipient_of(message, d),
                user=str(getattr(d, "user", None) or getattr(d, "address", "")),
            )
            for d in deliveries
        ]
        writer = getattr(self._run, "writers", None)
        return deliver_local(out, targets, self.settings, mailer=self.mailer, writer=writer)


class ProgDeliverer:
    """The `prog` mailer: `|command` targets, run as their controlling user."""

    rewrite: AddressRewrite | None = None  # the mailer's rulesets (service.py sets it)

    def __init__(self, settings: ProgramSettings, mailer: MailerSpec | None = None) -> None:
        self.settings = settings
        self.mailer = mailer

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        flags = self.mailer.fields.get("F", "") if self.mailer else DEFAULT_PROG_FLAGS
        out = _outgoing_for(self, message, flags)
        return [
            deliver_prog(
                out,
                str(getattr(d, "user", None) or d.address),
                _recipient_of(message, d),
                getattr(d, "controlling_user", None),
                self.settings,
                mailer=self.mailer,
            )
            for d in deliveries
        ]


class FileDeliverer:
    """The `*file*` mailer: `/path` targets, appended as their controlling user."""

    rewrite: AddressRewrite | None = None  # the mailer's rulesets (service.py sets it)

    def __init__(self, settings: ProgramSettings, mailer: MailerSpec | None = None) -> None:
        self.settings = settings
        self.mailer = mailer  # a cf's own `M*file*` line (U=, /=), if it has one

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        flags = self.mailer.fields.get("F", "") if self.mailer else DEFAULT_FILE_FLAGS
        out = _outgoing_for(self, message, flags or DEFAULT_FILE_FLAGS)
        return [
            deliver_file(
                out,
                str(getattr(d, "user", None) or d.address),
                _recipient_of(message, d),
                getattr(d, "controlling_user", None),
                self.settings,
                mailer=self.mailer,
            )
            for d in deliveries
        ]


class RemoteDeliverer:
    """The SMTP mailers (`[IPC]`: smtp, esmtp, smtp8, dsmtp, relay): one transaction per
    destination host for all of this message's recipients routed there, with the DSN
    parameters (NOTIFY=, ORCPT=, RET=, ENVID=) the queue holds."""

    rewrite: AddressRewrite | None = None  # the mailer's rulesets (service.py sets it)

    def __init__(self, settings: RemoteSettings, mailer: MailerSpec | None = None) -> None:
        self.settings = settings
        self.mailer = mailer
        self._run = threading.local()  # this thread's queue run: its open connections

    def begin_run(self, verbose: IO[str] | None = None) -> None:
        """A queue run starts: keep connections open for the run's next messages; with
        -v (`verbose`) show each SMTP dialogue there, as sendmail does."""
        self._run.cache = ConnectionCache(
            self.settings.connection_cache_size, self.settings.connection_cache_timeout
        )
        self._run.verbose = verbose

    def end_run(self) -> None:
        cache = getattr(self._run, "cache", None)
        self._run.cache = None
        if cache is not None:
            cache.close()
        self._run.verbose = None

    @property
    def announces_connections(self) -> bool:
        """Whether this run's -v lines about connections (`Connecting to`, `Using cached
        ESMTP connection to`) come from here rather than from the runner."""
        return getattr(self._run, "verbose", None) is not None

    def _transcript(self) -> Callable[[str], None] | None:
        verbose = getattr(self._run, "verbose", None)
        if verbose is None:
            return None

        def write(line: str) -> None:
            verbose.write(line + "\n")
            verbose.flush()

        return write

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        flags = self.mailer.fields.get("F", "") if self.mailer else DEFAULT_SMTP_FLAGS
        out = _outgoing_for(self, message, flags)
        queue_file = message.queue_file
        ret = None
        if queue_file.has_flag("d"):
            ret = "HDRS" if queue_file.has_flag("n") else "FULL"
        by_host: dict[str, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            by_host.setdefault(str(getattr(delivery, "host", "")).lower(), []).append(index)
        results: list[DeliveryResult | None] = [None] * len(deliveries)
        for indexes in by_host.values():
            recipients = []
            for index in indexes:
                delivery = deliveries[index]
                origin = (
                    message.recipient_of(delivery) if hasattr(message, "recipient_of") else None
                )
                notify = origin.notify if origin is not None and "N" in origin.flags else None
                recipients.append(
                    RemoteRecipient(
                        address=bare(str(getattr(delivery, "user", "") or delivery.address)),
                        notify=frozenset(str(n) for n in notify) if notify else None,
                        orcpt=origin.orcpt if origin is not None else None,
                    )
                )
            destination = str(getattr(deliveries[indexes[0]], "host", ""))
            sent = deliver_remote(
                out,
                recipients,
                destination,
                self.settings,
                mailer=self.mailer,
                ret=ret,
                envid=queue_file.envid,
                cache=getattr(self._run, "cache", None),
                transcript=self._transcript(),
                transcript_who=",".join(_queued_address(message, deliveries[i]) for i in indexes),
            )
            for index, result in zip(indexes, sent, strict=True):
                results[index] = result
        return [r for r in results if r is not None]


class LmtpDeliverer:
    """A mailer with F=z: one LMTP transaction per destination (`$h`) for all of this
    message's recipients routed to it, each with the reply the server gave it."""

    rewrite: AddressRewrite | None = None  # the mailer's rulesets (service.py sets it)

    def __init__(self, settings: LmtpSettings, mailer: MailerSpec, *, local: bool = False) -> None:
        self.settings = settings
        self.mailer = mailer
        self.local = local  # the local mailer: `$u` is a user name, F=S may keep root

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        out = _outgoing_for(self, message, self.mailer.fields.get("F", ""))
        by_host: dict[str, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            by_host.setdefault(str(getattr(delivery, "host", "") or "").lower(), []).append(index)
        queue_file = message.queue_file
        ret = None
        if queue_file.has_flag("d"):
            ret = "HDRS" if queue_file.has_flag("n") else "FULL"
        results: dict[int, DeliveryResult] = {}
        for indexes in by_host.values():
            targets = [self._target(message, deliveries[i]) for i in indexes]
            sent = deliver_lmtp(
                out,
                targets,
                self.mailer,
                self.settings,
                allow_root=self.local,
                ret=ret,
                envid=queue_file.envid,
            )
            results.update(zip(indexes, sent, strict=True))
        return [results[i] for i in range(len(deliveries))]

    def _target(self, message: Any, delivery: Any) -> LmtpTarget:
        user = str(getattr(delivery, "user", None) or getattr(delivery, "address", ""))
        if self.local and "u" not in self.mailer.flags:
            user = user.lower()
        controlling = getattr(delivery, "controlling_user", None)
        if controlling is None and self.local:
            controlling = lookup_user(user.split("+", 1)[0])
        origin = message.recipient_of(delivery) if hasattr(message, "recipient_of") else None
        notify = origin.notify if origin is not None and "N" in origin.flags else None
        return LmtpTarget(
            recipient=_recipient_of(message, delivery),
            user=user if self.local else bare(user),
            host=str(getattr(delivery, "host", "") or ""),
            controlling_user=controlling,
            notify=frozenset(str(n) for n in notify) if notify else None,
            orcpt=origin.orcpt if origin is not None else None,
        )


class ProgramMailerDeliverer:
    """Any other mailer whose P= is a program (procmail, a site's own script): run as
    prog.py runs mailer programs (A= with `$h $u $f`, F=, E=, D=, U=, /=, W=), once per
    recipient, or once per destination host for all its recipients with F=m. F=S
    keeps root, as sendmail does; otherwise the recipient's controlling user or
    DefaultUser runs it."""

    rewrite: AddressRewrite | None = None  # the mailer's rulesets (service.py sets it)

    def __init__(self, settings: ProgramSettings, mailer: MailerSpec) -> None:
        self.settings = settings
        self.mailer = mailer

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        out = _outgoing_for(self, message, self.mailer.fields.get("F", ""))
        by_host: dict[str, list[int]] = {}
        for index, delivery in enumerate(deliveries):
            by_host.setdefault(str(getattr(delivery, "host", "") or "").lower(), []).append(index)
        results: dict[int, DeliveryResult] = {}
        for indexes in by_host.values():
            targets = [
                ProgramTarget(
                    recipient=_recipient_of(message, deliveries[i]),
                    user=str(getattr(deliveries[i], "user", None) or deliveries[i].address),
                    host=str(getattr(deliveries[i], "host", "") or ""),
                    controlling_user=getattr(deliveries[i], "controlling_user", None),
                )
                for i in indexes
            ]
            ran = run_mailer(out, targets, self.mailer, self.settings, allow_root=True)
            results.update(zip(indexes, ran, strict=True))
        return [results[i] for i in range(len(deliveries))]
