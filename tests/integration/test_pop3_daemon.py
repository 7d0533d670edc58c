"""The POP3 daemon over real sockets on 127.0.0.1, with poplib, over mailboxes written by
pysendmail's own delivery code (mbox and Maildir)."""

from __future__ import annotations

import base64
import logging
import os
import poplib
import re
import socket
import threading

import pytest

from pysendmail import maildrop
from pysendmail.daemons.pop3_maildrops import local_maildrops
from pysendmail.delivery.prog import RunIdentity
from pysendmail.log import LOGGER_NAME
from pysendmail.protocol.pop3wire import crlf_message
from tests.integration.pop3_support import PASSWORDS, message, running_pop3

FORMATS = ["mbox", "maildir"]


def content_lines(data: bytes) -> list[bytes]:
    """The lines poplib gives back for a message delivered as `data`."""
    return crlf_message(data).split(b"\r\n")[:-1]


def error_of(call, *args) -> bytes:
    with pytest.raises(poplib.error_proto) as caught:
        call(*args)
    return caught.value.args[0]


@pytest.fixture(params=FORMATS)
def pop3(request, tmp_path):
    with running_pop3(tmp_path, request.param) as fixture:
        for number in (1, 2, 3):
            fixture.deliver("alice", message(number))
        yield fixture


def test_every_transaction_command(pop3):
    delivered = [pop3.as_stored(data) for data in pop3.delivered["alice"]]
    client = pop3.client()
    assert client.getwelcome().startswith(b"+OK pop.example.com POP3 server ready")
    capa = client.capa()
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "SASL"} <= capa.keys()
    assert client.user("alice").startswith(b"+OK")
    assert client.pass_(PASSWORDS["alice"]).startswith(b"+OK maildrop has 3 messages")
    sizes = [len(crlf_message(data)) for data in delivered]
    assert client.stat() == (3, sum(sizes))
    _, listing, _ = client.list()
    assert listing == [f"{n} {size}".encode() for n, size in enumerate(sizes, start=1)]
    assert client.list(2) == f"+OK 2 {sizes[1]}".encode()
    for number, data in enumerate(delivered, start=1):
        _, lines, _ = client.retr(number)
        assert lines == content_lines(data)
        assert b".a line starting with a dot" in lines
    _, top_lines, _ = client.top(1, 1)
    assert top_lines[-2:] == [b"", b"Body of message 1."]
    _, uids, _ = client.uidl()
    assert len({line.split()[1] for line in uids}) == 3
    assert client.uidl(1) == b"+OK 1 " + uids[0].split()[1]
    assert client.noop().startswith(b"+OK")
    assert client.dele(2) == b"+OK message 2 deleted"
    assert client.stat()[0] == 2
    assert client.rset().startswith(b"+OK maildrop has 3")
    assert client.dele(1).startswith(b"+OK")
    assert client.quit().startswith(b"+OK")
    again = pop3.login()
    assert again.stat()[0] == 2
    _, lines, _ = again.retr(1)
    assert b"Subject: message 2" in lines
    again.quit()


def test_uidls_stay_the_same_across_sessions_and_deliveries(pop3):
    client = pop3.login()
    first = client.uidl()[1]
    client.dele(1)
    client.quit()
    pop3.deliver("alice", message(4))
    client = pop3.login()
    second = client.uidl()[1]
    client.quit()
    uid_of = lambda listing: [line.split()[1] for line in listing]  # noqa: E731
    assert uid_of(second)[:2] == uid_of(first)[1:]
    assert uid_of(second)[2] not in uid_of(first)


def test_dropped_connection_after_dele_deletes_nothing(pop3):
    before = pop3.snapshot()
    client = pop3.login()
    client.dele(1)
    client.dele(3)
    client.file.close()
    client.sock.close()  # no QUIT
    assert pop3.daemon.wait_idle(10)
    again = pop3.login()
    assert again.stat()[0] == 3
    again.quit()
    assert pop3.snapshot() == before


def test_quit_removes_exactly_the_deleted_messages(pop3):
    client = pop3.login()
    client.dele(2)
    client.quit()
    client = pop3.login()
    subjects = [
        next(line for line in client.retr(n)[1] if line.startswith(b"Subject:")) for n in (1, 2)
    ]
    client.quit()
    assert subjects == [b"Subject: message 1", b"Subject: message 3"]


