"""The SMTP daemon over real sockets on 127.0.0.1: smtplib and raw clients, the queue
directory it writes, TLS and AUTH with trustme certificates, limits, drain and reload."""

from __future__ import annotations

import io
import os
import shutil
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from pysendmail.config.model import DaemonSpec
from pysendmail.daemons.smtpd import serve_stdio
from tests.integration.smtp_support import PASSWORDS, make_service, running_smtp

MESSAGE = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: integration\r\n"
    b"Message-Id: <it-1@example.com>\r\n"
    b"\r\n"
    b"Hello Bob.\r\n"
    b".leading dot\r\n"
)


@pytest.fixture
def smtp(oracle_dir, tmp_path):
    with running_smtp(oracle_dir, tmp_path) as running:
        yield running


def test_smtplib_message_lands_in_the_queue(smtp):
    with smtp.client() as client:
        code, _ = client.ehlo("client.example.net")
        assert code == 250
        assert client.has_extn("pipelining") and client.has_extn("chunking")
        assert client.esmtp_features["size"] == "100000"
        refused = client.sendmail("<alice@example.com>", ["bob", "alice@example.com"], MESSAGE)
        assert refused == {}
    (qid,) = smtp.queued()
    assert smtp.body(qid) == b"Hello Bob.\n.leading dot\n"
    qf = smtp.store.read(qid)
    assert qf.sender == "<alice@example.com>"
    assert [r.address for r in qf.recipients] == ["<bob>", "<alice@example.com>"]
    received = qf.headers[0]
    assert received.name == "Received"
    assert received.value.startswith("from client.example.net (localhost [127.0.0.1])")
    assert f"with ESMTP id {qid}" in received.value
    assert [h.name for h in qf.headers[1:]] == ["From", "To", "Subject", "Message-Id"]
    assert qf.macros["r"] == "ESMTP" and qf.macros["s"] == "client.example.net"


def test_every_command_answers(smtp):
    raw = smtp.raw()
    assert raw.reply().startswith("220 mail.example.com ESMTP ")
    assert raw.command("HELO client.example.net").startswith("250 mail.example.com Hello")
    assert raw.command("NOOP") == "250 2.0.0 OK\r\n"
    assert raw.command("VERB") == "250 2.0.0 Verbose mode\r\n"
    assert raw.command("VRFY alice") == "250 2.1.5 <alice@mail.example.com>\r\n"
    assert raw.command("EXPN sales").startswith("250-2.1.5 <bob@mail.example.com>")
    assert raw.command("ETRN example.com") == ("250 2.0.0 Queuing for node example.com started\r\n")
    assert smtp.etrn_nodes == ["example.com"]
    assert raw.command("HELP").startswith("214-2.0.0 This is sendmail version 8.17.1.9")
    assert raw.command("RSET") == "250 2.0.0 Reset state\r\n"
    assert raw.command("STARTTLS") == "454 4.3.3 TLS not available after start\r\n"
    assert raw.command("BOGUS") == '500 5.5.1 Command unrecognized: "BOGUS"\r\n'
    assert raw.command("QUIT") == "221 2.0.0 mail.example.com closing connection\r\n"
    assert raw.rest() == b""


def test_refusals_leave_nothing_queued(smtp):
    with smtp.client() as client:
        client.ehlo("client.example.net")
        with pytest.raises(smtplib.SMTPSenderRefused) as sender:
            client.sendmail("spammer@spam.example.net", ["bob"], MESSAGE)
        assert sender.value.smtp_code == 550
        client.rset()
        with pytest.raises(smtplib.SMTPRecipientsRefused) as rcpt:
            client.sendmail("alice@example.com", ["nosuchuser"], MESSAGE)
        assert rcpt.value.recipients["nosuchuser"] == (550, b"5.1.1 <nosuchuser>... User unknown")
    assert smtp.queued() == []


def test_relaying_denied_for_a_remote_client(smtp):
    with smtp.client(source="127.0.0.2") as client:
        client.ehlo("client.example.net")
        client.mail("<alice@example.com>")
        assert client.rcpt("<user@remote.example.net>") == (
            550,
            b"5.7.1 <user@remote.example.net>... Relaying denied",
        )
        assert client.rcpt("<bob@example.com>")[0] == 250


