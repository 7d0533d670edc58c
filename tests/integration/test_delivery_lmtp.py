"""Mailers with F=z speak LMTP: to a real server over TCP on 127.0.0.1 and over a
Unix socket (P=[IPC], A=TCP $h port / A=FILE path), and to a program over its standard
input and output (P=/path). One transaction for the message's recipients; after the
final dot each recipient gets its own reply, and the queue runner writes each back on
its own: delivered ones leave the queue, 452 stays, 550 (at RCPT or after the dot)
bounces."""

from __future__ import annotations

import io
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.lmtp import LmtpSettings
from pysendmail.delivery.prog import ProgramSettings
from pysendmail.envelope import Envelope, Notify, Recipient, Ret
from pysendmail.errors import Location
from pysendmail.headers import Header
from pysendmail.queue import service
from pysendmail.queue.deliverers import LmtpDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from tests.delivery_support import make_config
from tests.integration import lmtp_server

SERVER = Path(lmtp_server.__file__)
RECIPIENTS = ["<ann@lmtp.test>", "<full@lmtp.test>", "<gone@lmtp.test>", "<nobody@lmtp.test>"]


@dataclass
class Routed:
    mailer: str
    host: str
    user: str
    address: str = ""


def _enqueue(store: QueueStore) -> str:
    store.queue_dir.mkdir(exist_ok=True)
    return store.enqueue(
        Envelope(sender="<alice@example.com>", recipients=[Recipient(r) for r in RECIPIENTS]),
        [Header("From", "alice@example.com"), Header("Subject", "over lmtp")],
        b"hello over lmtp\n.leading dot\n",
        hostname="mail.example.com",
    )


def _runner(store: QueueStore, mailer: MailerSpec, host: str = "") -> QueueRunner:
    settings = LmtpSettings("mail.example.com", ProgramSettings(timeout=30), timeout=30)

    def route(rcpt, message):
        return [Routed(mailer.name, host, rcpt.bare_address, rcpt.bare_address)]

    return QueueRunner(
        store,
        route=route,
        deliverers={mailer.name: LmtpDeliverer(settings, mailer)},
        hostname="mail.example.com",
    )


def _check_per_recipient(store: QueueStore, qid: str, runner: QueueRunner, spool: Path) -> None:
    runner.verbose = io.StringIO()  # the -v transcript, shown when an assert fails
    outcome = runner.run_one(qid)
    assert outcome.sent == ["<ann@lmtp.test>"], runner.verbose.getvalue()
    assert outcome.deferred == ["<full@lmtp.test>"]
    assert sorted(outcome.bounced) == ["<gone@lmtp.test>", "<nobody@lmtp.test>"]
    delivered = [p for p in spool.iterdir() if p.name.startswith("ann.")]
    assert len(delivered) == 1
    text = delivered[0].read_bytes().replace(b"\r\n", b"\n")
    assert b"Subject: over lmtp\n" in text
    assert text.endswith(b"\n\nhello over lmtp\n.leading dot\n")
    left = store.read(qid)
    assert [r.address for r in left.recipients] == ["<full@lmtp.test>"]
    assert "452 4.2.2" in left.status
    bounce = (store.queue_dir / f"df{outcome.dsn_ids[0]}").read_text()
    assert "Final-Recipient: RFC822; gone@lmtp.test" in bounce
    assert "550 5.2.1" in bounce and "550 5.1.1" in bounce
    assert (spool / "connections").read_text().count("session") == 1


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def tcp_server(spool: Path) -> Iterator[int]:
    server = lmtp_server.TcpLmtpServer(("127.0.0.1", 0), lmtp_server.make_handler(spool))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_lmtp_over_tcp_gives_each_recipient_its_own_reply(tmp_path, spool, tcp_server):
    store = QueueStore(tmp_path / "mqueue")
    qid = _enqueue(store)
    mailer = MailerSpec(
        "lmtp",
        {"P": "[IPC]", "F": "lsDFMnqXz", "T": "DNS/RFC822/LMTP", "A": f"TCP $h {tcp_server}"},
        Location("test.cf", 1),
    )
    _check_per_recipient(store, qid, _runner(store, mailer, "[127.0.0.1]"), spool)
    bounces = [p.read_text() for p in store.queue_dir.iterdir() if p.name.startswith("df")]
    assert any("Diagnostic-Code: LMTP; 550 5.2.1" in text for text in bounces)


