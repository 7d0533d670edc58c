"""`sendmail -q -v` shows each SMTP dialogue as sendmail 8.17 does: `Connecting to HOST
port N via MAILER...` before a new connection, `>>> ` before each command, the replies
as the server sent them, the message itself hidden but its final dot shown, `Using
cached ESMTP connection to HOST via MAILER...` (after the RSET that checks it) when a
later message of the run takes the open connection, and `Closing connection to HOST`
before the QUIT at the end of the run. Credentials never appear. The peer is aiosmtpd on
127.0.0.1."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.remote import AuthInfo, RemoteSettings
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.envelope import Envelope, Recipient
from pysendmail.errors import Location
from pysendmail.headers import Header
from pysendmail.queue.deliverers import RemoteDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from pysendmail.record import record, replace
from tests.integration.smtp_peer import free_port, running_peer


class Sink:
    def __init__(self) -> None:
        self.logins: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 queued"


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with running_peer(handler) as port:
        yield handler, port


@pytest.fixture
def auth_sink() -> Iterator[tuple[Sink, int]]:
    handler, port = Sink(), free_port()

    def authenticate(server, session, envelope, mechanism, auth_data):
        handler.logins.append(auth_data.password)
        return AuthResult(success=auth_data.password == b"s3cret-pw")

    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@record
class Routed:
    mailer: str
    host: str
    user: str
    address: str = ""


def _queue(store: QueueStore, *recipients: str) -> str:
    return store.enqueue(
        Envelope(sender="<alice@example.com>", recipients=[Recipient(r) for r in recipients]),
        [Header("Subject", "verbose")],
        b"the secret body text\n",
        hostname="mail.example.com",
    )


def _runner(tmp_path, port: int, out: io.StringIO, **settings: object) -> QueueRunner:
    esmtp = MailerSpec(
        "esmtp", {"P": "[IPC]", "F": "mDFMuXa", "A": f"TCP $h {port}"}, Location("t.cf", 1)
    )
    remote = RemoteSettings(
        resolver=Resolver(ResolverSettings(host_sources=("files",))),
        helo_name="mail.example.com",
        connect_timeout=10,
        command_timeout=10,
        data_timeout=10,
    )
    return QueueRunner(
        QueueStore(tmp_path),
        route=lambda rcpt, msg: [Routed("esmtp", "[127.0.0.1]", rcpt.bare_address)],
        deliverers={"esmtp": RemoteDeliverer(replace(remote, **settings), esmtp)},
        hostname="mail.example.com",
        verbose=out,
    )


def _messages(text: str) -> list[list[str]]:
    """The -v output cut at each `Running ...` line, without that line."""
    return [block.splitlines()[1:] for block in text.split("\nRunning ")[1:]]


def test_a_run_shows_each_dialogue_and_names_the_cached_connection(tmp_path, sink):
    _, port = sink
    out = io.StringIO()
    runner = _runner(tmp_path, port, out)
    store = runner.store
    _queue(store, "<r0@remote.test>")
    _queue(store, "<r1@remote.test>", "<r2@remote.test>")
    summary = runner.run()
    assert summary.attempted == 2 and store.queue_ids() == []
    # the run takes them in priority order: the first opens the connection
    opened, reused = _messages(out.getvalue())
    who = opened[0].split("...")[0]
    assert opened[0] == f"{who}... Connecting to [127.0.0.1] port {port} via esmtp..."
    assert opened[1].startswith("220 ")
    assert opened[2] == ">>> EHLO mail.example.com"
    assert opened[3].startswith("250-") and any(line.startswith("250 ") for line in opened[4:])
    commands = [line for line in opened if line.startswith(">>> ")]
    assert commands[1].startswith(">>> MAIL FROM:<alice@example.com>")
    assert commands[-2:] == [">>> DATA", ">>> ."]
    assert opened[opened.index(">>> DATA") + 1].startswith("354 ")
    assert opened[opened.index(">>> .") + 1] == "250 2.0.0 queued"
    reused_who = reused[2].split("...")[0]
    assert reused[:3] == [
        ">>> RSET",
        reused[1],
        f"{reused_who}... Using cached ESMTP connection to [127.0.0.1] via esmtp...",
    ]
    assert reused[1].startswith("250 ")
    assert not any("Connecting to" in line or "EHLO" in line for line in reused)
    assert {who, reused_who} == {"<r0@remote.test>", "<r1@remote.test>,<r2@remote.test>"}
    # one line for the recipients of one transaction with the same outcome
    assert f"{who}... Sent (queued)" in opened
    assert f"{reused_who}... Sent (queued)" in reused
    assert reused[-3:-1] == ["Closing connection to [127.0.0.1]", ">>> QUIT"]
    assert reused[-1].startswith("221 ")
    assert "secret body" not in out.getvalue()


def test_without_a_run_cache_the_connection_is_closed_after_the_message(tmp_path, sink):
    _, port = sink
    out = io.StringIO()
    runner = _runner(tmp_path, port, out, connection_cache_size=0)
    _queue(runner.store, "<r0@remote.test>")
    _queue(runner.store, "<r1@remote.test>")
    runner.run()
    for lines in _messages(out.getvalue()):
        assert "Connecting to [127.0.0.1] port" in lines[0]
        assert lines[-4:-2] == ["Closing connection to [127.0.0.1]", ">>> QUIT"]
    assert "Using cached" not in out.getvalue()


def test_credentials_are_not_shown(tmp_path, auth_sink):
    handler, port = auth_sink
    out = io.StringIO()

    def credentials(host: str, address: str) -> AuthInfo:
        return AuthInfo(user="relay-user", password="s3cret-pw", mechanisms=("LOGIN",))

    runner = _runner(tmp_path, port, out, auth_lookup=credentials)
    _queue(runner.store, "<r0@remote.test>")
    assert runner.run().outcomes[0].removed
    assert handler.logins == [b"s3cret-pw"]
    text = out.getvalue()
    assert ">>> AUTH LOGIN\n" in text and "\n334 " in text and "\n235 " in text
    for secret in ("relay-user", "s3cret-pw"):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
