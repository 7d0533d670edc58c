"""The real sendmail 8.17 and pysendmail deliver the same queued message through the
office cf's local mailer (the fixture's `deliver` program) with the same headers: the
envelope sender and the sender headers through EnvFromL/HdrFromL (genericstable,
masquerading), the recipient headers through HdrToL (local names alone), the user's
Return-Path:, Content-Length: and Full-Name: dropped. The genericstable is made into
the hash map both read by sendmail's own makemap. sendmail runs in its own network and
UTS namespaces, as tests/integration/test_queue_sendmail_interop.py runs it."""

from __future__ import annotations

import os
import subprocess

from pysendmail.config.translate import translate
from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import MACRO_CHAR, Header
from pysendmail.queue import service
from pysendmail.queue.store import QueueStore
from pysendmail.record import replace
from pysendmail.routing import LocalUser, Router
from tests.integration.test_queue_sendmail_interop import _run_sendmail, sendmail_env  # noqa: F401

HEADERS = [
    Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
    Header("Received", "(from bob@localhost)\n\tby mail.example.com (pysendmail) id X"),
    Header("Date", "Mon, 2 Jan 2006 15:04:05 +0000"),
    Header("Message-Id", "<rewrite-interop@mail.example.com>"),
    Header("From", "Bob Builder <bob@mail.example.com>"),
    Header("Sender", "alice"),
    Header("Reply-To", "mallory@localhost (Mallory)"),
    Header("To", "alice, carol@mail.example.com"),
    Header("Cc", '"Team" <team@mail.example.com>, someone@remote.example.net'),
    Header("Return-Path", "<forged@example.net>"),
    Header("Content-Length", "5"),
    Header("Full-Name", "Bob B"),
    Header("Subject", "rewritten by both"),
]


def _queue(queue_dir, sender: str, headers: list[Header]) -> str:
    envelope = Envelope(
        sender=sender,
        recipients=[Recipient("alice")],
        macros={"_": "bob@localhost"},
        flags={"b", "s"},
    )
    store = QueueStore(queue_dir)
    return store.enqueue(envelope, headers, b"same for both\n", hostname="mail.example.com")


def _users(name: str) -> LocalUser | None:
    return LocalUser(name, os.getuid(), os.getgid(), "/nonexistent") if name == "alice" else None


def deliver_both(binary, base, sender: str, headers: list[Header]) -> tuple[str, str]:
    """The mailbox sendmail's `-qf` writes for alice, and the one pysendmail's run writes."""
    office = base / "configs" / "office"
    makemap = binary.parent.parent.parent / "sbin" / "makemap"
    for table in ("genericstable", "virtusertable", "mailertable", "access"):
        with open(office / table, "rb") as source:
            argv = [str(makemap), "-C", str(office / "office.cf"), "hash", str(office / table)]
            subprocess.run(argv, stdin=source, check=True)
    _queue(base / "mqueue", sender, headers)
    run = _run_sendmail(binary, base, "-qf")  # in the foreground: delivered when it exits
    assert run.returncode == 0, run.stdout + run.stderr
    theirs = (office / "mailboxes" / "alice").read_text()
    (office / "mailboxes" / "alice").unlink()

    queue_dir = base / "ours"
    queue_dir.mkdir(mode=0o700)
    qid = _queue(queue_dir, sender, headers)
    config = translate(office / "office.cf", hostname="mail.example.com")
    config = replace(config, options={**config.options, "QueueDirectory": str(queue_dir)})
    runner = service.runner_for_config(config, router=Router(config, users=_users))
    assert runner.run_one(qid).sent == ["alice"]
    return (office / "mailboxes" / "alice").read_text(), theirs


def test_sendmail_and_pysendmail_give_the_local_mailer_the_same_headers(sendmail_env):  # noqa: F811
    binary, base = sendmail_env
    ours, theirs = deliver_both(binary, base, "bob@mail.example.com", HEADERS)
    assert ours == theirs
    assert "From: Bob Builder <robert@example.com>\n" in ours  # genericstable
    assert "Return-Path: <robert@example.com>\n" in ours  # masquerade_envelope
    assert "Sender: alice\n" in ours  # the local mailer leaves local names alone


def test_mail_from_a_mailer_with_f_c_gets_the_senders_domain(sendmail_env):  # noqa: F811
    """F=C on the esmtp mailer: header addresses without a domain in mail from a sender
    that esmtp takes are given the sender's domain (sendmail's RF_ADDDOMAIN)."""
    binary, base = sendmail_env
    cf = base / "configs" / "office" / "office.cf"
    cf.write_text(
        cf.read_text().replace("Mesmtp,\t\tP=[IPC], F=mDFMuXa,", "Mesmtp,\t\tP=[IPC], F=mDFMuXaC,")
    )
    headers = [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header("Date", "Mon, 2 Jan 2006 15:04:05 +0000"),
        Header("From", "Joe <joe>"),
        Header("To", "alice, bob@mail.example.com, carol (Carol)"),
        Header("Subject", "from afar"),
    ]
    ours, theirs = deliver_both(binary, base, "joe@remote.example.net", headers)
    assert ours == theirs
    assert "From: Joe <joe@remote.example.net>\n" in ours
    # the changed list is written as commaize() writes it, folded before column 79
    assert (
        "To: alice@remote.example.net, bob@mail.example.com,\n"
        "        carol@remote.example.net (Carol)\n"
    ) in ours


def test_address_lists_are_written_again_as_sendmail_writes_them(sendmail_env):  # noqa: F811
    """commaize(): `a,b` gets its blank, a folded list is folded again before column 79,
    groups and `undisclosed-recipients:;` stay as they are."""
    binary, base = sendmail_env
    cc = "c1@x.example, c2@x.example, c3@x.example,\n c4@x.example, c5@x.example, "
    cc += "c6@x.example, c7@x.example, c8@x.example"
    headers = [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header("Date", "Mon, 2 Jan 2006 15:04:05 +0000"),
        Header("From", "bob@mail.example.com"),
        Header("To", "a@x.example,b@y.example"),
        Header("Cc", cc),
        Header("Resent-To", "undisclosed-recipients:;"),
        Header("Apparently-To", "friends: a@x.example, b@y.example;, dave"),
        Header("Subject", "lists"),
    ]
    ours, theirs = deliver_both(binary, base, "bob@mail.example.com", headers)
    assert ours == theirs
    assert "To: a@x.example, b@y.example\n" in ours
    assert "c5@x.example,\n        c6@x.example" in ours


def test_an_old_style_message_has_its_blank_separated_list_split(sendmail_env):  # noqa: F811
    binary, base = sendmail_env
    headers = [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header("Date", "Mon, 2 Jan 2006 15:04:05 +0000"),
        Header("From", "bob@mail.example.com"),
        Header("To", "alice carol"),
        Header("Subject", "old style"),
    ]
    ours, theirs = deliver_both(binary, base, "bob@mail.example.com", headers)
    assert ours == theirs
    assert "To: alice, carol\n" in ours
