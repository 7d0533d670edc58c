"""The sans-IO ESMTP session: bytes in, replies and events out, no sockets, no config.

The policy here is a small in-test implementation of `SmtpPolicy` whose decisions are
spelt out (local users, a refused sender), so each test states what it relies on.
"""

from __future__ import annotations

import base64
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.errors import MailError, UserUnknown
from pysendmail.protocol import replies as R
from pysendmail.protocol.replies import Reply
from pysendmail.protocol.smtp import (
    BodyChunk,
    ClientInfo,
    Close,
    ConnectDecision,
    EtrnRequest,
    MessageAborted,
    MessageComplete,
    MessageStart,
    SessionSettings,
    SessionView,
    SmtpSession,
    StartTLS,
    Verdict,
    VerifyResult,
)

HOST = "mail.example.com"
LOCAL_USERS = {"alice", "bob"}
CLIENT = "localhost [127.0.0.1]"


class ListPolicy:
    """Local users are LOCAL_USERS; sender `spam@bad.example` is refused."""

    def __init__(self, connect: ConnectDecision | None = None) -> None:
        self.connect = connect or ConnectDecision()
        self.checked_senders: list[str] = []

    def check_connect(self, client: ClientInfo) -> ConnectDecision:
        return self.connect

    def check_address(self, address: str, *, sender: bool) -> None:
        if address.endswith("@"):
            raise MailError("Hostname required", reply_code=553, status="5.1.3")

    def check_mail(self, session: SessionView, sender: str) -> Verdict:
        self.checked_senders.append(sender)
        if sender == "spam@bad.example":
            raise MailError("Access denied", reply_code=550, status="5.7.1")
        if sender.endswith("@discard.example"):
            return Verdict.DISCARD
        return Verdict.ACCEPT

    def check_rcpt(self, session: SessionView, recipient: str) -> Verdict:
        user = recipient.split("@")[0].lower()
        if "@" in recipient and not recipient.endswith("@example.com"):
            raise MailError("Relaying denied", reply_code=550, status="5.7.1")
        if user not in LOCAL_USERS:
            raise UserUnknown("User unknown")
        return Verdict.ACCEPT

    def verify(self, address: str) -> VerifyResult:
        if "@" in address and not address.endswith("@example.com"):
            return VerifyResult(address, local=False)
        user = address.split("@")[0]
        if user not in LOCAL_USERS:
            raise UserUnknown("User unknown")
        return VerifyResult(f"{user}@{HOST}")

    def expand(self, address: str) -> list[VerifyResult]:
        if address == "staff":
            return [VerifyResult(f"bob@{HOST}"), VerifyResult(f"alice@{HOST}")]
        return [self.verify(address)]

    def authenticate(self, authcid: str, password: str, authzid: str) -> bool:
        return (authcid, password) == ("alice", "s3cret")


def make_session(policy: ListPolicy | None = None, **settings: object) -> SmtpSession:
    base = {"hostname": HOST, "greeting": f"{HOST} pysendmail; now", "max_message_size": 100000}
    base.update(settings)
    client = ClientInfo(addr="127.0.0.1", name="localhost")
    return SmtpSession(policy or ListPolicy(), SessionSettings(**base), client)  # type: ignore[arg-type]


def replies(outputs: list) -> list[str]:
    return [o.to_bytes().decode() for o in outputs if isinstance(o, Reply)]


def text(outputs: list) -> str:
    return "".join(replies(outputs))


def started(**settings: object) -> SmtpSession:
    session = make_session(**settings)
    session.start()
    return session


def ehlo(session: SmtpSession) -> str:
    return text(session.feed(b"EHLO client.example.net\r\n"))


def test_greeting_inserts_esmtp_as_second_word():
    session = make_session()
    assert text(session.start()) == f"220 {HOST} ESMTP pysendmail; now\r\n"


def test_ehlo_lists_sendmail_keywords_then_ours():
    session = started()
    answer = ehlo(session)
    assert answer.splitlines() == [
        f"250-{HOST} Hello localhost [127.0.0.1], pleased to meet you",
        "250-ENHANCEDSTATUSCODES",
        "250-PIPELINING",
        "250-EXPN",
        "250-VERB",
        "250-8BITMIME",
        "250-SIZE 100000",
        "250-DSN",
        "250-ETRN",
        "250-DELIVERBY",
        "250-CHUNKING",
        "250-SMTPUTF8",
        "250 HELP",
    ]