def test_connect_rejected_client(smtp):
    with smtp.client(source="127.0.0.3") as client:
        client.ehlo("client.example.net")
        assert client.mail("<alice@example.com>") == (550, b"5.7.1 Access denied")


def test_bare_linefeed_in_data_closes_and_queues_nothing(smtp):
    raw = smtp.raw()
    raw.reply()
    raw.command("EHLO client.example.net")
    raw.command("MAIL FROM:<alice@example.com>")
    raw.command("RCPT TO:<bob>")
    assert raw.command("DATA").startswith("354")
    raw.send(b"Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n")
    assert raw.reply() == "421 4.5.0 Bare linefeed (LF) not allowed\r\n"
    assert raw.rest() == b""
    assert smtp.queued() == []
    assert os.listdir(smtp.store.queue_dir) == []


def test_command_too_long(smtp):
    raw = smtp.raw()
    raw.reply()
    raw.send(b"NOOP " + b"x" * 5000 + b"\r\n")
    assert raw.reply().startswith("421 4.7.0 mail.example.com Command too long, possible attack")
    assert raw.rest() == b""


def test_message_too_big_is_refused_after_the_data(smtp):
    with smtp.client() as client:
        client.ehlo("client.example.net")
        big = b"Subject: big\r\n\r\n" + (b"z" * 998 + b"\r\n") * 120
        client.mail("alice@example.com")  # no SIZE=: the limit is found in the data
        client.rcpt("bob")
        assert client.data(big) == (552, b"5.2.3 Message exceeds maximum fixed size (100000)")
        assert client.noop()[0] == 250
    assert smtp.queued() == []


def test_size_parameter_over_the_limit(smtp):
    with smtp.client() as client:
        client.ehlo("client.example.net")
        assert client.mail("alice@example.com", ["SIZE=200000"]) == (
            552,
            b"5.2.3 Message size exceeds fixed maximum message size (100000)",
        )


def test_too_many_hops(smtp):
    hops = b"".join(
        b"Received: from hop%d by x; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % n for n in range(26)
    )
    with smtp.client() as client:
        client.ehlo("client.example.net")
        with pytest.raises(smtplib.SMTPDataError) as caught:
            client.sendmail("alice@example.com", ["bob"], hops + b"\r\nloop\r\n")
        assert caught.value.smtp_code == 554
        assert caught.value.smtp_error.startswith(b"5.4.6 Too many hops 26 (25 max)")
    assert smtp.queued() == []


def test_pipelined_message_before_354_is_refused(smtp):
    raw = smtp.raw()
    raw.reply()
    raw.command("EHLO client.example.net")
    raw.send(
        b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n"
    )
    replies = raw.rest().decode()
    assert replies.endswith("554 5.5.0 SMTP protocol error\r\n")
    assert smtp.queued() == []


def test_bdat_chunks(smtp):
    raw = smtp.raw()
    raw.reply()
    raw.command("EHLO client.example.net")
    raw.command("MAIL FROM:<alice@example.com>")
    raw.command("RCPT TO:<bob>")
    part = b"Subject: chunked\r\n\r\nfirst\r\n"
    raw.send(b"BDAT %d\r\n" % len(part) + part)
    assert raw.reply() == f"250 2.0.0 {len(part)} octets received\r\n"
    last = b".second\r\n"
    raw.send(b"BDAT %d LAST\r\n" % len(last) + last)
    assert "Message accepted for delivery" in raw.reply()
    (qid,) = smtp.queued()
    assert smtp.body(qid) == b"first\n.second\n"


def test_discarded_client_gets_250_and_nothing_is_queued(smtp):
    with smtp.client(source="127.0.0.5") as client:
        client.ehlo("client.example.net")
        assert client.sendmail("alice@example.com", ["bob"], MESSAGE) == {}
    assert smtp.queued() == []


@pytest.fixture
def tls_smtp(oracle_dir, tmp_path):
    smtps = DaemonSpec(name="SMTPS", port=0, addr="127.0.0.1", modifiers=frozenset("s"))
    mta = DaemonSpec(name="MTA", port=0, addr="127.0.0.1")
    with running_smtp(oracle_dir, tmp_path, tls=True, daemons=(mta, smtps)) as running:
        yield running


