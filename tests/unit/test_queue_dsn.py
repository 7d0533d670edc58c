"""RFC 3464 reports shaped like sendmail 8.17's bounces."""

import email
import email.policy
import json

from pysendmail.delivery import dsn
from pysendmail.delivery.dsn import DsnKind, OriginalMessage, RecipientReport
from pysendmail.envelope import Notify, Ret
from pysendmail.headers import MACRO_CHAR, Header, parse_header_block, render

NOW = 1795691461


def _bounce_from_fixture(oracle_dir) -> str:
    for line in (oracle_dir / "cli" / "cli_cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["name"] == "t_to_cc_bcc_queue":
            text = case["mailboxes"]["alice"]["text"]
            return text.split("\n", 1)[1].rsplit("\n=== end\n", 1)[0]
    raise KeyError


def _original_headers(qid):
    return [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header(
            "Received",
            "(from root@localhost)\n\tby mail.example.com (8.17.1.9/8.17.1.9/Debian-2+deb12u2)"
            f" id {qid};\n\tThu, 26 Nov 2026 11:11:01 GMT",
        ),
        Header("Date", "Thu, 26 Nov 2026 11:11:01 GMT", condition="D"),
        Header("Full-Name", "root", condition="x"),
        Header("Message-Id", f"<202611261111.{qid}@mail.example.com>", condition="M"),
        Header("From", "Alice <alice@example.com>"),
        Header("To", "bob@example.com, Carol <carol@partner.example.org>"),
        Header("Cc", "sales@example.com"),
        Header("Bcc", "secret@example.com, mallory"),
        Header("Subject", "-t test"),
    ]


def test_failure_report_is_shaped_like_sendmails_bounce(oracle_dir):
    original = OriginalMessage(
        qid="6AQBB1lE009546",
        sender="root",
        headers=_original_headers("6AQBB1lE009546"),
        body=b"body\n",
        arrival=NOW,
        received_from="root@localhost",
    )
    reports = [
        RecipientReport(
            address="sales@example.com",
            final_recipient="RFC822; sales@example.com",
            actual_recipient="rfc822; sales@mail.example.com",
            action="delivered (to mailing list)",
            status="2.0.0",
            last_attempt=NOW,
        ),
        RecipientReport(
            address="secret@example.com",
            final_recipient="RFC822; secret@example.com",
            actual_recipient="rfc822; secret@mail.example.com",
            action="failed",
            status="5.1.1",
            diagnostic="X-Unix; 550 5.1.1 User unknown",
            reason="550 5.1.1 User unknown",
            last_attempt=NOW,
        ),
    ]
    made = dsn.build_dsn(
        DsnKind.FAILURE,
        original,
        reports,
        qid="6AQBB1lF009546",
        hostname="mail.example.com",
        now=NOW,
        transcript=[
            "Message delivered to mailing list sales@example.com",
            "550 5.1.1 secret@example.com... User unknown",
        ],
    )
    assert made.envelope.sender == "<>" and made.recipients == ["root"]
    assert "r" in made.envelope.flags
    expected = _bounce_from_fixture(oracle_dir)
    exp_headers, offset = parse_header_block(expected.encode())
    expected_body = expected.encode()[offset:]
    assert made.body == expected_body
    ours = {h.name: h.value for h in made.headers}
    for h in exp_headers:
        if h.name in ("Return-Path", "Received"):
            continue
        assert ours[h.name] == h.value, h.name
    whole = render(made.headers) + b"\n" + made.body
    parsed = email.message_from_bytes(whole, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    kinds = [p.get_content_type() for p in parsed.iter_parts()]
    assert kinds == ["text/plain", "message/delivery-status", "message/rfc822"]


def _original(**kw):
    base = dict(
        qid="Q1",
        sender="<alice@example.com>",
        headers=[Header("Subject", "hi"), Header("Bcc", "x")],
        body=b"secret body\n",
        arrival=NOW,
    )
    base.update(kw)
    return OriginalMessage(**base)


def _report(**kw):
    base = dict(
        address="bob@remote.example",
        final_recipient="rfc822; bob@remote.example",
        action="failed",
        status="5.0.0",
    )
    base.update(kw)
    return RecipientReport(**base)


def test_ret_hdrs_returns_only_the_headers_and_envid_orcpt_are_reported():
    made = dsn.build_dsn(
        DsnKind.FAILURE,
        _original(ret=Ret.HDRS, envid="envid-42"),
        [_report(original_recipient="rfc822;bob@remote.example", remote_mta="dns; mx.x")],
        qid="Q2",
        hostname="h.example",
        now=NOW,
    )
    body = made.body.decode()
    assert "Content-Type: text/rfc822-headers\n\nSubject: hi\n\n--" in body
    assert "secret body" not in body and "Bcc" not in body
    assert "Original-Envelope-Id: envid-42\nReporting-MTA: dns; h.example\n" in body
    assert "Original-Recipient: rfc822;bob@remote.example\nFinal-Recipient:" in body
    assert "Remote-MTA: dns; mx.x\n" in body
    assert made.recipients == ["alice@example.com"]


def test_delay_report_warns_and_says_until_when():
    made = dsn.build_dsn(
        DsnKind.DELAY,
        _original(),
        [_report(action="delayed", status="4.4.1", will_retry_until=NOW + 5 * 86400)],
        qid="Q3",
        hostname="h",
        now=NOW + 4 * 3600,
        delayed_for=4 * 3600,
    )
    subject = next(h.value for h in made.headers if h.name == "Subject")
    assert subject == "Warning: could not send message for past 4 hours"
    body = made.body.decode()
    assert "THIS IS A WARNING MESSAGE ONLY" in body
    assert "Action: delayed\nStatus: 4.4.1\nWill-Retry-Until: Tue, 01 Dec 2026" in body
    assert "Content-Type: message/rfc822\n\nSubject: hi\n\nsecret body\n" in body


def test_never_to_the_null_sender_double_bounce_to_postmaster_and_no_loop():
    bounce = _original(sender="<>", is_dsn=True, headers=[Header("To", "alice@example.com")])
    assert dsn.dsn_recipient(bounce, DsnKind.FAILURE) == "postmaster"
    assert dsn.dsn_recipient(bounce, DsnKind.DELAY) is None
    double = _original(sender="<>", is_dsn=True, headers=[Header("To", "postmaster")])
    assert dsn.dsn_recipient(double, DsnKind.FAILURE) is None
    assert dsn.build_dsn(DsnKind.FAILURE, double, [_report()], qid="Q", hostname="h") is None
    assert dsn.build_dsn(DsnKind.FAILURE, _original(), [], qid="Q", hostname="h") is None


def test_notify_decides_which_reports_are_wanted():
    assert dsn.wants_report(None, DsnKind.FAILURE) and dsn.wants_report(None, DsnKind.DELAY)
    assert not dsn.wants_report(None, DsnKind.SUCCESS)
    assert not dsn.wants_report(frozenset({Notify.NEVER}), DsnKind.FAILURE)
    assert dsn.wants_report(frozenset({Notify.SUCCESS}), DsnKind.SUCCESS)
    assert not dsn.wants_report(frozenset({Notify.SUCCESS}), DsnKind.DELAY)
