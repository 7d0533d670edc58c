"""Helpers for the POP3 integration tests: a real daemon on 127.0.0.1 over a temporary
spool, mail put there by the real delivery code (pysendmail.maildrop), poplib clients."""

from __future__ import annotations

import poplib
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from pysendmail import maildrop
from pysendmail.daemons.pop3_maildrops import MAILDIR_LOCK_NAME, local_maildrops
from pysendmail.daemons.pop3d import Listener, Pop3Daemon, Pop3Service
from pysendmail.record import replace

PASSWORDS = {"alice": "alice pass", "bob": "bob-secret"}


def message(number: int, *, subject: str = "", body: str = "") -> bytes:
    subject = subject or f"message {number}"
    body = body or f"Body of message {number}.\n.a line starting with a dot\nFrom here\n"
    return (
        f"From: sender{number}@example.com\nTo: alice@example.com\nSubject: {subject}\n"
        f"Message-ID: <{number}@example.com>\n\n{body}"
    ).encode()


@dataclass
class Pop3Fixture:
    spool: Path
    mailbox_format: str
    daemon: Pop3Daemon
    addresses: list[tuple[str, int]]
    ca: trustme.CA | None = None
    delivered: dict[str, list[bytes]] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def mailbox(self, user: str = "alice") -> Path:
        return self.spool / user

    def deliver(self, user: str, data: bytes) -> None:
        """Deliver as local delivery does, through pysendmail.maildrop."""
        if self.mailbox_format == "maildir":
            maildrop.deliver_maildir(self.mailbox(user), [data])
        else:
            maildrop.append_mbox(self.mailbox(user), "sender@example.com", [data])
        self.delivered.setdefault(user, []).append(data)

    def as_stored(self, data: bytes) -> bytes:
        """What a reader of the mailbox gets back for `data`: mbox quotes `From ` lines."""
        if self.mailbox_format == "mbox":
            return re.sub(rb"(?m)^From ", b">From ", data)
        return data

    def client(self, *, port: int | None = None, timeout: float = 10) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", port or self.port, timeout=timeout)

    def login(self, user: str = "alice") -> poplib.POP3:
        client = self.client()
        client.user(user)
        client.pass_(PASSWORDS[user])
        return client

    def client_context(self) -> ssl.SSLContext:
        assert self.ca is not None
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def snapshot(self, user: str = "alice") -> dict[str, bytes]:
        """Every file of the user's mailbox, by name, with its bytes (not the session
        lock file, which the first session makes)."""
        path = self.mailbox(user)
        if path.is_dir():
            return {
                str(f.relative_to(path)): f.read_bytes()
                for f in sorted(path.rglob("*"))
                if f.is_file() and f.name != MAILDIR_LOCK_NAME
            }
        return {path.name: path.read_bytes()} if path.exists() else {}


def verify(user: str, password: str) -> bool:
    return PASSWORDS.get(user) == password


def make_service(spool: Path, mailbox_format: str = "mbox", **changes) -> Pop3Service:
    service = Pop3Service(
        hostname="pop.example.com",
        verify=verify,
        open_maildrop=local_maildrops(spool, mailbox_format, lock_timeout=2.0),
        allow_plaintext_auth=True,
        failed_login_delay=0.0,
    )
    return replace(service, **changes)


@contextmanager
def running_pop3(
    tmp_path: Path,
    mailbox_format: str = "mbox",
    *,
    tls: bool = False,
    pop3s: bool = False,
    **changes,
) -> Iterator[Pop3Fixture]:
    spool = tmp_path / "mail"
    spool.mkdir(exist_ok=True)
    ca = None
    listeners = [Listener("127.0.0.1", 0)]
    if tls or pop3s:
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost", common_name="localhost").configure_cert(context)
        changes.setdefault("tls_context", context)
    if pop3s:
        listeners.append(Listener("127.0.0.1", 0, implicit_tls=True))
    daemon = Pop3Daemon(make_service(spool, mailbox_format, **changes), listeners)
    addresses = daemon.start()
    try:
        yield Pop3Fixture(spool, mailbox_format, daemon, addresses, ca)
    finally:
        daemon.shutdown(drain_timeout=2.0)