def test_ehlo_keywords_follow_privacy_and_daemon_flags():
    session = started(privacy=frozenset({"noexpn", "noverb", "noetrn"}), max_message_size=0)
    keywords = {line[4:] for line in ehlo(session).splitlines()}
    assert not keywords & {"EXPN", "VERB", "ETRN"}
    assert "SIZE" in keywords


def test_auth_not_offered_before_tls_unless_configured():
    plain = started(auth_mechanisms=("PLAIN", "LOGIN"), tls_available=True)
    answer = ehlo(plain)
    assert "AUTH" not in answer and "STARTTLS" in answer
    assert text(plain.feed(b"AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n")).startswith("504 5.3.3 ")
    allowed = started(auth_mechanisms=("PLAIN", "LOGIN"), auth_without_tls=True)
    assert "250-AUTH PLAIN LOGIN\r\n" in ehlo(allowed)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"HELO\r\n", "501 5.0.0 HELO requires domain address\r\n"),
        (b"EHLO bad_name!.example\r\n", "501 5.0.0 Invalid domain name\r\n"),
        (b"EHLO a b c\r\n", "501 5.0.0 Invalid domain name\r\n"),
        (
            b"HELO [127.0.0.1]\r\n",
            f"250 {HOST} Hello localhost [127.0.0.1], pleased to meet you\r\n",
        ),
    ],
)
def test_helo_arguments(line, expected):
    assert text(started().feed(line)) == expected


def full_transaction(session: SmtpSession, body: bytes) -> list:
    ehlo(session)
    out = session.feed(b"MAIL FROM:<carol@example.org>\r\n")
    out += session.feed(b"RCPT TO:<bob@example.com>\r\n")
    out += session.feed(b"DATA\r\n")
    out += session.feed(body)
    return out


def test_message_streams_body_without_headers_and_unstuffs_dots():
    session = started()
    out = full_transaction(
        session, b"Subject: hi\r\nX-Long: a\r\n\tb\r\n\r\nline\r\n..dot\r\n.\r\n"
    )
    assert "250 2.1.0 <carol@example.org>... Sender ok\r\n" in replies(out)
    assert "354 End data with <CR><LF>.<CR><LF>\r\n" in replies(out)
    starts = [o for o in out if isinstance(o, MessageStart)]
    assert starts[0].envelope.sender == "<carol@example.org>"
    body = b"".join(o.data for o in out if isinstance(o, BodyChunk))
    assert body == b"line\n.dot\n"
    complete = next(o for o in out if isinstance(o, MessageComplete))
    assert complete.headers == ("Subject: hi", "X-Long: a\n\tb")
    assert [r.address for r in complete.envelope.recipients] == ["<bob@example.com>"]
    assert complete.envelope.macros["s"] == "client.example.net"
    assert complete.envelope.macros["r"] == "ESMTP"
    assert not complete.discard
    # No reply to DATA's end until the queue answers.
    assert replies(out)[-1].startswith("354")
    assert text(session.message_queued("6AQB90pv005874")) == (
        "250 2.0.0 6AQB90pv005874 Message accepted for delivery\r\n"
    )


def test_input_after_message_waits_for_the_queue():
    session = started()
    out = full_transaction(session, b"Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\n")
    assert replies(out)[-1].startswith("354")
    assert session.awaiting_queue
    after = replies(session.message_queued("Q1"))
    assert after == ["250 2.0.0 Q1 Message accepted for delivery\r\n", "250 2.0.0 OK\r\n"]


def test_queue_failure_is_reported_with_its_status():
    session = started()
    full_transaction(session, b"x\r\n.\r\n")
    error = MailError("Insufficient disk space; try again later", reply_code=452, status="4.3.1")
    assert text(session.message_failed(error)) == (
        "452 4.3.1 Insufficient disk space; try again later\r\n"
    )
    assert not session.in_transaction


