"""Delivery rewrites the sender and the header addresses for each mailer, as sendmail
8.17 does, from the office fixture's sendmail.cf: a queue run with the real router and
mailers delivers over SMTP to a server on 127.0.0.1 (aiosmtpd; the mailertable sends
mt.example.com to `smtp:[127.0.0.1]`, the smtp mailer's A= names the server's port) and
to the local mailer (the fixture's `deliver` program, which writes what it is given).

What the records of `sendmail -bt` (`/tryflags ES|HS|HR`, `/try smtp|local ADDRESS`)
show for this cf: the envelope sender and From:/Sender: through genericstable
(alice -> alice.smith@example.com, bob@mail.example.com -> robert@example.com) and
MASQUERADE_AS(example.com) with masquerade_envelope; recipient headers qualified with
$j for the SMTP mailers; the local mailer leaving local names alone.
"""

from __future__ import annotations

import os
import re
import shutil
from email import message_from_bytes
from email.policy import compat32

import pytest

from pysendmail.config.translate import translate
from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue import service
from pysendmail.record import replace
from pysendmail.routing import LocalUser, Router
from tests.integration.smtp_peer import running_peer

HOSTNAME = "mail.example.com"

HAND_WRITTEN = """
S1
Rwebmaster $*\t\t$: www $1\t\tlocal ruleset 1: webmaster writes as www
SHdrFromOffice
R$+\t\t\t$: $>HdrFromSMTP $1
R$* < @ example . com . > $*\t$@ $1 < @ mail . example . org . > $2\theaders only
"""


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"


@pytest.fixture
def sink():
    handler = Sink()
    with running_peer(handler) as port:
        yield handler, port


def _users(name: str) -> LocalUser | None:
    if name not in ("alice", "bob", "carol", "mallory"):
        return None
    return LocalUser(name, os.getuid(), os.getgid(), "/nonexistent")


def office_copy(oracle_dir, tmp_path, port: int, *, local_rules: bool) -> object:
    """The office fixture under tmp_path: its smtp mailer talks to `port`; without
    `local_rules` its LOCAL_RULE_3 line is dropped (every ruleset is then stock), with
    them it gets a hand-written ruleset 1 and the smtp mailer a header S= of its own."""
    office = tmp_path / "configs" / "office"
    shutil.copytree(oracle_dir / "configs" / "office", office)
    for path in office.rglob("*"):
        if path.is_file():
            path.write_bytes(
                path.read_bytes().replace(str(oracle_dir).encode(), str(tmp_path).encode())
            )
    (office / "bin" / "deliver").chmod(0o755)
    shutil.rmtree(office / "mailboxes", ignore_errors=True)
    (office / "mailboxes").mkdir()
    cf = office / "office.cf"
    text = cf.read_text()
    text = re.sub(r"(Msmtp,.*?A=TCP \$h)", rf"\1 {port}", text, count=1, flags=re.S)
    if local_rules:
        text = text.replace(
            "Msmtp,\t\tP=[IPC], F=mDFMuX, S=EnvFromSMTP/HdrFromSMTP",
            "Msmtp,\t\tP=[IPC], F=mDFMuX, S=EnvFromSMTP/HdrFromOffice",
        )
        text += HAND_WRITTEN
    else:
        text = re.sub(r"(?m)^R\$\* < @ old .*\n", "", text)
    cf.write_text(text)
    queue_dir = tmp_path / "mqueue"
    queue_dir.mkdir(mode=0o700)
    config = translate(cf, hostname=HOSTNAME)
    return replace(config, options={**config.options, "QueueDirectory": str(queue_dir)})


def queue_and_run(config, sender: str, recipients: list[str], headers: list[Header]):
    runner = service.runner_for_config(config, router=Router(config, users=_users))
    envelope = Envelope(sender=sender, recipients=[Recipient(r) for r in recipients])
    qid = runner.store.enqueue(envelope, headers, b"rewritten per mailer\n", hostname=HOSTNAME)
    outcome = runner.run_one(qid)
    return runner, qid, outcome


OFFICE_HEADERS = [
    Header("From", "Alice Smith <alice@mail.example.com>"),
    Header("Sender", "bob"),
    Header("To", "someone@mt.example.com, alice"),
    Header("Cc", '"Carol C." <carol>, mallory@localhost (Mallory)'),
    Header("Subject", "masquerading"),
]


