"""Connection reuse in a queue run (ConnectionCacheSize, ConnectionCacheTimeout): two
messages for one host go over one SMTP connection, the second after RSET; with a cache
size of 0, or once the idle limit is passed, each message opens its own; a cached
connection the peer has dropped is replaced, and nothing is lost. The peer (aiosmtpd
on 127.0.0.1) counts the connections."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.remote import RemoteSettings
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.envelope import Envelope, Recipient
from pysendmail.errors import Location
from pysendmail.headers import Header
from pysendmail.queue.deliverers import RemoteDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from pysendmail.record import replace
from tests.integration.smtp_peer import running_peer


class CountingSink:
    def __init__(self) -> None:
        self.connections: list[tuple] = []  # the client's (address, port), per message
        self.resets = 0

    async def handle_RSET(self, server, session, envelope):
        self.resets += 1
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.connections.append(tuple(session.peer))
        return "250 2.0.0 queued"


@pytest.fixture
def sink() -> Iterator[tuple[CountingSink, int]]:
    handler = CountingSink()
    with running_peer(handler) as port:
        yield handler, port


@dataclass
class Routed:
    mailer: str
    host: str
    user: str
    address: str = ""


def _runner(tmp_path, port: int, **cache: float) -> tuple[QueueStore, QueueRunner, list[str]]:
    store = QueueStore(tmp_path)
    qids = [
        store.enqueue(
            Envelope(sender="<alice@example.com>", recipients=[Recipient(f"<r{n}@remote.test>")]),
            [Header("Subject", f"message {n}")],
            f"body {n}\n".encode(),
            hostname="mail.example.com",
        )
        for n in range(3)
    ]
    esmtp = MailerSpec(
        "esmtp", {"P": "[IPC]", "F": "mDFMuXa", "A": f"TCP $h {port}"}, Location("t.cf", 1)
    )
    settings = RemoteSettings(
        resolver=Resolver(ResolverSettings(host_sources=("files",))),
        helo_name="mail.example.com",
        connect_timeout=10,
        command_timeout=10,
        data_timeout=10,
    )
    settings = replace(settings, **cache)
    runner = QueueRunner(
        store,
        route=lambda rcpt, msg: [Routed("esmtp", "[127.0.0.1]", rcpt.bare_address)],
        deliverers={"esmtp": RemoteDeliverer(settings, esmtp)},
        hostname="mail.example.com",
    )
    return store, runner, qids


def _all_sent(store: QueueStore, summary, qids: list[str]) -> bool:
    return all(o.removed for o in summary.outcomes) and not any(
        store.path("qf", q).exists() for q in qids
    )


def test_messages_to_one_host_share_one_connection_in_a_run(tmp_path, sink):
    handler, port = sink
    store, runner, qids = _runner(tmp_path, port)
    summary = runner.run()
    assert summary.attempted == 3 and _all_sent(store, summary, qids)
    assert len(handler.connections) == 3
    assert len(set(handler.connections)) == 1
    assert handler.resets == 2  # one before each reused transaction


def test_cache_size_zero_opens_a_connection_per_message(tmp_path, sink):
    handler, port = sink
    store, runner, qids = _runner(tmp_path, port, connection_cache_size=0)
    assert _all_sent(store, runner.run(), qids)
    assert len(set(handler.connections)) == 3 and handler.resets == 0


def test_idle_limit_passed_means_a_new_connection(tmp_path, sink):
    handler, port = sink
    store, runner, qids = _runner(tmp_path, port, connection_cache_timeout=-1)
    assert _all_sent(store, runner.run(), qids)
    assert len(set(handler.connections)) == 3


def test_a_cached_connection_the_peer_dropped_is_replaced(tmp_path, sink):
    handler, port = sink
    store, runner, qids = _runner(tmp_path, port)
    deliverer = runner.deliverers["esmtp"]
    real_deliver = deliverer.deliver

    def deliver_then_break(message, deliveries):
        results = real_deliver(message, deliveries)
        cache = deliverer._run.cache
        for client, _since in cache._idle.values():
            client.sock.shutdown(socket.SHUT_RDWR)  # as if the peer had timed us out
        return results

    deliverer.deliver = deliver_then_break
    assert _all_sent(store, runner.run(), qids)
    assert len(set(handler.connections)) == 3


def test_the_run_closes_its_connections_and_a_lone_attempt_keeps_none(tmp_path, sink):
    handler, port = sink
    store, runner, _ = _runner(tmp_path, port)
    runner.run()
    assert runner.deliverers["esmtp"]._run.cache is None
    again = store.enqueue(
        Envelope(sender="<alice@example.com>", recipients=[Recipient("<late@remote.test>")]),
        [Header("Subject", "late")],
        b"late\n",
        hostname="mail.example.com",
    )
    assert runner.run_one(again).removed
    assert len(set(handler.connections)) == 2
