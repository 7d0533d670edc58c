"""remote.py against real SMTP servers on 127.0.0.1 (aiosmtpd, and small scripted
servers for PIPELINING and a dropped connection), found through a real DNS server."""

from __future__ import annotations

import email
import quopri
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.remote import (
    AuthInfo,
    RemoteRecipient,
    RemoteSettings,
    RemoteTarget,
    authinfo_keys,
    authinfo_lookup,
    deliver_by_destination,
    deliver_remote,
    parse_authinfo,
    parse_destination,
)
from pysendmail.delivery.result import Outcome
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.errors import Location
from tests.integration.dnsserver import DnsServer


class LoopbackController(Controller):
    """aiosmtpd's Controller on an OS-chosen port."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Recorder:
    """An aiosmtpd handler that keeps what it received and answers RCPT per address."""

    def __init__(self, drop_8bitmime: bool = False, pipelining: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ehlo_count = 0
        self.drop_8bitmime = drop_8bitmime
        self.pipelining = pipelining

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        self.ehlo_count += 1
        session.host_name = hostname
        if self.drop_8bitmime:
            responses = [r for r in responses if "8BITMIME" not in r]
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address.startswith("unknown"):
            return f"550 5.1.1 <{address}>... User unknown"
        if address.startswith("busy"):
            return f"450 4.2.1 <{address}>... Mailbox busy"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "content": envelope.original_content,
                "mail_options": list(envelope.mail_options),
                "tls": session.ssl is not None,
                "auth": session.auth_data if session.authenticated else None,
            }
        )
        return "250 2.0.0 Ok: queued as TEST1"


HERE = Location("test.cf", 1)
DNS_ZONES: dict[str, Any] = {
    "dest.test": {"MX": [(10, "mx.dest.test")]},
    "mx.dest.test": {"A": ["127.0.0.1"]},
    "fallback.test": {"MX": [(10, "dead.fallback.test"), (20, "mx.dest.test")]},
    "dead.fallback.test": {"A": ["127.0.0.2"]},  # nothing listens on 127.0.0.2
    "nullmx.test": {"MX": [(0, ".")]},
    "broken.test": "SERVFAIL",
}


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with DnsServer(DNS_ZONES) as server:
        yield server


def smtp_server(handler: Recorder, **kwargs: Any) -> LoopbackController:
    controller = LoopbackController(handler, hostname="127.0.0.1", port=0, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    controller = smtp_server(handler)
    yield handler, controller.port
    controller.stop()


def esmtp(port: int, flags: str = "mDFMuXa") -> MailerSpec:
    return MailerSpec("esmtp", {"P": "[IPC]", "F": flags, "A": f"TCP $h {port}"}, HERE)


def settings(dns_server: DnsServer, **extra: Any) -> RemoteSettings:
    resolver = Resolver(
        ResolverSettings(nameservers=("127.0.0.1",), port=dns_server.port, timeout=2)
    )
    values: dict[str, Any] = {
        "helo_name": "mail.example.com",
        "connect_timeout": 5,
        "command_timeout": 10,
        "data_timeout": 10,
    }
    values.update(extra)
    return RemoteSettings(resolver=resolver, **values)


MESSAGE = OutgoingMessage(
    "<alice@example.com>",
    b"From: alice@example.com\nTo: bob@dest.test\nSubject: remote\n",
    b"line one\n.starts with a dot\n",
)


def test_delivery_through_mx_in_one_transaction(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    results = deliver_remote(
        MESSAGE,
        ["bob@dest.test", "carol@dest.test"],
        "dest.test",
        settings(dns_server),
        mailer=esmtp(port),
    )
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert results[0].text == "Sent (Ok: queued as TEST1)"
    assert results[0].relay == "mx.dest.test. [127.0.0.1]"
    assert results[0].remote_mta == "dns; mx.dest.test"
    assert handler.ehlo_count == 1
    [received] = handler.messages
    assert received["from"] == "alice@example.com"
    assert received["to"] == ["bob@dest.test", "carol@dest.test"]
    assert received["content"] == (
        b"From: alice@example.com\r\nTo: bob@dest.test\r\nSubject: remote\r\n\r\n"
        b"line one\r\n.starts with a dot\r\n"
    )
    assert "SIZE=" in " ".join(received["mail_options"])


def test_per_recipient_replies_in_one_transaction(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    rcpts = ["ok@dest.test", "unknown@dest.test", "busy@dest.test"]
    sent, bounced, deferred = deliver_remote(
        MESSAGE, rcpts, "dest.test", settings(dns_server), mailer=esmtp(port)
    )
    assert sent.is_success
    assert (bounced.outcome, bounced.status, bounced.text) == (
        Outcome.BOUNCED,
        "5.1.1",
        "User unknown",
    )
    assert bounced.diagnostic_code == "smtp; 550 5.1.1 <unknown@dest.test>... User unknown"
    assert (deferred.outcome, deferred.status) == (Outcome.DEFERRED, "4.2.1")
    assert deferred.text == "Deferred: 450 4.2.1 <busy@dest.test>... Mailbox busy"
    assert [m["to"] for m in handler.messages] == [["ok@dest.test"]]


def test_no_data_when_every_recipient_is_refused(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    results = deliver_remote(
        MESSAGE, ["unknown1@dest.test"], "dest.test", settings(dns_server), mailer=esmtp(port)
    )
    assert results[0].is_permanent
    assert handler.messages == []


def test_next_mx_when_the_first_refuses_connections(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    [result] = deliver_remote(
        MESSAGE, ["bob@fallback.test"], "fallback.test", settings(dns_server), mailer=esmtp(port)
    )
    assert result.is_success
    assert result.relay == "mx.dest.test. [127.0.0.1]"
    assert len(handler.messages) == 1


def test_bracketed_host_and_literal_skip_mx(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    before = len(dns_server.queries)
    [result] = deliver_remote(
        MESSAGE, ["bob@dest.test"], "[mx.dest.test]", settings(dns_server), mailer=esmtp(port)
    )
    assert result.is_success
    asked = dns_server.queries[before:]
    assert ("mx.dest.test", "A") in asked
    assert not any(qtype == "MX" for _, qtype in asked)
    before = len(dns_server.queries)
    [result] = deliver_remote(
        MESSAGE, ["bob@dest.test"], "[127.0.0.1]", settings(dns_server), mailer=esmtp(port)
    )
    assert result.is_success
    assert dns_server.queries[before:] == []
    assert len(handler.messages) == 2


@pytest.mark.parametrize(
    ("domain", "outcome", "status"),
    [
        ("no-such-domain.test", Outcome.BOUNCED, "5.1.2"),
        ("nullmx.test", Outcome.BOUNCED, "5.1.10"),
        ("broken.test", Outcome.DEFERRED, "4.4.3"),
    ],
)
def test_dns_answers_decide_bounce_or_retry(
    dns_server: DnsServer, domain: str, outcome: Outcome, status: str
) -> None:
    results = deliver_remote(
        MESSAGE, [f"a@{domain}", f"b@{domain}"], domain, settings(dns_server), mailer=esmtp(1)
    )
    assert [(r.outcome, r.status) for r in results] == [(outcome, status)] * 2


def test_nobody_listening_defers(dns_server: DnsServer) -> None:
    idle = socket.socket()
    idle.bind(("127.0.0.1", 0))
    port = idle.getsockname()[1]
    idle.close()
    [result] = deliver_remote(
        MESSAGE, ["bob@dest.test"], "dest.test", settings(dns_server), mailer=esmtp(port)
    )
    assert result.is_temporary
    assert result.text == "Deferred: Connection refused by mx.dest.test."


def test_starttls_when_offered(dns_server: DnsServer, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("mx.dest.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    handler = Recorder()
    controller = smtp_server(handler, tls_context=server_context)
    try:
        [result] = deliver_remote(
            MESSAGE,
            ["bob@dest.test"],
            "dest.test",
            settings(dns_server, tls_context=client_context),
            mailer=esmtp(controller.port),
        )
        # and opportunistically, without a CA to check against
        [again] = deliver_remote(
            MESSAGE,
            ["bob@dest.test"],
            "dest.test",
            settings(dns_server),
            mailer=esmtp(controller.port),
        )
    finally:
        controller.stop()
    assert result.is_success and again.is_success
    assert [m["tls"] for m in handler.messages] == [True, True]


def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"relayuser",
        b"s3cret",
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


@pytest.mark.parametrize("exclude", [["LOGIN"], ["PLAIN"]])
def test_auth_to_a_smart_host(dns_server: DnsServer, exclude: list[str]) -> None:
    handler = Recorder()
    controller = smtp_server(
        handler, authenticator=authenticator, auth_require_tls=False, auth_exclude_mechanism=exclude
    )
    try:
        good = settings(
            dns_server,
            auth_lookup=authinfo_lookup(
                {"AuthInfo:dest.test": '"U:relayuser" "P:s3cret" "M:PLAIN LOGIN"'}.get
            ),
        )
        [result] = deliver_remote(
            MESSAGE, ["far@elsewhere.test"], "[mx.dest.test]", good, mailer=esmtp(controller.port)
        )
        bad = settings(dns_server, auth_lookup=lambda host, address: AuthInfo("relayuser", "wrong"))
        [refused] = deliver_remote(
            MESSAGE, ["far@elsewhere.test"], "[mx.dest.test]", bad, mailer=esmtp(controller.port)
        )
    finally:
        controller.stop()
    assert result.is_success
    assert [m["auth"] for m in handler.messages] == [LoginPassword(b"relayuser", b"s3cret")]
    assert refused.is_temporary and refused.status == "4.7.0"
    assert "AUTH failure" in refused.text


EIGHT_BIT = OutgoingMessage(
    "<alice@example.com>",
    b"From: alice@example.com\nMIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n",
    "Grüße aus Köln, déjà vu.\n".encode() + b"=equals sign\n",
)


def test_8bit_converted_to_quoted_printable_without_8bitmime(dns_server: DnsServer) -> None:
    handler = Recorder(drop_8bitmime=True)
    controller = smtp_server(handler)
    try:
        [result] = deliver_remote(
            EIGHT_BIT,
            ["bob@dest.test"],
            "dest.test",
            settings(dns_server),
            mailer=esmtp(controller.port),
        )
    finally:
        controller.stop()
    assert result.is_success
    [received] = handler.messages
    content: bytes = received["content"]
    assert max(content) < 128
    assert "BODY=8BITMIME" not in received["mail_options"]
    parsed = email.message_from_bytes(content)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    decoded = quopri.decodestring(parsed.get_payload().encode())
    assert decoded.replace(b"\r\n", b"\n") == EIGHT_BIT.body


def test_8bit_sent_as_is_with_8bitmime(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    [result] = deliver_remote(
        EIGHT_BIT, ["bob@dest.test"], "dest.test", settings(dns_server), mailer=esmtp(port)
    )
    assert result.is_success
    [received] = handler.messages
    assert "BODY=8BITMIME" in received["mail_options"]
    assert received["content"].endswith(EIGHT_BIT.body.replace(b"\n", b"\r\n"))


def test_large_body_streamed_from_the_df_file(
    dns_server: DnsServer, recorder: tuple[Recorder, int], tmp_path: Path
) -> None:
    handler, port = recorder
    df = tmp_path / "dfTEST"
    line = b"x" * 76 + b"\n"
    df.write_bytes(line * 40_000)  # ~3 MB
    message = OutgoingMessage("<a@example.com>", b"Subject: big\n", df)
    [result] = deliver_remote(
        message, ["bob@dest.test"], "dest.test", settings(dns_server), mailer=esmtp(port)
    )
    assert result.is_success
    assert handler.messages[0]["content"].endswith(line.replace(b"\n", b"\r\n") * 40_000)


# ---------------------------------------------------------------- scripted servers


class ScriptedServer:
    """A one-connection SMTP server on 127.0.0.1 driven by a function of the socket."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.listener.settimeout(20)
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(20)
                self.script(conn)
        except BaseException as err:  # reported by the test
            self.error = err
        finally:
            self.listener.close()

    def join(self) -> None:
        self.thread.join(timeout=30)
        if self.error is not None:
            raise self.error