def test_starttls_then_auth_plain_and_relay(tls_smtp):
    with tls_smtp.client(source="127.0.0.2") as client:
        client.ehlo("client.example.net")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        client.starttls(context=tls_smtp.client_context())
        client.ehlo("client.example.net")
        assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        assert not client.has_extn("starttls")
        client.login("alice", PASSWORDS["alice"])
        refused = client.sendmail("alice@example.com", ["user@remote.example.net"], MESSAGE)
        assert refused == {}
    (qid,) = tls_smtp.queued()
    qf = tls_smtp.store.read(qid)
    assert qf.macros["r"] == "ESMTPSA"
    assert "with ESMTPSA" in qf.headers[0].value


def test_auth_login_wrong_password(tls_smtp):
    with tls_smtp.client() as client:
        client.starttls(context=tls_smtp.client_context())
        client.ehlo("client.example.net")
        client.user, client.password = "alice", "wrong"
        with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
            client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert caught.value.smtp_code == 535
        assert client.mail("alice@example.com")[0] == 250  # still usable, unauthenticated


def test_plaintext_sent_with_starttls_is_dropped(tls_smtp):
    raw = tls_smtp.raw()
    raw.reply()
    raw.command("EHLO client.example.net")
    raw.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    assert raw.reply() == "220 2.0.0 Ready to start TLS\r\n"
    tls = tls_smtp.client_context().wrap_socket(raw.sock, server_hostname="mail.example.com")
    tls.sendall(b"RSET\r\n")
    # The pipelined MAIL was not executed: the first answer after TLS is RSET's.
    assert tls.recv(4096) == b"250 2.0.0 Reset state\r\n"
    tls.close()


def test_smtps_port_speaks_tls_from_the_start(tls_smtp):
    with smtplib.SMTP_SSL(
        "127.0.0.1", tls_smtp.port(1), context=tls_smtp.client_context(), timeout=30
    ) as client:
        client.ehlo("client.example.net")
        assert not client.has_extn("starttls")
        client.login("alice", PASSWORDS["alice"])
        assert client.sendmail("alice@example.com", ["bob"], MESSAGE) == {}
    assert len(tls_smtp.queued()) == 1


def test_two_hundred_concurrent_sessions_lose_nothing(smtp):
    errors: list[BaseException] = []

    def one(number: int) -> None:
        try:
            with smtp.client() as client:
                client.ehlo("client.example.net")
                body = MESSAGE + b"number %d\r\n" % number
                client.sendmail("alice@example.com", ["bob"], body)
        except BaseException as error:  # collected and reported by the test
            errors.append(error)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    queued = smtp.queued()
    assert len(queued) == 200
    numbers = sorted(int(smtp.body(qid).split(b"number ")[1]) for qid in queued)
    assert numbers == list(range(200))
    with smtp.client() as client:
        assert client.noop()[0] == 250


def test_a_slow_client_does_not_hold_up_others(smtp):
    slow = smtp.raw()
    slow.reply()
    for byte in b"EHLO slow.example":
        slow.send(bytes([byte]))
        time.sleep(0.01)
    # While the slow client is mid-line, others are served.
    with smtp.client() as client:
        client.ehlo("client.example.net")
        assert client.sendmail("alice@example.com", ["bob"], MESSAGE) == {}
    slow.send(b"\r\n")
    assert slow.reply().startswith("250-mail.example.com Hello")
    slow.close()


def test_max_daemon_children_refuses_connections_while_full(oracle_dir, tmp_path):
    # sendmail closes its listening socket at MaxDaemonChildren "so peer fails quickly".
    with running_smtp(oracle_dir, tmp_path, max_daemon_children=1) as smtp:
        first = smtp.raw()
        assert first.reply().startswith("220 ")
        deadline = time.monotonic() + 30
        while smtp.server.listeners[0].listening:
            assert time.monotonic() < deadline, "the listening socket stayed open"
            time.sleep(0.05)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", smtp.port()), timeout=5)
        first.command("QUIT")
        while True:  # open again once the one session has ended
            try:
                second = socket.create_connection(("127.0.0.1", smtp.port()), timeout=30)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the listening socket was not reopened"
                time.sleep(0.05)
        assert second.recv(100).startswith(b"220 ")
        second.close()


def test_command_timeout(oracle_dir, tmp_path):
    with running_smtp(oracle_dir, tmp_path, command_timeout=0.3) as smtp:
        raw = smtp.raw()
        raw.reply()
        assert raw.reply().startswith("421 4.4.2 mail.example.com Timeout waiting for input")
        assert raw.rest() == b""