def test_only_crlf_dot_crlf_ends_data():
    session = started()
    out = full_transaction(session, b"a\r\n.\nb\r\n")
    assert any(isinstance(o, MessageAborted) for o in out)
    assert "421 4.5.0 Bare linefeed (LF) not allowed\r\n" in replies(out)
    assert isinstance(out[-1], Close)
    assert not any(isinstance(o, MessageComplete) for o in out)


def test_bare_cr_in_data_closes_without_delivery():
    session = started()
    out = full_transaction(session, b"a\rb\r\n.\r\n")
    assert "421 4.5.0 Bare carriage return (CR) not allowed\r\n" in replies(out)
    assert not any(isinstance(o, MessageComplete) for o in out)
    assert session.closed


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"NOOP\n", "421 4.5.0 Bare linefeed (LF) not allowed\r\n"),
        (b"NO\rOP\r\n", "421 4.5.0 Bare carriage return (CR) not allowed\r\n"),
    ],
)
def test_bare_line_ends_in_commands_close(line, expected):
    session = started()
    out = session.feed(line)
    assert text(out) == expected
    assert isinstance(out[-1], Close)


def test_overlong_command_is_an_attack():
    session = started()
    assert text(session.feed(b"NOOP " + b"x" * 600 + b"\r\n")) == "250 2.0.0 OK\r\n"
    out = session.feed(b"NOOP " + b"x" * 3000 + b"\r\n")
    assert text(out) == (
        f"421 4.7.0 {HOST} Command too long, possible attack localhost [127.0.0.1]\r\n"
    )
    assert session.closed


def test_overlong_line_refused_before_its_end_arrives():
    session = started()
    out = session.feed(b"NOOP " + b"x" * 5000)
    assert text(out).startswith("421 4.7.0 ")


def test_body_pipelined_with_data_is_a_protocol_error():
    session = started()
    ehlo(session)
    out = session.feed(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"
    )
    assert replies(out)[-1] == "554 5.5.0 SMTP protocol error\r\n"
    assert not any(isinstance(o, MessageStart) for o in out)
    assert session.closed


def test_pipelined_helo_turns_the_session_into_a_null_server():
    session = started()
    out = session.feed(b"MAIL FROM:<a@example.org>\r\nHELO x.example\r\nRCPT TO:<bob>\r\nQUIT\r\n")
    assert replies(out) == [
        "250 2.1.0 <a@example.org>... Sender ok\r\n",
        "554 5.5.0 SMTP protocol error\r\n",
        "550 5.0.0 Command rejected\r\n",
        f"221 2.0.0 {HOST} closing connection\r\n",
    ]


def test_ehlo_followed_by_end_of_input_is_a_protocol_error():
    session = started()
    out = session.feed(b"EHLO x.example\r\n", eof=True)
    assert replies(out) == ["554 5.5.0 SMTP protocol error\r\n"]
    assert session.closed


def test_pipelining_after_ehlo_answers_in_order():
    session = started()
    ehlo(session)
    out = session.feed(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\nRCPT TO:<nosuch>\r\nDATA\r\n"
    )
    assert replies(out) == [
        "250 2.1.0 <a@example.org>... Sender ok\r\n",
        "250 2.1.5 <bob>... Recipient ok\r\n",
        "550 5.1.1 <nosuch>... User unknown\r\n",
        "354 End data with <CR><LF>.<CR><LF>\r\n",
    ]


def test_early_talker_refused_when_greet_pause_caught_it():
    session = make_session()
    assert text(session.start(early_talker=True)) == f"554 {HOST} ESMTP not accepting messages\r\n"
    assert text(session.feed(b"MAIL FROM:<a@b.example>\r\n")) == "550 5.0.0 Command rejected\r\n"