def read_line(conn: socket.socket, buffer: bytearray) -> bytes:
    while b"\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client went away")
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\r\n")
    buffer[:] = rest
    return line


def greet_and_ehlo(conn: socket.socket, buffer: bytearray, keywords: list[str]) -> None:
    conn.sendall(b"220 scripted ESMTP\r\n")
    assert read_line(conn, buffer).upper().startswith(b"EHLO mail.example.com".upper())
    lines = ["scripted", *keywords]
    reply = "".join(f"250-{k}\r\n" for k in lines[:-1]) + f"250 {lines[-1]}\r\n"
    conn.sendall(reply.encode())


def test_pipelining_sends_mail_rcpt_and_data_in_one_go(dns_server: DnsServer) -> None:
    seen: dict[str, Any] = {}

    def script(conn: socket.socket) -> None:
        buffer = bytearray()
        greet_and_ehlo(conn, buffer, ["PIPELINING", "8BITMIME"])
        # read the whole command group before answering anything: a client that waits
        # for the MAIL reply would stall here until the timeout
        conn.settimeout(5)
        commands = []
        try:
            while not commands or commands[-1] != b"DATA":
                commands.append(read_line(conn, buffer))
            seen["pipelined"] = True
        except TimeoutError:
            seen["pipelined"] = False
        conn.settimeout(20)
        seen["commands"] = commands
        conn.sendall(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n")
        data = []
        while (line := read_line(conn, buffer)) != b".":
            data.append(line)
        seen["data"] = data
        conn.sendall(b"250 2.0.0 queued\r\n")
        assert read_line(conn, buffer) == b"QUIT"
        conn.sendall(b"221 bye\r\n")

    server = ScriptedServer(script)
    results = deliver_remote(
        MESSAGE,
        ["a@dest.test", "b@dest.test"],
        "[127.0.0.1]",
        settings(dns_server),
        mailer=esmtp(server.port),
    )
    server.join()
    assert seen["pipelined"] is True
    assert seen["commands"] == [
        b"MAIL FROM:<alice@example.com>",
        b"RCPT TO:<a@dest.test>",
        b"RCPT TO:<b@dest.test>",
        b"DATA",
    ]
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.BOUNCED]
    assert seen["data"][-1] == b"..starts with a dot"