def test_deliveries_during_a_session_are_kept_and_not_deleted(pop3):
    client = pop3.login()
    assert client.stat()[0] == 3
    arrivals = [threading.Thread(target=pop3.deliver, args=("alice", message(n))) for n in (4, 5)]
    for thread in arrivals:
        thread.start()
    for thread in arrivals:
        thread.join()
    assert client.stat()[0] == 3  # the index of this session was taken at login
    for number in (1, 2, 3):
        client.dele(number)
    assert client.quit().startswith(b"+OK")
    client = pop3.login()
    count, _ = client.stat()
    subjects = sorted(
        next(line for line in client.retr(n)[1] if line.startswith(b"Subject:"))
        for n in range(1, count + 1)
    )
    client.quit()
    assert subjects == [b"Subject: message 4", b"Subject: message 5"]


def test_second_session_on_the_same_maildrop_is_in_use(pop3):
    first = pop3.login()
    second = pop3.client()
    second.user("alice")
    assert error_of(second.pass_, PASSWORDS["alice"]).startswith(b"-ERR [IN-USE]")
    other_user = pop3.login("bob")
    assert other_user.stat() == (0, 0)
    other_user.quit()
    first.quit()  # the maildrop is given up before QUIT's reply is sent
    second.user("alice")
    assert second.pass_(PASSWORDS["alice"]).startswith(b"+OK")
    second.quit()


@pytest.mark.parametrize(
    ("user", "password"), [("alice", "wrong"), ("nobody", "alice pass"), ("alice", "")]
)
def test_failed_login_says_auth_only(pop3, user, password):
    client = pop3.client()
    client.user(user)
    assert error_of(client.pass_, password) == b"-ERR [AUTH] Authentication failed"
    client.quit()


def test_errors_for_bad_commands_and_arguments(pop3):
    client = pop3.client()
    assert error_of(client.stat) == b"-ERR STAT not valid in the AUTHORIZATION state"
    assert error_of(client.pass_, "x") == b"-ERR USER first"
    assert error_of(client._shortcmd, "XYZZY") == b"-ERR unknown command"
    client.user("alice")
    client.pass_(PASSWORDS["alice"])
    assert error_of(client.retr, 0) == b"-ERR no such message"
    assert error_of(client.retr, 99999) == b"-ERR no such message"
    assert error_of(client.top, 1, -1) == b"-ERR invalid line count"
    assert error_of(client.list, "x") == b"-ERR invalid message number"
    assert error_of(client.user, "bob") == b"-ERR USER not valid in the TRANSACTION state"
    client.dele(1)
    assert error_of(client.dele, 1) == b"-ERR message 1 already deleted"
    assert error_of(client.retr, 1) == b"-ERR message 1 already deleted"
    assert error_of(client._shortcmd, "NOOP\0") == b"-ERR NUL byte in command"
    client.quit()


def test_overlong_line_is_refused_and_the_session_goes_on(pop3):
    with socket.create_connection(("127.0.0.1", pop3.port), timeout=10) as raw:
        reader = raw.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        raw.sendall(b"USER " + b"x" * 10000 + b"\r\n")
        assert reader.readline() == b"-ERR line too long\r\n"
        raw.sendall(b"USER alice\r\nPASS alice pass\r\nSTAT\r\nQUIT\r\n")
        replies = [reader.readline() for _ in range(4)]
        assert all(reply.startswith(b"+OK") for reply in replies)


def test_auth_plain_logs_in(pop3):
    client = pop3.client()
    token = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode()).decode()
    assert client._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK maildrop has 3")
    assert client.stat()[0] == 3
    client.quit()


def test_apop_is_not_offered_without_apop_secrets(pop3):
    client = pop3.client()
    assert b"<" not in client.getwelcome()
    # poplib itself declines APOP without a timestamp in the greeting; send it by hand.
    assert error_of(client._shortcmd, f"APOP alice {'0' * 32}") == b"-ERR APOP not available"
    client.quit()


APOP_SECRETS = {"alice": "tanstaaftanstaaf"}


