"""queue.deliverers.outgoing(): the copy one mailer gets from a queued message, with the
mailer's rewriting: `$g` (MAIL FROM, Return-Path) rewritten, `$f` as queued, the header
addresses rewritten, the queue file untouched."""

from __future__ import annotations

from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import MACRO_CHAR, Header
from pysendmail.queue.deliverers import outgoing
from pysendmail.queue.runner import QueuedMessage
from pysendmail.queue.store import QueueStore


def masquerade(address: str, sender: bool, header: bool) -> str:
    """A stand-in for a mailer's rules: local names to example.com."""
    return address if "@" in address else address.replace("bob", "bob@example.com")


def test_the_sender_and_headers_are_rewritten_and_dollar_f_is_not(tmp_path):
    store = QueueStore(tmp_path)
    headers = [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header("From", "Bob <bob>"),
        Header("Subject", "s"),
    ]
    qid = store.enqueue(
        Envelope(sender="bob", recipients=[Recipient("carol")]),
        headers,
        b"body\n",
        hostname="mail.example.com",
    )
    queue_file = store.read(qid)
    message = QueuedMessage(qid, queue_file, tmp_path / f"df{qid}")
    out = outgoing(message, "lsDFMPn", masquerade)
    assert out.sender == "bob@example.com"
    assert out.from_macro() == "bob"
    expected = b"Return-Path: <bob@example.com>\nFrom: Bob <bob@example.com>\nSubject: s\n"
    assert out.headers == expected
    assert store.read(qid).headers[1].value == "Bob <bob>"
    plain = outgoing(message, "lsDFMPn")
    assert plain.sender == "bob" and b"From: Bob <bob>\n" in plain.headers