def test_starttls_drops_pipelined_plaintext():
    session = started(tls_available=True)
    ehlo(session)
    out = session.feed(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    assert replies(out) == ["220 2.0.0 Ready to start TLS\r\n"]
    assert isinstance(out[-1], StartTLS)
    assert session.tls_started() == []
    # The session starts over: a fresh EHLO is needed and STARTTLS is not offered again.
    answer = ehlo(session)
    assert "STARTTLS" not in answer
    assert text(session.feed(b"STARTTLS\r\n")) == "503 5.5.0 TLS already active\r\n"


def test_starttls_unavailable_without_certificate():
    session = started()
    assert text(session.feed(b"STARTTLS\r\n")) == "454 4.3.3 TLS not available after start\r\n"


def tls_session(**settings: object) -> SmtpSession:
    session = started(tls_available=True, auth_mechanisms=("PLAIN", "LOGIN"), **settings)
    session.feed(b"STARTTLS\r\n")
    session.tls_started()
    ehlo(session)
    return session


def test_auth_plain_with_initial_response():
    session = tls_session()
    token = base64.b64encode(b"\x00alice\x00s3cret")
    assert text(session.feed(b"AUTH PLAIN " + token + b"\r\n")) == "235 2.0.0 OK Authenticated\r\n"
    assert session.view.authenticated == "alice"
    assert (
        text(session.feed(b"AUTH PLAIN " + token + b"\r\n"))
        == "503 5.5.0 Already Authenticated\r\n"
    )


def test_auth_login_challenge_and_failure():
    session = tls_session()
    assert text(session.feed(b"AUTH LOGIN\r\n")) == "334 VXNlcm5hbWU6\r\n"
    assert text(session.feed(base64.b64encode(b"alice") + b"\r\n")) == "334 UGFzc3dvcmQ6\r\n"
    assert text(session.feed(base64.b64encode(b"wrong") + b"\r\n")) == (
        "535 5.7.0 authentication failed\r\n"
    )
    assert session.view.authenticated is None


def test_auth_can_be_cancelled_and_must_decode():
    session = tls_session()
    session.feed(b"AUTH PLAIN\r\n")
    assert text(session.feed(b"*\r\n")) == "501 5.0.0 AUTH aborted\r\n"
    assert text(session.feed(b"AUTH PLAIN !!!\r\n")).startswith("501 5.5.2 cannot decode")


def test_auth_required_by_daemon_flag():
    session = tls_session(auth_required=True)
    assert text(session.feed(b"MAIL FROM:<a@example.org>\r\n")) == (
        "530 5.7.0 Authentication required\r\n"
    )
    token = base64.b64encode(b"\x00alice\x00s3cret")
    session.feed(b"AUTH PLAIN " + token + b"\r\n")
    assert text(session.feed(b"MAIL FROM:<a@example.org> AUTH=alice\r\n")).startswith("250 ")
    assert session.view.envelope.auth == "alice"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (" SIZE=200000", "552 5.2.3 Message size exceeds fixed maximum message size (100000)"),
        (" SIZE=99999999999999999999", "552 5.2.3 Message size exceeds maximum value"),
        (" SIZE=-1", "552 5.2.3 Message size invalid"),
        (" SIZE", "501 5.5.2 SIZE requires a value"),
        (" BODY=BINARY", "501 5.5.4 Unknown BODY type BINARY"),
        (" RET=FULL RET=HDRS", "501 5.5.0 Duplicate RET parameter"),
        (" RET=ALL", '501 5.5.2 Bad argument "ALL"'),
        (" ENVID=a+0D+0ABcc:x", "501 5.5.4 Syntax error in ENVID parameter value"),
        (" AUTH=x+0Ay", "501 5.5.4 Syntax error in AUTH parameter value"),
        (" FOO=bar", "555 5.5.4 FOO parameter unrecognized"),
        (" SMTPUTF8=yes", "501 5.5.4 SMTPUTF8 does not take a value"),
    ],
)
def test_mail_parameter_errors(params, expected):
    session = started()
    ehlo(session)
    line = f"MAIL FROM:<a@example.org>{params}\r\n".encode()
    assert text(session.feed(line)) == expected + "\r\n"
    assert not session.in_transaction