def test_connection_dropped_mid_data_defers_everyone(dns_server: DnsServer) -> None:
    def script(conn: socket.socket) -> None:
        buffer = bytearray()
        greet_and_ehlo(conn, buffer, ["8BITMIME"])
        for reply in (b"250 ok", b"250 ok", b"250 ok", b"354 go"):
            read_line(conn, buffer)
            conn.sendall(reply + b"\r\n")
        conn.recv(10)  # a little of the message, then the line goes dead
        conn.shutdown(socket.SHUT_RDWR)

    server = ScriptedServer(script)
    big = OutgoingMessage("<a@example.com>", b"Subject: big\n", b"y" * 2_000_000 + b"\n")
    results = deliver_remote(
        big,
        ["a@dest.test", "b@dest.test"],
        "[127.0.0.1]",
        settings(dns_server),
        mailer=esmtp(server.port),
    )
    server.join()
    assert [r.outcome for r in results] == [Outcome.DEFERRED, Outcome.DEFERRED]
    assert "Lost connection" in results[0].text


def test_dsn_parameters_when_offered(dns_server: DnsServer) -> None:
    seen: list[bytes] = []

    def script(conn: socket.socket) -> None:
        buffer = bytearray()
        greet_and_ehlo(conn, buffer, ["DSN", "SIZE 1000000"])
        for reply in (b"250 ok", b"250 ok", b"354 go"):
            seen.append(read_line(conn, buffer))
            conn.sendall(reply + b"\r\n")
        while read_line(conn, buffer) != b".":
            pass
        conn.sendall(b"250 queued\r\n")
        read_line(conn, buffer)
        conn.sendall(b"221 bye\r\n")

    server = ScriptedServer(script)
    rcpt = RemoteRecipient("a@dest.test", frozenset({"FAILURE", "DELAY"}), "rfc822;a+b=c@dest.test")
    [result] = deliver_remote(
        MESSAGE,
        [rcpt],
        "[127.0.0.1]",
        settings(dns_server),
        mailer=esmtp(server.port),
        ret="HDRS",
        envid="id 1",
    )
    server.join()
    assert result.is_success
    assert seen[0].startswith(b"MAIL FROM:<alice@example.com> SIZE=")
    assert seen[0].endswith(b" RET=HDRS ENVID=id+201")
    assert seen[1] == b"RCPT TO:<a@dest.test> NOTIFY=DELAY,FAILURE ORCPT=rfc822;a+2Bb+3Dc@dest.test"