def test_lmtp_over_a_unix_socket(tmp_path, spool):
    path = tmp_path / "lmtp.sock"
    server = lmtp_server.UnixLmtpServer(str(path), lmtp_server.make_handler(spool))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store = QueueStore(tmp_path / "mqueue")
        qid = _enqueue(store)
        mailer = MailerSpec(
            "lmtp",
            {"P": "[IPC]", "F": "lsDFMnqXz", "A": f"FILE {path}"},
            Location("test.cf", 1),
        )
        _check_per_recipient(store, qid, _runner(store, mailer), spool)
    finally:
        server.shutdown()
        server.server_close()


def test_lmtp_to_a_program_over_its_stdin_and_stdout(tmp_path, spool):
    store = QueueStore(tmp_path / "mqueue")
    qid = _enqueue(store)
    mailer = MailerSpec(
        "cyrus",
        {"P": sys.executable, "F": "lsDFMnqSXz", "A": f"{sys.executable} {SERVER} --stdio {spool}"},
        Location("test.cf", 1),
    )
    runner = _runner(store, mailer)
    runner.deliverers = {"cyrus": LmtpDeliverer(runner.deliverers["cyrus"].settings, mailer,
                                                local=True)}  # fmt: skip
    _check_per_recipient(store, qid, runner, spool)


def test_lmtp_server_gone_defers_everyone(tmp_path, spool, tcp_server):
    store = QueueStore(tmp_path / "mqueue")
    qid = _enqueue(store)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    mailer = MailerSpec(
        "lmtp", {"P": "[IPC]", "F": "lsDFMnqXz", "A": f"TCP $h {closed}"}, Location("t.cf", 1)
    )
    outcome = _runner(store, mailer, "[127.0.0.1]").run_one(qid)
    assert sorted(outcome.deferred) == sorted(RECIPIENTS) and not outcome.sent
    assert len(store.read(qid).recipients) == 4


def test_config_with_an_lmtp_local_mailer_delivers_by_lmtp(tmp_path, spool):
    """deliverers_for_config: a local mailer with F=z that is not mail.local is LMTP."""
    local = MailerSpec(
        "local",
        {
            "P": sys.executable,
            "F": "lsDFMAw5:/|@qSPfhnz9",
            "T": "DNS/RFC822/LMTP",
            "A": f"{sys.executable} {SERVER} --stdio {spool}",
        },
        Location("test.cf", 1),
    )
    config = make_config(mailers={"local": local})
    found = service.deliverers_for_config(config)
    assert isinstance(found["local"], LmtpDeliverer)
    mail_local = MailerSpec(
        "local",
        {"P": "/usr/lib/sm.bin/mail.local", "F": "lsDFMAw5:/|@qSPfhnz9", "A": "mail.local -l"},
        Location("test.cf", 1),
    )
    builtin = service.deliverers_for_config(make_config(mailers={"local": mail_local}))
    assert not isinstance(builtin["local"], LmtpDeliverer)


def test_dsn_parameters_of_the_queue_reach_an_lmtp_server_that_offers_dsn(
    tmp_path, spool, tcp_server
):
    store = QueueStore(tmp_path / "mqueue")
    store.queue_dir.mkdir()
    qid = store.enqueue(
        Envelope(
            sender="<alice@example.com>",
            recipients=[
                Recipient(
                    "<ann@lmtp.test>",
                    notify=frozenset({Notify.SUCCESS, Notify.FAILURE}),
                    orcpt="rfc822;ann+x@lmtp.test",
                )
            ],
            ret=Ret.HDRS,
            envid="env 1",
        ),
        [Header("Subject", "dsn over lmtp")],
        b"body\n",
        hostname="mail.example.com",
    )
    mailer = MailerSpec(
        "lmtp", {"P": "[IPC]", "F": "lsDFMnqXz", "A": f"TCP $h {tcp_server}"}, Location("t", 1)
    )
    outcome = _runner(store, mailer, "[127.0.0.1]").run_one(qid)
    assert outcome.sent == ["<ann@lmtp.test>"]
    commands = (spool / "commands").read_text().splitlines()
    assert commands == [
        "MAIL FROM:<alice@example.com> RET=HDRS ENVID=env+201",
        "RCPT TO:<ann@lmtp.test> NOTIFY=FAILURE,SUCCESS ORCPT=rfc822;ann+2Bx@lmtp.test",
    ]