def test_greet_pause_refuses_early_talkers(oracle_dir, tmp_path):
    with running_smtp(oracle_dir, tmp_path, greet_pause=0.5) as smtp:
        raw = smtp.raw()
        raw.send(b"EHLO impatient.example\r\n")
        assert raw.reply() == "554 mail.example.com ESMTP not accepting messages\r\n"
        assert raw.reply().endswith("250 ENHANCEDSTATUSCODES\r\n")  # HELO/EHLO still answer
        assert raw.command("MAIL FROM:<a@example.com>") == "550 5.0.0 Command rejected\r\n"
        polite = smtp.raw()
        assert polite.reply().startswith("220 ")


def test_stop_finishes_open_transactions_and_closes_idle_sessions(oracle_dir, tmp_path):
    with running_smtp(oracle_dir, tmp_path) as smtp:
        idle = smtp.raw()
        idle.reply()
        busy = smtp.raw()
        busy.reply()
        busy.command("EHLO client.example.net")
        busy.command("MAIL FROM:<alice@example.com>")
        busy.command("RCPT TO:<bob>")
        assert busy.command("DATA").startswith("354")
        busy.send(b"Subject: in flight\r\n\r\nstill")
        stopper = threading.Thread(target=smtp.server.stop, kwargs={"timeout": 10})
        stopper.start()
        assert idle.reply() == "421 4.3.2 mail.example.com Service shutting down\r\n"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", smtp.port()), timeout=2).recv(10)
        busy.send(b" coming\r\n.\r\n")
        assert "Message accepted for delivery" in busy.reply()
        assert busy.reply().startswith("421 4.3.2")
        stopper.join()
        (qid,) = smtp.queued()
        assert smtp.body(qid) == b"still coming\n"


def test_reload_applies_to_new_connections_only(oracle_dir, tmp_path):
    with running_smtp(oracle_dir, tmp_path) as smtp:
        before = smtp.raw()
        before.reply()
        new_service = make_service(
            oracle_dir, tmp_path / "mqueue", settings={"max_message_size": 5000}
        )
        smtp.server.reload(new_service)
        assert "250-SIZE 100000" in before.command("EHLO client.example.net")
        after = smtp.raw()
        after.reply()
        assert "250-SIZE 5000" in after.command("EHLO client.example.net")


def _stdio(oracle_dir, tmp_path, data: bytes) -> bytes:
    service = make_service(oracle_dir, tmp_path / "mqueue")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    output = io.BytesIO()
    with os.fdopen(read_fd, "rb", buffering=0) as reader:
        assert serve_stdio(service, reader, output, user="root") == 0
    return output.getvalue()


def test_bs_session_everything_written_at_once(oracle_dir, tmp_path):
    data = (
        b"MAIL FROM:<alice@example.com>\r\nHELO\r\nHELO client.example.net\r\n"
        b"RCPT TO:<bob>\r\nDATA\r\nQUIT\r\n"
    )
    lines = _stdio(oracle_dir, tmp_path, data).decode().splitlines()
    assert lines[0].startswith("220 mail.example.com ESMTP Sendmail 8.17.1.9/")
    assert lines[0].endswith("(No UCE/UBE) logging access from: ()-root@localhost")
    assert lines[1:] == [
        "250 2.1.0 <alice@example.com>... Sender ok",
        "554 5.5.0 SMTP protocol error",
        "554 5.5.0 SMTP protocol error",
        "550 5.0.0 Command rejected",
        "550 5.0.0 Command rejected",
        "221 2.0.0 mail.example.com closing connection",
    ]


