"""The stock rulesets' decisions (policy.py) over the office fixture's access db and tables.

Sessions run through the sans-IO session, so each case reads as the client sees it.
Clients 127.0.0.2-.5 are the fixture's: .2 is client.example.net (no relaying), .3 is
REJECTed, .4 gets ERROR:4.3.2:421, .5 is DISCARDed at connect.
"""

from __future__ import annotations

import pytest

from pysendmail.policy import AccessDb, address_keys, address_syntax_error, domain_keys
from pysendmail.protocol.replies import Reply
from pysendmail.protocol.smtp import ClientInfo, MessageComplete, SmtpSession
from tests.unit.smtp_office import office_client, office_policy, office_settings


def session_for(oracle_dir, addr: str, client: ClientInfo | None = None) -> SmtpSession:
    session = SmtpSession(
        office_policy(oracle_dir),
        office_settings(oracle_dir),
        client or office_client(oracle_dir, addr),
    )
    session.start()
    return session


def say(session: SmtpSession, line: str) -> str:
    out = session.feed(line.encode() + b"\r\n")
    return "".join(o.to_bytes().decode() for o in out if isinstance(o, Reply)).rstrip("\r\n")


@pytest.mark.parametrize(
    ("client", "sender", "expected"),
    [
        ("127.0.0.1", "<alice@example.com>", "250 2.1.0 <alice@example.com>... Sender ok"),
        ("127.0.0.1", "<>", "250 2.1.0 <>... Sender ok"),
        (
            "127.0.0.1",
            "<spammer@spam.example.net>",
            "550 5.7.1 <spammer@spam.example.net>... Access denied",
        ),
        (
            "127.0.0.1",
            "<other@spam.example.net>",
            "550 5.7.1 <other@spam.example.net>... Spam domain rejected",
        ),
        (
            "127.0.0.1",
            "<x@tempfail.example.net>",
            "451 4.7.1 <x@tempfail.example.net>... Try again later",
        ),
        ("127.0.0.1", "<x@okay.example.net>", "250 2.1.0 <x@okay.example.net>... Sender ok"),
        (
            "127.0.0.1",
            "<x@nowhere.example.invalid>",
            "553 5.1.8 <x@nowhere.example.invalid>... Domain of sender address "
            "x@nowhere.example.invalid does not exist",
        ),
        (
            "127.0.0.2",
            "<alice>",
            "553 5.5.4 <alice>... Domain name required for sender address alice",
        ),
        (
            "127.0.0.2",
            "<root@localhost>",
            "553 5.5.4 <root@localhost>... Real domain name required for sender address",
        ),
        ("127.0.0.1", "<root@localhost>", "250 2.1.0 <root@localhost>... Sender ok"),
        ("127.0.0.1", "<bob@>", "553 5.1.3 <bob@>... Hostname required"),
    ],
)
def test_mail_from_decisions(oracle_dir, client, sender, expected):
    session = session_for(oracle_dir, client)
    say(session, "EHLO client.example.net")
    assert say(session, f"MAIL FROM:{sender}") == expected


@pytest.mark.parametrize(
    ("client", "recipient", "expected"),
    [
        ("127.0.0.1", "<bob>", "250 2.1.5 <bob>... Recipient ok"),
        ("127.0.0.1", "<nosuchuser>", "550 5.1.1 <nosuchuser>... User unknown"),
        ("127.0.0.1", "<u@remote.example.net>", "250 2.1.5 <u@remote.example.net>... Recipient ok"),
        (
            "127.0.0.2",
            "<u@remote.example.net>",
            "550 5.7.1 <u@remote.example.net>... Relaying denied",
        ),
        (
            "127.0.0.2",
            "<u@relayed.example.net>",
            "250 2.1.5 <u@relayed.example.net>... Recipient ok",
        ),
        (
            "127.0.0.2",
            "<u@sub.partner.example.org>",
            "250 2.1.5 <u@sub.partner.example.org>... Recipient ok",
        ),
        ("127.0.0.2", "<u@relay.example.net>", "250 2.1.5 <u@relay.example.net>... Recipient ok"),
        ("127.0.0.2", "<u@mt.example.com>", "550 5.7.1 <u@mt.example.com>... Relaying denied"),
        ("127.0.0.2", "<bob@example.com>", "250 2.1.5 <bob@example.com>... Recipient ok"),
        (
            "127.0.0.2",
            "<u@blocked.example.org>",
            "550 5.2.1 <u@blocked.example.org>... Mailbox disabled for this recipient",
        ),
        (
            "127.0.0.1",
            "<baduser@mail.example.com>",
            "550 5.1.1 <baduser@mail.example.com>... Mailbox disabled",
        ),
        (
            "127.0.0.1",
            "<user@error.example.com>",
            "550 5.1.2 <user@error.example.com>... Host unknown",
        ),
        ("127.0.0.1", "<>", "553 5.0.0 <>... User address required"),
        ("127.0.0.1", "<a@@b>", "553 5.1.3 <a@@b>... Invalid route address"),
    ],
)
def test_rcpt_to_decisions(oracle_dir, client, recipient, expected):
    session = session_for(oracle_dir, client)
    say(session, "EHLO client.example.net")
    assert say(session, "MAIL FROM:<alice@example.com>").startswith("250 ")
    assert say(session, f"RCPT TO:{recipient}") == expected


