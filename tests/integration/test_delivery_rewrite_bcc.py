"""A blind copy's addresses never leave, as sendmail 8.17 delivers them: a message that
came over SMTP with a To: or Cc: loses its Bcc: at delivery (EF_DELETE_BCC, qf flag
`b`; the real sendmail delivers such a message to its local mailer without the Bcc:
line), one with only a Bcc: keeps the header empty (`Bcc:`, putheader()). A real client
(smtplib) sends to the daemon on 127.0.0.1; a queue run from the office cf delivers to
the local mailer and over SMTP to a server on 127.0.0.1."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import compat32

from pysendmail.queue import service
from pysendmail.routing import Router
from tests.integration.smtp_support import running_smtp
from tests.integration.test_delivery_rewrite_smtp import _users, office_copy, sink  # noqa: F401

WITH_TO = """From: alice@mail.example.com
To: bob@mail.example.com
Bcc: secret@mt.example.com, hidden@mt.example.com
Subject: with to

body
"""
BCC_ONLY = """From: alice@mail.example.com
Bcc: secret@mt.example.com
Subject: bcc only

body
"""


def test_bcc_never_leaves_a_message_received_over_smtp(oracle_dir, tmp_path, sink):  # noqa: F811
    handler, port = sink
    config = office_copy(oracle_dir, tmp_path, port, local_rules=False)
    with running_smtp(oracle_dir, tmp_path) as smtp:
        with smtp.client() as client:
            client.sendmail("alice@mail.example.com", ["bob@mail.example.com"], WITH_TO)
            client.sendmail("alice@mail.example.com", ["secret@mt.example.com"], BCC_ONLY)
        flags = {smtp.store.read(qid).has_flag("b") for qid in smtp.queued()}
        assert flags == {True, False}
    runner = service.runner_for_config(config, router=Router(config, users=_users))
    summary = runner.run()
    assert sum(len(o.sent) for o in summary.outcomes) == 2
    box = (tmp_path / "configs" / "office" / "mailboxes" / "bob").read_text()
    assert "Subject: with to\n" in box and "Bcc" not in box and "secret" not in box
    [(_mail_from, rcpts, content)] = handler.messages
    assert rcpts == ["secret@mt.example.com"]
    sent = message_from_bytes(content, policy=compat32)
    assert sent["Subject"] == "bcc only"
    head = content.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n")
    assert [line for line in head if line.lower().startswith(b"bcc")] == [b"Bcc:"]