def test_mail_parameters_fill_the_envelope():
    session = started()
    ehlo(session)
    line = b"MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME RET=HDRS ENVID=QQ314159 AUTH=<>\r\n"
    assert text(session.feed(line)).startswith("250 2.1.0")
    env = session.view.envelope
    assert (env.size_hint, env.body_type.value, env.ret.value, env.envid, env.auth) == (
        1000,
        "8BITMIME",
        "HDRS",
        "QQ314159",
        "<>",
    )
    rcpt = b"RCPT TO:<bob> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com\r\n"
    assert text(session.feed(rcpt)).startswith("250 2.1.5")
    recipient = env.recipients[0]
    assert {n.value for n in recipient.notify} == {"SUCCESS", "FAILURE"}
    assert recipient.orcpt == "rfc822;bob@example.com"


def test_rcpt_parameter_errors():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\n")
    assert text(session.feed(b"RCPT TO:<bob> NOTIFY=NEVER,SUCCESS\r\n")).startswith("501 5.5.4")
    assert text(session.feed(b"RCPT TO:<bob> ORCPT=rfc822\r\n")).startswith("501 5.5.4")
    assert (
        text(session.feed(b"RCPT TO:<bob> <alice>\r\n")) == "555 5.5.4  parameter unrecognized\r\n"
    )


def test_eight_bit_address_needs_smtputf8():
    session = started()
    ehlo(session)
    refused = text(session.feed("MAIL FROM:<jörg@example.org>\r\n".encode()))
    assert refused.startswith("553 5.6.7 <jörg@example.org>")
    accepted = text(session.feed("MAIL FROM:<jörg@example.org> SMTPUTF8\r\n".encode()))
    assert accepted.startswith("250 2.1.0")
    assert session.view.envelope.smtputf8


def test_eight_bit_recipient_without_smtputf8_refused():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\n")
    assert text(session.feed("RCPT TO:<bøb@example.com>\r\n".encode())).startswith("553 5.6.7")


def test_sequence_errors():
    session = started()
    assert text(session.feed(b"RCPT TO:<bob>\r\n")) == "503 5.0.0 Need MAIL before RCPT\r\n"
    assert text(session.feed(b"DATA\r\n")) == "503 5.0.0 Need MAIL command\r\n"
    session.feed(b"MAIL FROM:<a@example.org>\r\n")
    assert text(session.feed(b"MAIL FROM:<a@example.org>\r\n")) == (
        "503 5.5.0 Sender already specified\r\n"
    )
    assert text(session.feed(b"DATA\r\n")) == "503 5.0.0 Need RCPT (recipient)\r\n"
    assert text(session.feed(b"RSET\r\n")) == "250 2.0.0 Reset state\r\n"
    assert not session.in_transaction


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"MAIL\r\n", '501 5.5.2 Syntax error in parameters scanning ""'),
        (b"MAIL FROM:\r\n", '501 5.5.2 Syntax error in parameters scanning "FROM"'),
        (b"MAIL TO:<bob>\r\n", '501 5.5.2 Syntax error in parameters scanning "TO"'),
        (b"MAIL FROM:<a@example.org\r\n", "553 5.0.0 <a@example.org... Unbalanced '<'"),
        (b"MAIL FROM:a@example.org>\r\n", "553 5.0.0 a@example.org>... Unbalanced '>'"),
        (b"MAIL FROM:<a@>\r\n", "553 5.1.3 <a@>... Hostname required"),
        (b"MAIL FROM:<spam@bad.example>\r\n", "550 5.7.1 <spam@bad.example>... Access denied"),
    ],
)
def test_mail_syntax_and_policy_refusals(line, expected):
    assert text(started().feed(line)) == expected + "\r\n"


def test_discard_verdict_marks_the_message():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<x@discard.example>\r\nRCPT TO:<bob>\r\n")
    out = session.feed(b"DATA\r\n") + session.feed(b"hi\r\n.\r\n")
    complete = next(o for o in out if isinstance(o, MessageComplete))
    assert complete.discard


def test_connect_refusal_makes_a_null_server():
    refusal = MailError("Access denied", reply_code=550, status="5.7.1")
    session = make_session(ListPolicy(ConnectDecision(refusal=refusal)))
    session.start()
    answer = text(session.feed(b"EHLO client.example.net\r\n"))
    assert answer.endswith("250 ENHANCEDSTATUSCODES\r\n")
    assert text(session.feed(b"MAIL FROM:<a@example.org>\r\n")) == "550 5.7.1 Access denied\r\n"
    assert text(session.feed(b"HELP\r\n")) == "550 5.7.1 Access denied\r\n"
    assert text(session.feed(b"NOOP\r\n")) == "250 2.0.0 OK\r\n"