def test_unresolved_client_is_told_why_it_may_not_relay(oracle_dir):
    client = ClientInfo(addr="127.0.0.9", name="[127.0.0.9]", resolve="FAIL")
    session = session_for(oracle_dir, "127.0.0.9", client)
    say(session, "EHLO x.example.net")
    say(session, "MAIL FROM:<alice@example.com>")
    assert say(session, "RCPT TO:<u@remote.example.net>") == (
        "550 5.7.1 <u@remote.example.net>... Relaying denied. IP name lookup failed [127.0.0.9]"
    )


def test_authenticated_client_may_relay(oracle_dir):
    session = session_for(oracle_dir, "127.0.0.2")
    session.view.authenticated = "alice"
    say(session, "EHLO x.example.net")
    say(session, "MAIL FROM:<alice@example.com>")
    assert say(session, "RCPT TO:<u@remote.example.net>").startswith("250 2.1.5")


def test_connect_reject_from_a_net(oracle_dir):
    client = ClientInfo(addr="10.1.2.3", name="[10.1.2.3]", resolve="FAIL")
    session = session_for(oracle_dir, "10.1.2.3", client)
    assert say(session, "MAIL FROM:<alice@example.com>") == "550 5.7.1 Access denied"


def test_connect_error_421_closes(oracle_dir):
    session = session_for(oracle_dir, "127.0.0.4")
    say(session, "EHLO client.example.net")
    assert say(session, "MAIL FROM:<alice@example.com>") == ("421 4.3.2 Too busy, come back later")
    assert session.closed


def test_connect_discard_accepts_then_discards(oracle_dir):
    session = session_for(oracle_dir, "127.0.0.5")
    say(session, "EHLO client.example.net")
    assert say(session, "MAIL FROM:<alice@example.com>").startswith("250 ")
    assert say(session, "RCPT TO:<bob>").startswith("250 ")
    say(session, "DATA")
    out = session.feed(b"Subject: x\r\n\r\nbody\r\n.\r\n")
    complete = next(o for o in out if isinstance(o, MessageComplete))
    assert complete.discard


def test_from_discard_and_to_discard_mark_the_message(oracle_dir):
    for sender, recipient in (
        ("<x@discard.example.net>", "<bob>"),
        ("<alice@example.com>", "<discarded@mail.example.com>"),
    ):
        session = session_for(oracle_dir, "127.0.0.1")
        say(session, "EHLO client.example.net")
        say(session, f"MAIL FROM:{sender}")
        assert say(session, f"RCPT TO:{recipient}").startswith("250 ")
        say(session, "DATA")
        out = session.feed(b"x\r\n.\r\n")
        assert next(o for o in out if isinstance(o, MessageComplete)).discard


def test_search_keys_follow_the_stock_rulesets():
    assert domain_keys("a.b.example.com.") == [
        "a.b.example.com",
        "b.example.com",
        "example.com",
        "com",
    ]
    assert domain_keys("[10.1.2.3]") == ["[10.1.2.3]", "[10.1.2]", "[10.1]", "[10]"]
    assert address_keys("10.1.2.3") == ["10.1.2.3", "10.1.2", "10.1", "10"]
    assert address_keys("2001:db8::1")[0] == "IPv6:2001:db8::1"


def test_access_lookup_tagged_before_bare():
    table = {"connect:10.1": "REJECT", "10.1.2": "OK"}
    access = AccessDb(lambda key: table.get(key.lower()))
    assert access.address("Connect", "10.1.2.3") == "OK"  # the longer key wins
    assert access.address("Connect", "10.1.9.9") == "REJECT"
    assert access.address("Connect", "10.1.2.3", bare=False) == "REJECT"


@pytest.mark.parametrize(
    ("address", "status", "text"),
    [
        ("bob@", "5.1.3", "Hostname required"),
        ("@example.com", "5.1.3", "User address required"),
        ("a@@b", "5.1.3", "Invalid route address"),
        ("a@b@c", "5.1.3", "Invalid route address"),
        ("u@.example.com", "5.1.2", "Invalid host name"),
        ("u@a..example.com", "5.1.2", "Invalid host name"),
        ("u@host:25", "5.1.3", "Colon illegal in host name part"),
    ],
)
def test_ruleset_zero_syntax_refusals(address, status, text):
    error = address_syntax_error(address, sender=False)
    assert error is not None and (error.status, error.text) == (status, text)


def test_plain_addresses_pass_ruleset_zero():
    for address in ("bob", "bob@example.com", '"a b"@example.com', "u@[192.0.2.1]"):
        assert address_syntax_error(address, sender=False) is None