def test_parse_destination() -> None:
    assert parse_destination("example.com") == [("example.com", False)]
    assert parse_destination("[mx.example.com.]:backup.example") == [
        ("mx.example.com", True),
        ("backup.example", False),
    ]
    assert parse_destination("[IPv6:::1]:[127.0.0.1]") == [("::1", True), ("127.0.0.1", True)]


def test_targets_grouped_by_destination_one_connection_each(
    dns_server: DnsServer, recorder: tuple[Recorder, int]
) -> None:
    handler, port = recorder
    targets = [
        RemoteTarget("dest.test", RemoteRecipient("a@dest.test")),
        RemoteTarget("[127.0.0.1]", RemoteRecipient("b@other.test")),
        RemoteTarget("Dest.Test.", RemoteRecipient("c@dest.test")),
        RemoteTarget("nullmx.test", RemoteRecipient("d@nullmx.test")),
    ]
    results = deliver_by_destination(MESSAGE, targets, settings(dns_server), mailer=esmtp(port))
    assert [r.recipient for r in results] == [
        "a@dest.test",
        "b@other.test",
        "c@dest.test",
        "d@nullmx.test",
    ]
    assert [r.outcome for r in results] == [
        Outcome.SENT,
        Outcome.SENT,
        Outcome.SENT,
        Outcome.BOUNCED,
    ]
    assert sorted(m["to"] for m in handler.messages) == [
        ["a@dest.test", "c@dest.test"],
        ["b@other.test"],
    ]