def test_connect_tempfail_421_closes_at_first_refused_command():
    refusal = MailError("Too busy, come back later", reply_code=421, status="4.3.2")
    session = make_session(ListPolicy(ConnectDecision(refusal=refusal)))
    session.start()
    out = session.feed(b"MAIL FROM:<a@example.org>\r\nNOOP\r\n")
    assert replies(out) == ["421 4.3.2 Too busy, come back later\r\n"]
    assert session.closed


def test_too_many_bad_commands():
    session = started()
    out = session.feed(b"BOGUS\r\n" * 26)
    assert replies(out)[-1] == f"421 4.7.0 {HOST} Too many bad commands; closing connection\r\n"
    assert session.closed


def test_unknown_and_unimplemented_commands_echo_the_line():
    session = started()
    assert text(session.feed(b"BOGUS x\r\n")) == '500 5.5.1 Command unrecognized: "BOGUS x"\r\n'
    assert text(session.feed(b"TURN\r\n")) == '502 5.5.1 Command not implemented: "TURN"\r\n'
    assert text(session.feed(b" \r\n")) == '500 5.5.1 Command unrecognized: " "\r\n'


def test_max_recipients():
    session = started(max_recipients=1)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\n")
    assert text(session.feed(b"RCPT TO:<alice>\r\n")) == "452 4.5.3 Too many recipients\r\n"


def test_message_over_max_size_refused_after_the_dot():
    session = started(max_message_size=1000)
    out = full_transaction(session, b"Subject: big\r\n\r\n" + b"z" * 2000 + b"\r\n.\r\n")
    assert replies(out)[-1] == "552 5.2.3 Message exceeds maximum fixed size (1000)\r\n"
    assert any(isinstance(o, MessageAborted) for o in out)
    assert not any(isinstance(o, MessageComplete) for o in out)
    assert text(session.feed(b"NOOP\r\n")) == "250 2.0.0 OK\r\n"


def test_too_many_hops():
    session = started()
    hops = b"".join(b"Received: from h%d\r\n" % n for n in range(26))
    out = full_transaction(session, hops + b"\r\nbody\r\n.\r\n")
    assert replies(out)[-1].startswith(
        "554 5.4.6 Too many hops 26 (25 max): from carol@example.org"
    )
    assert not any(isinstance(o, MessageComplete) for o in out)


def test_twenty_five_hops_are_fine():
    session = started()
    hops = b"".join(b"Received: from h%d\r\n" % n for n in range(25))
    out = full_transaction(session, hops + b"\r\nbody\r\n.\r\n")
    assert any(isinstance(o, MessageComplete) for o in out)


def test_headers_too_large():
    session = started(max_header_length=100)
    out = full_transaction(session, b"X-A: " + b"a" * 200 + b"\r\n\r\nb\r\n.\r\n")
    assert replies(out)[-1] == "552 5.6.0 Headers too large (100 max)\r\n"


def test_body_arrives_byte_by_byte():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\n")
    session.feed(b"DATA\r\n")
    out = []
    for byte in b"Subject: s\r\n\r\nl1\r\n..l2\r\n.\r\n":
        out += session.feed(bytes([byte]))
    assert b"".join(o.data for o in out if isinstance(o, BodyChunk)) == b"l1\n.l2\n"
    assert any(isinstance(o, MessageComplete) for o in out)


def test_long_body_line_is_streamed_in_pieces():
    session = started(max_message_size=0)
    full_transaction(session, b"Subject: s\r\n\r\n")
    out = session.feed(b"y" * 300_000)
    chunks = [o for o in out if isinstance(o, BodyChunk)]
    assert chunks and sum(len(c.data) for c in chunks) == 300_000
    out = session.feed(b"\r\n.\r\n")
    assert any(isinstance(o, MessageComplete) for o in out)