def test_apop_logs_in_with_the_shared_secret_and_a_fresh_timestamp(tmp_path):
    with running_pop3(tmp_path, apop_secret=APOP_SECRETS.get) as pop3:
        pop3.deliver("alice", message(1))
        client, other = pop3.client(), pop3.client()
        banner = re.compile(rb"<(\d+)\.(\d+)@pop\.example\.com>$")
        stamps = [banner.search(c.getwelcome()) for c in (client, other)]
        assert all(stamps) and stamps[0].group(1) == str(os.getpid()).encode()
        assert stamps[0].group(0) != stamps[1].group(0)
        assert client.apop("alice", APOP_SECRETS["alice"]).startswith(b"+OK maildrop has 1")
        assert client.stat()[0] == 1
        client.quit()
        # a wrong secret, and a user with a password but no APOP secret: the same answer
        for user, secret in (("alice", "wrong"), ("bob", PASSWORDS["bob"])):
            assert error_of(other.apop, user, secret) == b"-ERR [AUTH] Authentication failed"
        other.quit()


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_corrupt_mbox_says_sys_perm_is_logged_and_left_untouched(tmp_path):
    collected = Collected()
    daemon_logger = logging.getLogger(f"{LOGGER_NAME}.pop3d")
    daemon_logger.addHandler(collected)
    try:
        corrupt_mbox_session(tmp_path)
    finally:
        daemon_logger.removeHandler(collected)
    assert any("not an mbox" in line and "alice" in line for line in collected.lines)


def corrupt_mbox_session(tmp_path):
    with running_pop3(tmp_path, "mbox") as pop3:
        garbage = b"\x00\x01 this is not an mbox\nFrom nowhere\n\xff\xfe" * 100
        pop3.mailbox("alice").write_bytes(garbage)
        before = pop3.mailbox("alice").stat()
        client = pop3.client()
        client.user("alice")
        assert error_of(client.pass_, PASSWORDS["alice"]).startswith(b"-ERR [SYS/PERM]")
        client.quit()
        after = pop3.mailbox("alice").stat()
        assert pop3.mailbox("alice").read_bytes() == garbage
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        # nothing beside it but the session lock file (no temporary copy left behind)
        assert sorted(p.name for p in pop3.spool.iterdir()) == [".alice.pop3.lock", "alice"]


def test_mailbox_of_the_wrong_kind_is_refused(tmp_path):
    with running_pop3(tmp_path, "maildir") as pop3:
        pop3.mailbox("alice").write_bytes(b"From x Thu Nov 26 12:00:00 2026\n\nhi\n")
        client = pop3.client()
        client.user("alice")
        assert error_of(client.pass_, PASSWORDS["alice"]).startswith(b"-ERR [SYS/PERM]")
        client.quit()


def test_plaintext_login_refused_without_tls_unless_allowed(tmp_path):
    with running_pop3(tmp_path, tls=True, allow_plaintext_auth=False) as pop3:
        client = pop3.client()
        assert "STLS" in client.capa() and "USER" not in client.capa()
        assert error_of(client.user, "alice").startswith(b"-ERR [AUTH] Plaintext")
        client.quit()


def test_stls_then_login(tmp_path):
    with running_pop3(tmp_path, tls=True, allow_plaintext_auth=False) as pop3:
        pop3.deliver("alice", message(1))
        client = pop3.client()
        assert client.stls(pop3.client_context()).startswith(b"+OK")
        assert "STLS" not in client.capa()
        client.user("alice")
        client.pass_(PASSWORDS["alice"])
        assert client.retr(1)[1] == content_lines(pop3.as_stored(message(1)))
        client.quit()


def test_pop3s_listener(tmp_path):
    with running_pop3(tmp_path, "maildir", pop3s=True, allow_plaintext_auth=False) as pop3:
        pop3.deliver("alice", message(1))
        port = pop3.addresses[1][1]
        client = poplib.POP3_SSL("127.0.0.1", port, context=pop3.client_context(), timeout=10)
        assert "STLS" not in client.capa()
        client.user("alice")
        client.pass_(PASSWORDS["alice"])
        client.dele(1)
        client.quit()
        assert list((pop3.mailbox() / "new").iterdir()) == []


def test_shutdown_cuts_open_sessions_without_deleting(tmp_path):
    with running_pop3(tmp_path) as pop3:
        pop3.deliver("alice", message(1))
        before = pop3.snapshot()
        client = pop3.login()
        client.dele(1)
        pop3.daemon.shutdown(drain_timeout=0.1)
        with pytest.raises((poplib.error_proto, OSError)):
            client.quit()
        assert pop3.snapshot() == before
        with pytest.raises(OSError):
            pop3.client(timeout=2)


