"""A queue run delivering over SMTP to a real server on 127.0.0.1 (aiosmtpd): one
transaction for the message's recipients, per-recipient replies written back (the
accepted one leaves the queue, the refused one bounces with the remote's words, the
deferred one stays), the headers as the esmtp mailer gets them."""

from dataclasses import dataclass

import pytest

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.remote import RemoteSettings
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.envelope import Envelope, Notify, Recipient
from pysendmail.errors import Location
from pysendmail.headers import MACRO_CHAR, Header
from pysendmail.queue.deliverers import RemoteDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from tests.integration.smtp_peer import running_peer


class Sink:
    def __init__(self):
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 <nobody@remote.test>: no such user here"
        if address.startswith("later@"):
            return "451 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued as 42"


@pytest.fixture
def sink():
    handler = Sink()
    with running_peer(handler) as port:
        yield handler, port


@dataclass
class Routed:
    mailer: str
    host: str
    user: str
    address: str = ""


def test_queue_run_over_smtp_to_loopback(tmp_path, sink):
    handler, port = sink
    store = QueueStore(tmp_path)
    qid = store.enqueue(
        Envelope(
            sender="<alice@example.com>",
            recipients=[
                Recipient("<bob@remote.test>"),
                Recipient("<nobody@remote.test>", orcpt="rfc822;nobody@remote.test"),
                Recipient("<later@remote.test>", notify=frozenset({Notify.FAILURE})),
            ],
            flags={"b"},
        ),
        [
            Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
            Header("From", "alice@example.com"),
            Header("Bcc", "secret@example.com"),
            Header("Subject", "over smtp"),
        ],
        b"hello over smtp\n",
        hostname="mail.example.com",
    )
    esmtp = MailerSpec(
        "esmtp",
        {"P": "[IPC]", "F": "mDFMuXa", "A": f"TCP $h {port}"},
        Location("test.cf", 1),
    )
    settings = RemoteSettings(
        resolver=Resolver(ResolverSettings(host_sources=("files",))),
        helo_name="mail.example.com",
        connect_timeout=10,
        command_timeout=10,
        data_timeout=10,
    )

    def route(rcpt, message):
        return [Routed("esmtp", "[127.0.0.1]", rcpt.bare_address, rcpt.bare_address)]

    runner = QueueRunner(
        store,
        route=route,
        deliverers={"esmtp": RemoteDeliverer(settings, esmtp)},
        hostname="mail.example.com",
    )
    outcome = runner.run_one(qid)
    assert outcome.sent == ["<bob@remote.test>"]
    assert outcome.bounced == ["<nobody@remote.test>"]
    assert outcome.deferred == ["<later@remote.test>"]
    assert len(handler.messages) == 1
    mail_from, rcpts, content = handler.messages[0]
    assert mail_from == "alice@example.com" and rcpts == ["bob@remote.test"]
    text = content.replace(b"\r\n", b"\n")
    assert b"Subject: over smtp\n" in text and text.endswith(b"\nhello over smtp\n")
    assert b"Bcc" not in text and b"Return-Path" not in text
    left = store.read(qid)
    assert [r.address for r in left.recipients] == ["<later@remote.test>"]
    assert left.status.startswith("Deferred") or "451" in left.status
    bounce = (tmp_path / f"df{outcome.dsn_ids[0]}").read_text()
    assert "Original-Recipient: rfc822;nobody@remote.test" in bounce
    assert "Remote-MTA: dns; " in bounce and "Status: 5.1.1" in bounce
    assert "no such user here" in bounce
