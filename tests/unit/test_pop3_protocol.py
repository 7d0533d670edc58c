"""The POP3 session state machine, driven with bytes and read through its events (no sockets).

The maildrop here is an in-memory list standing in for an opened mailbox; it records what
the session asked of it (commit, release) so the tests can pin when deletions happen.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.errors import MailError, TempFailure
from pysendmail.protocol.pop3 import (
    MAX_COMMAND_LINE,
    Close,
    Log,
    MaildropInUse,
    Pause,
    Pop3Session,
    Send,
    SessionSettings,
    StartTLS,
    State,
    Stream,
    unique_id,
)
from pysendmail.protocol.pop3wire import crlf_message, crlf_size, dot_stuff, top_of

MESSAGES = [
    b"From: a@example.com\nSubject: one\n\nfirst body\n.hidden dot line\n..two dots\nend\n",
    b"From: b@example.com\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n",
    b"Subject: no final newline\n\nlast line",
]


@dataclass(frozen=True)
class Info:
    uid: str
    wire_size: int


class MemoryMaildrop:
    def __init__(self, messages: list[bytes]) -> None:
        self.stored = list(messages)
        self.committed: list[frozenset[int]] = []
        self.closed = 0
        self.damaged_reads: set[int] = set()
        self.messages = [
            Info(uid=f"uid-{number}", wire_size=crlf_size(message))
            for number, message in enumerate(self.stored, start=1)
        ]

    def iter_bytes(self, number: int, chunk_size: int = 65536):
        if number in self.damaged_reads:
            raise MailError("bad bytes at offset 12")
        stored = self.stored[number - 1]
        for start in range(0, len(stored), chunk_size):
            yield stored[start : start + chunk_size]

    def commit(self, deleted) -> None:
        self.committed.append(frozenset(deleted))

    def close(self) -> None:
        self.closed += 1


PASSWORDS = {"alice": "secret pass", "bob": "hunter2"}


def sent(events: list) -> bytes:
    """The bytes the daemon would write for these events, streams pulled whole."""
    return b"".join(
        e.data if isinstance(e, Send) else b"".join(e.blocks)
        for e in events
        if isinstance(e, Send | Stream)
    )


class Harness:
    def __init__(
        self, *, opener=None, apop: bool = False, timestamp: str | None = None, **settings
    ) -> None:
        self.maildrop = MemoryMaildrop(MESSAGES)
        self.opened: list[str] = []

        def open_maildrop(user: str) -> MemoryMaildrop:
            self.opened.append(user)
            if opener is not None:
                return opener(user)
            return self.maildrop

        settings.setdefault("allow_plaintext_auth", True)
        self.session = Pop3Session(
            SessionSettings(hostname="pop.example.com", **settings),
            lambda user, password: PASSWORDS.get(user) == password,
            open_maildrop,
            apop_secret=PASSWORDS.get if apop else None,
            apop_timestamp=timestamp or "<1896.697170952@pop.example.com>",
        )
        self.greeting = b"".join(e.data for e in self.session.greeting() if isinstance(e, Send))

    def events(self, data: bytes) -> list:
        return self.session.receive(data)

    def say(self, line: str | bytes) -> bytes:
        data = line if isinstance(line, bytes) else line.encode() + b"\r\n"
        return sent(self.events(data))

    def login(self) -> None:
        assert self.say("USER alice").startswith(b"+OK")
        assert self.say("PASS secret pass").startswith(b"+OK")


# ---------------------------------------------------------------- wire form


@given(st.binary(max_size=200))
def test_crlf_size_counts_the_octets_crlf_message_sends(raw):
    assert crlf_size(raw) == len(crlf_message(raw))


@given(st.lists(st.text(alphabet="ab.\r", max_size=6), max_size=8))
def test_dot_stuffing_round_trips_through_a_client_reading_lines(lines):
    text = crlf_message("\n".join(lines).encode() + b"\n")
    stuffed = dot_stuff(text)
    received = [line[1:] if line.startswith(b".") else line for line in stuffed.split(b"\r\n")[:-1]]
    assert b"\r\n".join(received) + b"\r\n" == text
    assert b"\r\n.\r\n" not in b"\r\n" + stuffed


def test_crlf_message_turns_bare_lf_into_crlf_and_ends_the_last_line():
    assert crlf_message(b"a\nb\r\nc") == b"a\r\nb\r\nc\r\n"
    assert crlf_message(b"") == b""


def test_top_gives_headers_blank_line_and_n_body_lines():
    text = crlf_message(MESSAGES[1])
    assert top_of(text, 0) == b"From: b@example.com\r\nSubject: two\r\n\r\n"
    assert top_of(text, 2).endswith(b"\r\n\r\nline 1\r\nline 2\r\n")
    assert top_of(text, 99) == text
    assert top_of(b"only: header\r\n", 1) == b"only: header\r\n"


# ---------------------------------------------------------------- authorization


def test_greeting_carries_apop_timestamp_only_when_apop_is_offered():
    assert Harness().greeting == b"+OK pop.example.com POP3 server ready\r\n"
    assert Harness(apop=True).greeting.endswith(b"<1896.697170952@pop.example.com>\r\n")


def test_user_pass_login_opens_the_maildrop_and_enters_transaction():
    h = Harness()
    assert h.say("user alice") == b"+OK send PASS\r\n"
    reply = h.say("PASS secret pass")
    octets = sum(crlf_size(m) for m in MESSAGES)
    assert reply == f"+OK maildrop has 3 messages ({octets} octets)\r\n".encode()
    assert h.session.state is State.TRANSACTION
    assert h.opened == ["alice"]


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "wrong"), ("nobody", "secret pass"), ("bob", "")]
)
def test_failed_login_says_auth_without_naming_the_wrong_part_and_pauses(user, password):
    h = Harness(failed_login_delay=1.5)
    h.say(f"USER {user}")
    events = h.events(f"PASS {password}\r\n".encode())
    sends = [e for e in events if isinstance(e, Send)]
    pauses = [e for e in events if isinstance(e, Pause)]
    assert [s.data for s in sends] == [b"-ERR [AUTH] Authentication failed\r\n"]
    assert pauses == [Pause(1.5)]
    assert events.index(pauses[0]) < events.index(sends[0])
    assert any(isinstance(e, Log) and e.level == logging.WARNING for e in events)
    assert h.opened == []
    assert h.session.state is State.AUTHORIZATION


def test_failed_logins_double_the_delay_then_close_the_connection():
    h = Harness(failed_login_delay=1.0, max_failed_logins=3)
    pauses = []
    for _ in range(3):
        h.say("USER alice")
        events = h.events(b"PASS nope\r\n")
        pauses += [e.seconds for e in events if isinstance(e, Pause)]
    assert pauses == [1.0, 2.0, 4.0]
    assert isinstance(events[-1], Close)
    assert h.session.closed
    assert h.events(b"USER alice\r\n") == []


def test_pass_without_user_is_an_error():
    h = Harness()
    assert h.say("PASS secret pass") == b"-ERR USER first\r\n"


def test_password_may_contain_spaces():
    h = Harness()
    h.say("USER alice")
    assert h.say("PASS secret pass").startswith(b"+OK maildrop")


def test_plaintext_login_refused_before_tls_unless_allowed():
    h = Harness(allow_plaintext_auth=False, tls_available=True)
    refused = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connection\r\n"
    assert h.say("USER alice") == refused
    assert h.say("PASS secret pass") == refused
    assert h.say("AUTH PLAIN " + base64.b64encode(b"\0alice\0secret pass").decode()) == refused
    capa = h.say("CAPA")
    assert b"STLS\r\n" in capa
    assert b"USER\r\n" not in capa and b"SASL PLAIN" not in capa
    assert h.opened == []


def test_stls_then_login_and_pipelined_plaintext_is_dropped():
    h = Harness(allow_plaintext_auth=False, tls_available=True)
    events = h.events(b"STLS\r\nUSER alice\r\n")
    assert events == [Send(b"+OK Begin TLS negotiation\r\n"), StartTLS()]
    h.session.tls_started()
    assert h.say("PASS secret pass") == b"-ERR USER first\r\n"
    capa = h.say("CAPA")
    assert b"STLS" not in capa and b"USER\r\n" in capa
    assert h.say("STLS") == b"-ERR TLS already active\r\n"
    h.login()
    assert h.session.state is State.TRANSACTION


def test_stls_without_a_tls_context_is_refused():
    h = Harness()
    assert h.say("STLS") == b"-ERR STLS not available\r\n"
    assert b"STLS" not in h.say("CAPA")


def test_pop3s_connection_allows_plaintext_login_and_offers_no_stls():
    h = Harness(allow_plaintext_auth=False, tls_available=True, tls_active=True)
    assert b"STLS" not in h.say("CAPA")
    h.login()


def test_apop_with_the_right_digest_logs_in():
    # RFC 1939's own example: this timestamp and secret give this digest.
    h = Harness(apop=True, timestamp="<1896.697170952@dbc.mtview.ca.us>")
    PASSWORDS["mrose"] = "tanstaaf"
    try:
        digest = hashlib.md5(b"<1896.697170952@dbc.mtview.ca.us>tanstaaf").hexdigest()
        assert digest == "c4c9334bac560ecc979e58001b3e22fb"
        assert h.say(f"APOP mrose {digest}").startswith(b"+OK maildrop")
    finally:
        del PASSWORDS["mrose"]


@pytest.mark.parametrize("user", ["alice", "nobody"])
def test_apop_with_a_wrong_digest_or_user_fails_alike(user):
    h = Harness(apop=True)
    assert h.say(f"APOP {user} {'0' * 32}") == b"-ERR [AUTH] Authentication failed\r\n"


def test_apop_is_refused_when_not_offered():
    assert Harness().say(f"APOP alice {'0' * 32}") == b"-ERR APOP not available\r\n"


def test_auth_plain_with_initial_response():
    h = Harness()
    token = base64.b64encode(b"\0alice\0secret pass").decode()
    assert h.say(f"AUTH PLAIN {token}").startswith(b"+OK maildrop has 3")


def test_auth_plain_with_continuation_and_cancel():
    h = Harness()
    assert h.say("AUTH PLAIN") == b"+ \r\n"
    assert h.say("*") == b"-ERR AUTH cancelled\r\n"
    assert h.say("AUTH PLAIN") == b"+ \r\n"
    assert h.say(base64.b64encode(b"alice\0alice\0secret pass").decode()).startswith(b"+OK")


@pytest.mark.parametrize(
    "token",
    [
        base64.b64encode(b"\0alice\0wrong").decode(),
        base64.b64encode(b"bob\0alice\0secret pass").decode(),  # act as another user
    ],
)
def test_auth_plain_failures_say_auth(token):
    h = Harness()
    assert h.say(f"AUTH PLAIN {token}") == b"-ERR [AUTH] Authentication failed\r\n"
    assert h.opened == []


def test_auth_plain_malformed_response_and_unknown_mechanism():
    h = Harness()
    assert h.say("AUTH PLAIN not*base64") == b"-ERR [AUTH] Invalid AUTH PLAIN response\r\n"
    assert h.say("AUTH CRAM-MD5") == b"-ERR Unsupported authentication mechanism\r\n"
    assert h.say("AUTH") == b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"


def test_maildrop_in_use_temporary_and_damaged_give_response_codes():
    def raiser(error):
        def opener(user):
            raise error

        return opener

    cases = [
        (MaildropInUse("alice"), b"-ERR [IN-USE] "),
        (TempFailure("lock timeout"), b"-ERR [SYS/TEMP] "),
        (OSError(5, "I/O error"), b"-ERR [SYS/TEMP] "),
        (MailError("not an mbox"), b"-ERR [SYS/PERM] "),
    ]
    for error, prefix in cases:
        h = Harness(opener=raiser(error))
        h.say("USER alice")
        events = h.events(b"PASS secret pass\r\n")
        reply = b"".join(e.data for e in events if isinstance(e, Send))
        assert reply.startswith(prefix)
        assert any(isinstance(e, Log) for e in events)
        assert h.session.state is State.AUTHORIZATION


# ---------------------------------------------------------------- transaction


def logged_in() -> Harness:
    h = Harness()
    h.login()
    return h


def test_stat_and_list_report_crlf_sizes():
    h = logged_in()
    sizes = [len(crlf_message(m)) for m in MESSAGES]
    assert h.say("STAT") == f"+OK 3 {sum(sizes)}\r\n".encode()
    listing = "".join(f"{i + 1} {s}\r\n" for i, s in enumerate(sizes))
    assert h.say("LIST") == f"+OK messages follows\r\n{listing}.\r\n".encode()
    assert h.say("LIST 2") == f"+OK 2 {sizes[1]}\r\n".encode()


def test_retr_sends_crlf_byte_stuffed_message_of_the_listed_size():
    h = logged_in()
    reply = h.say("RETR 1")
    first, _, rest = reply.partition(b"\r\n")
    assert first == f"+OK {crlf_size(MESSAGES[0])} octets".encode()
    assert rest.endswith(b"\r\nend\r\n.\r\n")
    assert b"\r\n..hidden dot line\r\n...two dots\r\n" in rest
    assert h.say("RETR 3").endswith(b"\r\nlast line\r\n.\r\n")


def test_top_sends_headers_and_requested_body_lines():
    h = logged_in()
    assert h.say("TOP 2 1") == (
        b"+OK top of message follows\r\nFrom: b@example.com\r\nSubject: two\r\n\r\nline 1\r\n.\r\n"
    )
    assert h.say("TOP 2 0").endswith(b"Subject: two\r\n\r\n.\r\n")


def test_uidl_lists_the_maildrop_uids():
    h = logged_in()
    listing = b"1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n"
    assert h.say("UIDL") == b"+OK unique-id listing follows\r\n" + listing + b".\r\n"
    assert h.say("UIDL 3") == b"+OK 3 uid-3\r\n"


def test_dele_hides_the_message_and_rset_brings_it_back():
    h = logged_in()
    assert h.say("DELE 2") == b"+OK message 2 deleted\r\n"
    assert h.say("DELE 2") == b"-ERR message 2 already deleted\r\n"
    assert h.say("RETR 2") == b"-ERR message 2 already deleted\r\n"
    assert h.say("STAT").startswith(b"+OK 2 ")
    assert b"\r\n2 " not in h.say("LIST")
    assert b"uid-2" not in h.say("UIDL")
    assert h.say("RSET").startswith(b"+OK maildrop has 3 messages")
    assert h.say("RETR 2").startswith(b"+OK")


def test_quit_commits_deletions_in_update_state():
    h = logged_in()
    h.say("DELE 1")
    h.say("DELE 3")
    events = h.events(b"QUIT\r\n")
    assert h.maildrop.committed == [frozenset({1, 3})]
    assert h.maildrop.closed == 1
    assert b"(1 messages left)" in events[-2].data
    assert isinstance(events[-1], Close)
    assert h.session.closed


def test_quit_without_deletions_releases_without_commit():
    h = logged_in()
    h.say("QUIT")
    assert h.maildrop.committed == []
    assert h.maildrop.closed == 1


def test_dropped_connection_after_dele_deletes_nothing():
    h = logged_in()
    h.say("DELE 1")
    events = h.session.connection_lost()
    assert h.maildrop.committed == []
    assert h.maildrop.closed == 1
    assert any(isinstance(e, Log) for e in events)


def test_commit_failure_says_sys_temp_and_releases():
    h = logged_in()

    def failing_commit(deleted):
        raise OSError("disk full")

    h.maildrop.commit = failing_commit
    h.say("DELE 1")
    assert h.say("QUIT") == b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n"
    assert h.maildrop.closed == 1


def test_damaged_message_read_says_sys_perm_and_session_goes_on():
    h = logged_in()
    h.maildrop.damaged_reads.add(2)
    damaged = b"-ERR [SYS/PERM] Message cannot be read; ask the postmaster\r\n"
    assert h.say("RETR 2") == damaged
    assert h.say("TOP 2 0") == damaged
    assert h.say("RETR 1").startswith(b"+OK")


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        ("RETR 0", b"-ERR no such message\r\n"),
        ("RETR 99999", b"-ERR no such message\r\n"),
        ("RETR 99999999999999999999", b"-ERR invalid message number\r\n"),
        ("RETR -1", b"-ERR invalid message number\r\n"),
        ("RETR +1", b"-ERR invalid message number\r\n"),
        ("RETR x", b"-ERR invalid message number\r\n"),
        ("RETR", b"-ERR one message number expected\r\n"),
        ("RETR 1 2", b"-ERR one message number expected\r\n"),
        ("DELE 4", b"-ERR no such message\r\n"),
        ("LIST 0", b"-ERR no such message\r\n"),
        ("UIDL 4", b"-ERR no such message\r\n"),
        ("TOP 1 -1", b"-ERR invalid line count\r\n"),
        ("TOP 1", b"-ERR TOP takes a message number and a line count\r\n"),
        ("TOP 0 1", b"-ERR no such message\r\n"),
        ("STAT 1", b"-ERR no argument expected\r\n"),
        ("USER bob", b"-ERR USER not valid in the TRANSACTION state\r\n"),
        ("STLS", b"-ERR STLS not valid in the TRANSACTION state\r\n"),
        ("XYZZY", b"-ERR unknown command\r\n"),
        ("", b"-ERR unknown command\r\n"),
    ],
)
def test_bad_arguments_in_transaction(command, reply):
    h = logged_in()
    assert h.say(command) == reply
    assert h.session.state is State.TRANSACTION


@pytest.mark.parametrize("command", ["STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "UIDL"])
def test_transaction_commands_refused_before_login(command):
    h = Harness()
    keyword = command.split()[0]
    assert h.say(command) == f"-ERR {keyword} not valid in the AUTHORIZATION state\r\n".encode()


def test_commands_are_case_insensitive_and_bare_lf_is_accepted():
    h = logged_in()
    assert h.say(b"stat\n").startswith(b"+OK 3 ")
    assert h.say(b"noop\r\n") == b"+OK \r\n"


def test_nul_byte_and_bad_utf8_are_refused():
    h = Harness()
    assert h.say(b"USER al\0ice\r\n") == b"-ERR NUL byte in command\r\n"
    assert h.say(b"USER \xff\xfe\r\n") == b"-ERR command is not valid UTF-8\r\n"
    h.login()


def test_overlong_line_is_refused_whole_even_across_chunks():
    h = Harness()
    assert h.say(b"USER " + b"a" * (MAX_COMMAND_LINE + 10)) == b"-ERR line too long\r\n"
    assert h.say(b"b" * 5000) == b""
    assert h.say(b"c\r\nNOOP\r\n") == b"-ERR NOOP not valid in the AUTHORIZATION state\r\n"
    assert h.say(b"USER " + b"a" * 300 + b"\r\n") == b"-ERR line too long\r\n"
    h.login()


def test_commands_split_across_chunks_and_pipelined_in_one():
    h = Harness()
    assert h.say(b"US") == b""
    assert h.say(b"ER alice\r") == b""
    assert h.say(b"\nPASS secret pass\r\nSTAT\r\n").count(b"+OK") == 3


def test_too_many_bad_commands_close_the_connection_and_release_the_maildrop():
    h = Harness(max_bad_commands=5)
    h.login()
    for _ in range(4):
        assert h.say("BOGUS") == b"-ERR unknown command\r\n"
    h.say("DELE 1")
    events = h.events(b"BOGUS\r\n")
    assert isinstance(events[-1], Close)
    assert h.maildrop.committed == []
    assert h.maildrop.closed == 1


def test_capa_in_both_states():
    h = Harness()
    capa = h.say("CAPA")
    assert capa.startswith(b"+OK Capability list follows\r\n") and capa.endswith(b"\r\n.\r\n")
    for keyword in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"USER", b"SASL PLAIN"):
        assert b"\r\n" + keyword + b"\r\n" in capa
    h.login()
    capa = h.say("CAPA")
    assert b"\r\nTOP\r\n" in capa and b"USER" not in capa


def test_quit_in_authorization_closes_without_opening():
    h = Harness()
    events = h.events(b"QUIT\r\n")
    assert events[0].data.startswith(b"+OK")
    assert isinstance(events[-1], Close)
    assert h.opened == []


def test_unique_id_keeps_valid_uids_and_digests_others():
    assert unique_id("1764161022.M1P2Q3.host,S=10,W=11") == "1764161022.M1P2Q3.host,S=10,W=11"
    long_name = "1764161022.M1P2Q3." + "h" * 80
    assert len(unique_id(long_name)) == 40
    assert unique_id(long_name) == unique_id(long_name) != unique_id(long_name + "x")
    assert unique_id("with space") != "with space"


def test_overlong_sasl_response_ends_the_auth_exchange():
    h = Harness()
    assert h.say("AUTH PLAIN") == b"+ \r\n"
    assert h.say(b"A" * 5000 + b"\r\n") == b"-ERR line too long\r\n"
    assert h.say("STAT") == b"-ERR STAT not valid in the AUTHORIZATION state\r\n"


def test_failed_login_log_line_escapes_what_the_client_typed():
    h = Harness()
    token = base64.b64encode(b"\0evil\nname\0pw").decode()
    events = h.events(f"AUTH PLAIN {token}\r\n".encode())
    (line,) = [e.message for e in events if isinstance(e, Log)]
    assert "\n" not in line and "evil\\nname" in line


COMMAND_WORDS = st.sampled_from(
    ["USER alice", "PASS secret pass", "PASS x", "STAT", "LIST", "LIST 2", "RETR 1", "RETR 0",
     "TOP 1 0", "TOP 3 -1", "DELE 1", "DELE 9", "RSET", "UIDL", "NOOP", "CAPA", "STLS",
     "AUTH PLAIN", "AUTH", "*", "APOP alice 0", "QUIT", "", "\0", "x" * 300]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(COMMAND_WORDS.map(lambda w: w.encode() + b"\r\n"), st.binary(max_size=40)))
)
def test_any_input_gives_crlf_replies_and_never_raises(chunks):
    h = Harness()
    for chunk in chunks:
        for event in h.events(chunk):
            if isinstance(event, Send):
                assert event.data.endswith(b"\r\n")
                assert event.data[:1] in (b"+", b"-")
    h.session.connection_lost()
    assert len(h.maildrop.committed) <= 1
    assert h.maildrop.closed <= 1