def test_smtp_delivery_masquerades_and_qualifies_as_sendmail(oracle_dir, tmp_path, sink):
    handler, port = sink
    config = office_copy(oracle_dir, tmp_path, port, local_rules=False)
    assert config.routing_rules == "stock"
    _runner, qid, outcome = queue_and_run(
        config, "alice", ["someone@mt.example.com", "alice"], OFFICE_HEADERS
    )
    assert sorted(outcome.sent) == ["alice", "someone@mt.example.com"]
    [(mail_from, rcpts, content)] = handler.messages
    assert mail_from == "alice.smith@example.com"  # genericstable, masquerade_envelope
    assert rcpts == ["someone@mt.example.com"]
    sent = message_from_bytes(content, policy=compat32)
    assert sent["From"] == "Alice Smith <alice.smith@example.com>"
    assert sent["Sender"] == "robert@example.com"  # bob@mail.example.com in genericstable
    assert sent["To"] == "someone@mt.example.com, alice@mail.example.com"
    # recipient headers are only qualified with $j (no allmasquerade)
    assert sent["Cc"] == '"Carol C." <carol@mail.example.com>, mallory@mail.example.com (Mallory)'
    # the queued message is untouched
    assert not (tmp_path / "mqueue" / f"qf{qid}").exists()


def test_local_delivery_leaves_local_names_alone(oracle_dir, tmp_path, sink):
    _handler, port = sink
    config = office_copy(oracle_dir, tmp_path, port, local_rules=False)
    queue_and_run(config, "bob", ["alice"], OFFICE_HEADERS)
    box = (tmp_path / "configs" / "office" / "mailboxes" / "alice").read_text()
    headers = box.split("\n\n", 1)[0]
    # the local mailer's rulesets: local names as they are, qualified ones masqueraded
    assert "Sender: bob\n" in headers
    assert "To: someone@mt.example.com, alice\n" in headers
    assert 'Cc: "Carol C." <carol>, mallory@mail.example.com (Mallory)\n' in headers
    assert "From: Alice Smith <alice.smith@example.com>\n" in headers
    assert "Return-Path: <bob>\n" in headers  # EnvFromL: a local name stays as it is


def test_hand_written_ruleset_1_and_s_equals_rewrite_the_delivered_message(
    oracle_dir, tmp_path, sink
):
    handler, port = sink
    config = office_copy(oracle_dir, tmp_path, port, local_rules=True)
    assert config.routing_rules == "cf"
    headers = [
        Header("From", "Web Master <webmaster@mail.example.com>"),
        Header("Reply-To", "alice"),
        Header("To", "someone@mt.example.com"),
    ]
    queue_and_run(config, "webmaster", ["someone@mt.example.com"], headers)
    [(mail_from, _rcpts, content)] = handler.messages
    # ruleset 1 renames webmaster, EnvFromSMTP qualifies and masquerades the envelope
    assert mail_from == "www@example.com"
    sent = message_from_bytes(content, policy=compat32)
    # the header part of S= is the hand-written HdrFromOffice
    assert sent["From"] == "Web Master <www@mail.example.org>"
    assert sent["Reply-To"] == "alice.smith@mail.example.org"
    assert sent["To"] == "someone@mt.example.com"


def test_rules_that_cannot_finish_defer_the_smtp_delivery(oracle_dir, tmp_path, sink):
    """A map the rules need is unavailable (the genericstable is gone): sendmail's
    remotename() returns EX_TEMPFAIL and an SMTP mailer's delivery waits in the queue;
    the local mailer still gets the message."""
    handler, port = sink
    config = office_copy(oracle_dir, tmp_path, port, local_rules=True)
    for path in (tmp_path / "configs" / "office").glob("genericstable*"):
        path.unlink()
    _runner, qid, outcome = queue_and_run(
        config, "alice", ["someone@mt.example.com", "bob"], OFFICE_HEADERS
    )
    assert handler.messages == []
    assert outcome.deferred == ["someone@mt.example.com"]
    assert outcome.sent == ["bob"]
    assert (tmp_path / "mqueue" / f"qf{qid}").exists()
    assert (tmp_path / "configs" / "office" / "mailboxes" / "bob").exists()