def test_bs_session_queues_a_message(oracle_dir, tmp_path):
    service_dir = tmp_path / "mqueue"
    read_fd, write_fd = os.pipe()
    reply_read_fd, reply_write_fd = os.pipe()
    transcript: list[bytes] = []
    service = make_service(oracle_dir, service_dir)

    def client() -> None:
        # Each command waits for the reply to the one before (no PIPELINING after HELO:
        # a line sent early would be a protocol error, as sendmail makes it).
        with os.fdopen(reply_read_fd, "rb", buffering=0) as replies:
            pending = b""

            def reply() -> None:
                nonlocal pending
                while True:
                    line, newline, rest = pending.partition(b"\r\n")
                    if newline:
                        pending = rest
                        transcript.append(line)
                        if line[3:4] != b"-":
                            return
                        continue
                    chunk = replies.read(4096)
                    if not chunk:
                        return
                    pending += chunk

            reply()  # the greeting
            for line in (
                b"HELO here\r\n",
                b"MAIL FROM:<alice@example.com>\r\n",
                b"RCPT TO:<bob>\r\n",
                b"DATA\r\n",
                b"Subject: bs\r\n\r\nvia stdin\r\n.\r\n",
                b"QUIT\r\n",
            ):
                os.write(write_fd, line)
                reply()
        os.close(write_fd)

    writer = threading.Thread(target=client)
    writer.start()
    with (
        os.fdopen(read_fd, "rb", buffering=0) as reader,
        os.fdopen(reply_write_fd, "wb", buffering=0) as output,
    ):
        serve_stdio(service, reader, output, user="root")
    writer.join()
    assert any(b"Message accepted for delivery" in line for line in transcript), transcript
    (qid,) = service.store.queue_ids()
    assert service.store.read(qid).macros["_"] == "root@localhost"


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_delivers_through_the_daemon(smtp):
    result = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(smtp.port()),
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.com",
            "--helo",
            "client.example.net",
            "--header",
            "Subject: swaks test",
            "--body",
            "from swaks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (qid,) = smtp.queued()
    assert b"from swaks" in smtp.body(qid)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_pipelining_and_auth_over_tls(tls_smtp):
    ca_file = tls_smtp.store.queue_dir.parent / "ca.pem"
    tls_smtp.ca.cert_pem.write_to_path(str(ca_file))
    result = subprocess.run(
        [
            "swaks",
            "--server",
            "127.0.0.1",
            "--port",
            str(tls_smtp.port()),
            "--tls",
            "--tls-ca-path",
            str(ca_file),
            "--pipeline",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            PASSWORDS["alice"],
            "--from",
            "alice@example.com",
            "--to",
            "someone@remote.example.net",
            "--helo",
            "client.example.net",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(tls_smtp.queued()) == 1


BARE_MESSAGE = b"To: bob@example.com\r\nSubject: no date, no id\r\n\r\nHello.\r\n"


def _queued_with_office_headers(oracle_dir, tmp_path, message: bytes):
    """Send one message from alice to bob to a daemon stamping with office.cf's H lines;
    its queue id and its qf."""
    from tests.unit.smtp_office import office_config

    templates = office_config(oracle_dir).headers
    with running_smtp(oracle_dir, tmp_path, header_templates=templates) as smtp:
        with smtp.client() as client:
            client.ehlo("client.example.net")
            assert client.sendmail("<alice@example.com>", ["bob"], message) == {}
        (qid,) = smtp.queued()
        return qid, smtp.store.read(qid)


def test_message_without_date_from_or_id_gets_the_cf_default_headers(oracle_dir, tmp_path):
    from pysendmail.headers import MACRO_CHAR

    qid, qf = _queued_with_office_headers(oracle_dir, tmp_path, BARE_MESSAGE)
    names = [(h.condition, h.name) for h in qf.headers]
    assert names == [
        ("P", "Return-Path"),
        ("", "Received"),
        ("D", "Date"),
        ("F", "From"),
        ("M", "Message-Id"),
        ("", "To"),
        ("", "Subject"),
    ]
    by_name = {h.name: h.value for h in qf.headers}
    assert by_name["Return-Path"] == f"<{MACRO_CHAR}g>"
    assert f"with ESMTP id {qid}" in by_name["Received"]
    assert by_name["From"] == "alice@example.com"
    assert by_name["Message-Id"].startswith("<")
    assert by_name["Message-Id"].endswith(f".{qid}@mail.example.com>")
    # $a and the date at the end of Received: are the same moment, written alike.
    assert by_name["Received"].endswith(by_name["Date"])


def test_headers_the_message_has_are_not_added_again(oracle_dir, tmp_path):
    _, qf = _queued_with_office_headers(oracle_dir, tmp_path, MESSAGE)
    names = [h.name for h in qf.headers]
    assert names == ["Return-Path", "Received", "Date", "From", "To", "Subject", "Message-Id"]