def test_authinfo_values_and_keys() -> None:
    assert parse_authinfo('"U:root" "I:user" "P:secret" "M:LOGIN"') == AuthInfo(
        "user", "secret", "root", ("LOGIN",)
    )
    assert parse_authinfo('"U:user" "P=c2VjcmV0"') == AuthInfo("user", "secret")
    assert parse_authinfo('"U:user"') is None
    assert authinfo_keys("SMART.example.net.", "192.0.2.10") == [
        "AuthInfo:smart.example.net",
        "AuthInfo:example.net",
        "AuthInfo:net",
        "AuthInfo:192.0.2.10",
        "AuthInfo:192.0.2",
        "AuthInfo:192.0",
        "AuthInfo:192",
        "AuthInfo:",
    ]
    table = {"AuthInfo:": '"U:default" "P:d"', "AuthInfo:192.0.2": '"U:net" "P:n"'}
    find = authinfo_lookup(table.get)
    assert find("smart.example.net", "192.0.2.10") == AuthInfo("net", "n")
    assert find("other.example", "198.51.100.1") == AuthInfo("default", "d")


def test_message_over_the_peers_size_limit_bounces_without_sending(dns_server: DnsServer) -> None:
    seen: list[bytes] = []

    def script(conn: socket.socket) -> None:
        buffer = bytearray()
        greet_and_ehlo(conn, buffer, ["SIZE 100", "8BITMIME"])
        seen.append(read_line(conn, buffer))
        conn.sendall(b"221 bye\r\n")

    server = ScriptedServer(script)
    big = OutgoingMessage("<a@example.com>", b"Subject: big\n", b"z" * 500 + b"\n")
    [result] = deliver_remote(
        big, ["a@dest.test"], "[127.0.0.1]", settings(dns_server), mailer=esmtp(server.port)
    )
    server.join()
    assert (result.outcome, result.status) == (Outcome.BOUNCED, "5.3.4")
    assert seen == [b"QUIT"]
