"""X-Authentication-Warning on mail received by SMTP, where sendmail 8.17 adds it.

With PrivacyOptions=authwarnings (office.cf sets it), sendmail adds exactly one such
header to SMTP mail: "<user> owned process doing -bs", when `-bs` is run by a user who
is neither root nor trusted (class t) and the sender is not that user's own local
address. Debian's sendmail 8.17.1.9 was run with office.cf to check the daemon's side:
a HELO name that is not the client's name, or no HELO at all, adds nothing (the "Host
X claimed to be Y" check exists only when sendmail is built with PICKY_HELO_CHECK).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from pysendmail.config.model import DaemonSpec, Overrides
from pysendmail.config.translate import translate
from pysendmail.daemons.server import service_from_config
from pysendmail.daemons.smtpd import SmtpServer, serve_stdio
from pysendmail.headers import Header

WARNING = "X-Authentication-Warning"


def _config(oracle_dir: Path, queue: Path, **options: str):
    queue.mkdir(exist_ok=True)
    cf = oracle_dir / "configs" / "office" / "office.cf"
    overrides = Overrides(
        options={
            "QueueDirectory": str(queue),
            "DeliveryMode": "queueonly",
            **options,
        }
    )
    return translate(cf, overrides, hostname="mail.example.com")


class Talk:
    """One line at a time, each answered before the next is sent."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def reply(self) -> str:
        lines = []
        while True:
            line = self.reader.readline().decode()
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return "\n".join(lines)

    def send(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()


def _mail(talk: Talk, sender: str, helo: str | None = "client.example.net") -> None:
    assert talk.reply().startswith("220 ")
    if helo is not None:
        assert talk.send(f"EHLO {helo}").startswith("250")
    assert talk.send(f"MAIL FROM:<{sender}>").startswith("250 ")
    assert talk.send("RCPT TO:<bob>").startswith("250 ")
    assert talk.send("DATA").startswith("354 ")
    assert talk.send("Subject: warnings\r\n\r\nbody\r\n.").startswith("250 2.0.0 ")
    assert talk.send("QUIT").startswith("221 ")


def _bs_session(service, sender: str, uid: int, user: str) -> None:
    ours, theirs = socket.socketpair()
    reader = ours.makefile("rb", buffering=0)
    writer = ours.makefile("wb", buffering=0)
    server = threading.Thread(target=serve_stdio, args=(service, reader, writer, user, uid))
    server.start()
    try:
        _mail(Talk(theirs), sender, helo=None)
    finally:
        server.join(30)
        for end in (reader, writer, ours, theirs):
            end.close()


def _warnings(service) -> list[str]:
    (qid,) = service.store.queue_ids()
    headers: list[Header] = service.store.read(qid).headers
    return [h.value for h in headers if h.name == WARNING]


def test_an_untrusted_user_running_bs_for_someone_else_gets_the_warning(oracle_dir, tmp_path):
    service = service_from_config(_config(oracle_dir, tmp_path / "mqueue"))
    _bs_session(service, "alice@example.com", uid=1000, user="mallory")
    assert _warnings(service) == ["mail.example.com: mallory owned process doing -bs"]
    (qid,) = service.store.queue_ids()
    names = [h.name for h in service.store.read(qid).headers]
    assert names.index(WARNING) == names.index("Received") + 1


@pytest.mark.parametrize(
    ("sender", "uid", "user"),
    [
        ("mallory", 1000, "mallory"),  # the user's own local address
        ("alice@example.com", 0, "root"),  # root
        ("alice@example.com", 1000, "root"),  # named root (uid checked first, then name)
    ],
)
def test_bs_without_a_reason_for_warning_adds_none(oracle_dir, tmp_path, sender, uid, user):
    service = service_from_config(_config(oracle_dir, tmp_path / "mqueue"))
    _bs_session(service, sender, uid=uid, user=user)
    assert _warnings(service) == []


def test_a_trusted_user_running_bs_gets_no_warning(oracle_dir, tmp_path):
    config = _config(oracle_dir, tmp_path / "mqueue")
    trusted = sorted(config.classes.get("t", frozenset()) - {"root"})
    if not trusted:
        pytest.skip("office.cf names no trusted user besides root")
    service = service_from_config(config)
    _bs_session(service, "alice@example.com", uid=1000, user=trusted[0])
    assert _warnings(service) == []


def test_without_authwarnings_bs_adds_no_warning(oracle_dir, tmp_path):
    config = _config(oracle_dir, tmp_path / "mqueue", PrivacyOptions="noexpn")
    service = service_from_config(config)
    _bs_session(service, "alice@example.com", uid=1000, user="mallory")
    assert _warnings(service) == []


@pytest.mark.parametrize("helo", ["wrong.example.net", None, "[127.0.0.1]"])
def test_the_daemon_adds_no_warning_for_a_strange_or_missing_helo(oracle_dir, tmp_path, helo):
    service = service_from_config(_config(oracle_dir, tmp_path / "mqueue"))
    spec = DaemonSpec(name="MTA", port=0, addr="127.0.0.1")
    with (
        SmtpServer(service, (spec,)) as server,
        socket.create_connection(("127.0.0.1", server.listeners[0].port), 30) as sock,
    ):
        _mail(Talk(sock), "alice@example.com", helo=helo)
    assert _warnings(service) == []