def test_end_of_input_inside_data_aborts_the_message():
    session = started()
    out = full_transaction(session, b"Subject: unterminated\r\n\r\npartial")
    out += session.feed(b"", eof=True)
    assert any(isinstance(o, MessageAborted) for o in out)
    assert not any(isinstance(o, MessageComplete) for o in out)
    assert session.closed


def test_bdat_chunks_make_one_message():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\n")
    first = b"Subject: c\r\n\r\nhello\r"
    out = session.feed(b"BDAT %d\r\n" % len(first) + first)
    assert replies(out) == [f"250 2.0.0 {len(first)} octets received\r\n"]
    last = b"\n.not stuffed\r\n"
    out = session.feed(b"BDAT %d LAST\r\n" % len(last) + last)
    body = b"".join(o.data for o in out if isinstance(o, BodyChunk))
    assert body == b"hello\n.not stuffed\n"
    complete = next(o for o in out if isinstance(o, MessageComplete))
    assert complete.headers == ("Subject: c",)


def test_bdat_without_mail_consumes_the_chunk():
    session = started()
    out = session.feed(b"BDAT 4 LAST\r\nNOOPNOOP\r\n")
    assert replies(out) == ["503 5.0.0 Need MAIL command\r\n", "250 2.0.0 OK\r\n"]


def test_vrfy_and_expn():
    session = started()
    assert text(session.feed(b"VRFY alice\r\n")) == f"250 2.1.5 <alice@{HOST}>\r\n"
    assert text(session.feed(b"VRFY nosuch\r\n")) == "550 5.1.1 nosuch... User unknown\r\n"
    assert text(session.feed(b"VRFY u@remote.example.net\r\n")) == (
        "252 2.1.5 <u@remote.example.net>\r\n"
    )
    assert text(session.feed(b"VRFY\r\n")) == "501 5.5.2 Argument required\r\n"
    assert text(session.feed(b"EXPN staff\r\n")) == (
        f"250-2.1.5 <bob@{HOST}>\r\n250 2.1.5 <alice@{HOST}>\r\n"
    )


def test_privacy_options_refuse_vrfy_expn():
    session = started(privacy=frozenset({"novrfy", "noexpn"}))
    assert text(session.feed(b"VRFY alice\r\n")).startswith("252 2.5.2 Cannot VRFY user")
    assert text(session.feed(b"EXPN alice\r\n")) == (
        "502 5.7.0 Sorry, we do not allow this operation\r\n"
    )


def test_needmailhelo():
    session = started(privacy=frozenset({"needmailhelo"}))
    assert text(session.feed(b"MAIL FROM:<a@example.org>\r\n")) == (
        "503 5.0.0 Polite people say HELO first\r\n"
    )


def test_etrn_requests_a_queue_run():
    session = started()
    out = session.feed(b"ETRN example.com\r\n")
    assert EtrnRequest("example.com") in out
    assert text(out) == "250 2.0.0 Queuing for node example.com started\r\n"
    assert text(session.feed(b"ETRN\r\n")) == "500 5.5.2 Parameter required\r\n"
    refused = started(offer_etrn=False)
    assert text(refused.feed(b"ETRN example.com\r\n")).startswith("502 5.7.0")


def test_help_from_topics():
    topics = {"smtp": ("This is sendmail", "Topics:"), "mail": ("MAIL From:<sender>",)}
    session = started(help_topics=topics)
    assert text(session.feed(b"HELP\r\n")) == (
        "214-2.0.0 This is sendmail\r\n214-2.0.0 Topics:\r\n214 2.0.0 End of HELP info\r\n"
    )
    assert text(session.feed(b"HELP MAIL\r\n")).startswith("214-2.0.0 MAIL From:<sender>")
    assert text(session.feed(b"HELP NOSUCHTOPIC\r\n")) == (
        '504 5.3.0 HELP topic "nosuchtopi" unknown\r\n'
    )


def test_quit_closes():
    session = started()
    out = session.feed(b"QUIT\r\nNOOP\r\n")
    assert replies(out) == [f"221 2.0.0 {HOST} closing connection\r\n"]
    assert isinstance(out[-1], Close)
    assert session.feed(b"NOOP\r\n") == []