def test_reload_applies_to_new_sessions(tmp_path):
    with running_pop3(tmp_path) as pop3:
        pop3.deliver("alice", message(1))
        old = pop3.login()
        from pysendmail.record import replace

        pop3.daemon.reload(replace(pop3.daemon.service, hostname="renamed.example.com"))
        new = pop3.client()
        assert new.getwelcome().startswith(b"+OK renamed.example.com")
        new.quit()
        assert old.stat()[0] == 1
        assert old.quit().startswith(b"+OK pop.example.com")


def test_connection_limit_refuses_with_sys_temp(tmp_path):
    with running_pop3(tmp_path, max_sessions=1) as pop3:
        first = pop3.client()
        with socket.create_connection(("127.0.0.1", pop3.port), timeout=10) as raw:
            assert raw.makefile("rb").readline().startswith(b"-ERR [SYS/TEMP]")
        first.quit()


def test_sessions_racing_a_stream_of_deliveries_lose_nothing(pop3):
    """Deliveries keep arriving while sessions delete what they saw and QUIT: in the end
    every delivered message was either deleted by a session that listed it, or is there."""
    arrivals = [message(number) for number in range(100, 140)]

    def deliver_all():
        for data in arrivals:
            pop3.deliver("alice", data)

    deliverer = threading.Thread(target=deliver_all)
    deliverer.start()
    deleted_ids: list[bytes] = []
    while deliverer.is_alive():
        client = pop3.login()
        count, _ = client.stat()
        for number in range(1, count + 1):
            header = client.top(number, 0)[1]
            deleted_ids += [line for line in header if line.startswith(b"Message-ID:")]
            client.dele(number)
        client.quit()
    deliverer.join()
    client = pop3.login()
    count, _ = client.stat()
    left_ids = [
        line
        for number in range(1, count + 1)
        for line in client.top(number, 0)[1]
        if line.startswith(b"Message-ID:")
    ]
    client.quit()
    delivered_ids = [f"Message-ID: <{n}@example.com>".encode() for n in (1, 2, 3, *range(100, 140))]
    assert sorted(deleted_ids + left_ids) == sorted(delivered_ids)


def test_idle_session_is_closed_without_deleting(tmp_path):
    with running_pop3(tmp_path, idle_timeout=0.3) as pop3:
        pop3.deliver("alice", message(1))
        before = pop3.snapshot()
        client = pop3.login()
        client.dele(1)
        assert client.file.readline() == b""  # the server hung up on the idle client
        assert pop3.daemon.wait_idle(10)
        assert pop3.snapshot() == before


def test_maildir_found_where_local_delivery_puts_it_by_its_template(tmp_path):
    """With a LocalMaildir template ($z = the user's home), as delivery/local.py uses it."""
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    identity = RunIdentity("alice", os.getuid(), os.getgid(), str(home))
    opener = local_maildrops(
        tmp_path / "spool",
        "maildir",
        maildir_template="$z/Maildir",
        user_lookup=lambda user: identity if user == "alice" else None,
    )
    with running_pop3(tmp_path, "maildir", open_maildrop=opener) as pop3:
        maildrop.deliver_maildir(home / "Maildir", [message(1)])
        client = pop3.login()
        assert client.stat()[0] == 1
        client.dele(1)
        client.quit()
        assert list((home / "Maildir" / "new").iterdir()) == []


def test_mbox_index_kept_between_sessions_serves_the_next_one(tmp_path):
    with running_pop3(tmp_path, "mbox") as pop3:
        for number in (1, 2):
            pop3.deliver("alice", message(number))
        client = pop3.login()
        first = client.uidl()[1]
        client.quit()
        saved = pop3.spool / ".alice.pop3.index"
        assert saved.exists()
        pop3.deliver("alice", message(3))
        client = pop3.login()
        assert client.uidl()[1][:2] == first
        assert b"Subject: message 3" in client.retr(3)[1]
        client.quit()
        # the index now describes the grown mbox (its key: magic, version, dev, ino, size)
        key = saved.read_bytes().split(b"\n", 1)[0].split(b" ")
        assert int(key[4]) == pop3.mailbox().stat().st_size
