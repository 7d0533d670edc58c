"""A running pysendmail SMTP daemon on 127.0.0.1 (port chosen by the OS) for tests.

The service is the office fixture's policy (tests/unit/smtp_office.py) with a real queue
directory in tmp_path; TLS certificates come from trustme.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from pysendmail.config.model import DaemonSpec
from pysendmail.daemons.smtpd import SmtpServer, SmtpService
from pysendmail.daemons.tls import server_context
from pysendmail.queue.store import QueueStore
from tests.unit.smtp_office import HOSTNAME, office_hosts, office_policy, office_settings

PASSWORDS = {"alice": "wonderland-42"}
# office.cf's SmtpGreetingMessage
OFFICE_GREETING = (
    "$j Sendmail $v/$Z; $b; (No UCE/UBE) "
    "$?{client_addr}logging access from: ${client_name}(${client_resolve})-$_$."
)


@dataclass
class RunningSmtp:
    server: SmtpServer
    store: QueueStore
    ca: trustme.CA | None = None
    etrn_nodes: list[str] = field(default_factory=list)

    def port(self, index: int = 0) -> int:
        return self.server.listeners[index].port

    def client(self, index: int = 0, source: str = "127.0.0.1") -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port(index), timeout=30, source_address=(source, 0))

    def raw(self, index: int = 0, source: str = "127.0.0.1") -> RawClient:
        return RawClient(self.port(index), source)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        assert self.ca is not None
        self.ca.configure_trust(context)
        return context

    def queued(self) -> list[str]:
        return sorted(self.store.queue_ids())

    def body(self, qid: str) -> bytes:
        with self.store.open_body(qid) as handle:
            return handle.read()


class RawClient:
    """A plain socket speaking SMTP by hand, for the cases smtplib will not send."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=30, source_address=(source, 0)
        )
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """One whole reply (all its lines)."""
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text + "\r\n")
            if len(text) < 4 or text[3] != "-":
                return "".join(lines)

    def command(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def rest(self) -> bytes:
        """Everything until the server closes."""
        data = self.buffer
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        self.sock.close()


def make_service(
    oracle_dir: Path, queue_dir: Path, *, tls: trustme.CA | None = None, **overrides: object
) -> SmtpService:
    queue_dir.mkdir(parents=True, exist_ok=True)
    context = None
    mechanisms: tuple[str, ...] = ()
    if tls is not None:
        cert = tls.issue_cert(HOSTNAME, "127.0.0.1")
        cert_file = queue_dir.parent / "server.pem"
        key_file = queue_dir.parent / "server.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        context = server_context(str(cert_file), str(key_file))
        mechanisms = ("PLAIN", "LOGIN")
    settings_overrides = overrides.pop("settings", {})
    policy = office_policy(oracle_dir)
    policy.authenticator = lambda user, password: PASSWORDS.get(user) == password
    service = SmtpService(
        settings=office_settings(
            oracle_dir,
            auth_mechanisms=mechanisms,
            chunking=True,
            smtputf8=True,
            **settings_overrides,
        ),
        policy=policy,
        store=QueueStore(queue_dir),
        hosts=office_hosts(oracle_dir),
        macros={"v": "8.17.1.9", "Z": "8.17.1.9/pysendmail"},
        greeting_template=OFFICE_GREETING,
        tls_context=context,
        **overrides,  # type: ignore[arg-type]
    )
    return service


@contextlib.contextmanager
def running_smtp(
    oracle_dir: Path,
    tmp_path: Path,
    *,
    tls: bool = False,
    daemons: tuple[DaemonSpec, ...] | None = None,
    **overrides: object,
) -> Iterator[RunningSmtp]:
    ca = trustme.CA() if tls else None
    etrn_nodes: list[str] = []
    overrides.setdefault("etrn", etrn_nodes.append)
    service = make_service(oracle_dir, tmp_path / "mqueue", tls=ca, **overrides)
    specs = daemons or (DaemonSpec(name="MTA", port=0, addr="127.0.0.1"),)
    server = SmtpServer(service, specs).start()
    try:
        yield RunningSmtp(server, service.store, ca, etrn_nodes)
    finally:
        server.stop(timeout=5.0)