def test_every_reply_in_the_table_renders():
    for template in R.ALL_REPLIES.values():
        fields = {name: "x" for name in ("host", "client", "text", "line", "verb", "word")}
        fields.update(addr="<a@b>", reason="r", name="N", value="v", max=1, qid="Q")
        fields.update(count=1, sender="s", via="v", rcpt="r", size=1, node="n", topic="t")
        fields.update(version="8", mechanism="M", challenge="")
        data = template.render(**fields).to_bytes()
        assert data.startswith(str(template.code).encode()) and data.endswith(b"\r\n")


def test_lookahead_is_wanted_where_pending_input_changes_the_answer():
    session = started()
    # HELO/EHLO (a client writing ahead of PIPELINING) and DATA (a message written
    # before the 354) are answered differently when more input is waiting.
    assert session.wants_lookahead(b"EHLO x.example\r\n")
    assert session.wants_lookahead(b"  helo x.example\r\n")
    ehlo(session)
    assert session.wants_lookahead(b"DATA\r\n")
    assert session.wants_lookahead(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\ndata\r\n")
    # Other commands are answered the same either way: no look for pending input.
    assert not session.wants_lookahead(b"MAIL FROM:<a@example.org>\r\n")
    assert not session.wants_lookahead(b"RCPT TO:<bob>\r\nNOOP\r\n")
    assert not session.wants_lookahead(b"QUIT\r\n")


def test_lookahead_sees_a_command_split_across_reads():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\nDA")
    assert session.wants_lookahead(b"TA\r\n")
    session.feed(b"RS")
    assert not session.wants_lookahead(b"ET\r\n")


def test_no_lookahead_inside_a_message():
    session = started()
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\nDATA\r\n")
    # In the body a line "DATA" is text, and the end of the message answers the same
    # whatever follows it.
    assert not session.wants_lookahead(b"DATA\r\n")
    assert not session.wants_lookahead(b"hi\r\n.\r\n")


def _data_outcome(chunks: list[bytes], bulk: bool, **settings: object) -> tuple:
    """What a session makes of DATA input fed in `chunks`: the replies, the body the
    draft would get, and the message's headers and size."""
    session = started(**settings)
    session.bulk_body = bulk
    ehlo(session)
    session.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<bob>\r\nDATA\r\n")
    outputs: list = []
    for chunk in chunks:
        outputs += session.feed(chunk)
    body = b"".join(o.data for o in outputs if isinstance(o, BodyChunk))
    done = [(o.headers, o.size) for o in outputs if isinstance(o, MessageComplete)]
    aborted = [o.reason for o in outputs if isinstance(o, MessageAborted)]
    return replies(outputs), body, done, aborted, session.closed


_DATA_BYTES = st.lists(
    st.sampled_from([b".", b"..", b"\r\n", b"\r", b"\n", b"a", b" ", b"\r\n.\r\n", b"\xc3\xa9"]),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    head=st.sampled_from([b"", b"Subject: x\r\n\r\n", b"Subject: x\r\n"]),
    parts=_DATA_BYTES,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
    limit=st.sampled_from([0, 40]),
)
def test_body_runs_give_what_the_line_by_line_loop_gives(head, parts, cuts, limit):
    data = head + b"".join(parts) + b"\r\n.\r\nQUIT\r\n"
    points = sorted({cut for cut in cuts if cut < len(data)} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    expected = _data_outcome(chunks, bulk=False, max_message_size=limit)
    assert _data_outcome(chunks, bulk=True, max_message_size=limit) == expected


def test_body_runs_unstuff_dots_and_stop_at_the_end_of_data():
    data = b"Subject: x\r\n\r\n..one\r\ntwo\r\n.three\r\n..\r\n.\r\nNOOP\r\n"
    outcome = _data_outcome([data], bulk=True)
    replies_, body, done, aborted, closed = outcome
    assert body == b".one\ntwo\nthree\n.\n"
    # The message is complete and waits for the queue; the NOOP behind it waits too.
    assert [size for _headers, size in done] == [len(b"Subject: x\n\n") + len(body)]
    assert (replies_, aborted, closed) == ([], [], False)
