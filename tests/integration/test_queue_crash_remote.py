"""kill -9 of a queue runner at random moments while it delivers over SMTP to a real
peer on 127.0.0.1 (aiosmtpd): after a last, uninterrupted run every acknowledged
message has reached the peer, and a message reached it twice only in the window the
docs name (queue/store.py): the peer had said 250 to it, and the runner was killed
before removing its qf. The runner is sequential and keeps one connection per run,
so that window holds at most one message per kill: the last one the peer accepted on
the killed runner's connection. The test checks exactly that."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue.store import QueueStore
from tests.conftest import subprocess_env
from tests.integration.smtp_peer import running_peer

RUNNER = r"""
import sys
from pysendmail.config.model import MailerSpec
from pysendmail.delivery.remote import RemoteSettings
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.errors import Location
from pysendmail.queue.deliverers import RemoteDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from pysendmail.record import record

@record
class Routed:
    mailer: str
    host: str
    user: str
    address: str

esmtp = MailerSpec("esmtp", {"P": "[IPC]", "F": "mDFMuXa", "A": "TCP $h " + sys.argv[2]},
                   Location("crash.cf", 1))
settings = RemoteSettings(resolver=Resolver(ResolverSettings(host_sources=("files",))),
                          helo_name="mail.example.com", connect_timeout=10,
                          command_timeout=10, data_timeout=10)
runner = QueueRunner(
    QueueStore(sys.argv[1]),
    route=lambda r, m: [Routed("esmtp", "[127.0.0.1]", r.bare_address, r.bare_address)],
    deliverers={"esmtp": RemoteDeliverer(settings, esmtp)},
    hostname="mail.example.com",
)
print("started", flush=True)
runner.run()
print("done", flush=True)
"""


class RecordingPeer:
    """Accepts everything; remembers, per connection, the messages it said 250 to."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)
        self.lock = threading.Lock()
        self.accepted: list[tuple[int, str]] = []  # (connection number, message's X-N)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            session.connection_number = next(self.numbers)
        return responses

    async def handle_DATA(self, server, session, envelope):
        number = next(
            line.split(b":", 1)[1].strip().decode()
            for line in envelope.content.splitlines()
            if line.startswith(b"X-N:")
        )
        with self.lock:
            self.accepted.append((session.connection_number, number))
        return "250 2.0.0 accepted"

    def connections_so_far(self) -> int:
        with self.lock:
            return max((c for c, _ in self.accepted), default=0)


@pytest.fixture
def peer() -> Iterator[tuple[RecordingPeer, int]]:
    handler = RecordingPeer()
    with running_peer(handler) as port:
        yield handler, port


def _spawn(queue_dir, port) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(queue_dir), str(port)],
        stdout=subprocess.PIPE,
        env=subprocess_env(),
    )


def test_kill_9_during_remote_delivery_duplicates_only_inside_the_window(tmp_path, peer):
    handler, port = peer
    queue_dir = tmp_path / "q"
    queue_dir.mkdir()
    store = QueueStore(queue_dir, fsync=False)
    queued: dict[str, str] = {}
    for n in range(400):
        qid = store.enqueue(
            Envelope(sender="<a@example.com>", recipients=[Recipient(f"<r{n}@remote.test>")]),
            [Header("X-N", str(n)), Header("Subject", "crash test")],
            b"a line of the body\n" * 50,
            hostname="mail.example.com",
        )
        queued[str(n)] = qid
    rng = random.Random(2026)
    killed_connections: set[int] = set()
    kills = 0
    for _ in range(6):
        before = handler.connections_so_far()
        child = _spawn(queue_dir, port)
        assert child.stdout is not None
        child.stdout.readline()  # "started": the run begins now
        time.sleep(rng.uniform(0.0, 0.3))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
        child.communicate()
        if child.returncode == -signal.SIGKILL:
            kills += 1
            after = handler.connections_so_far()
            killed_connections.update(range(before + 1, after + 1))
        if not QueueStore(queue_dir).queue_ids():
            break
    assert kills >= 1, "no runner was killed while it delivered"
    last = _spawn(queue_dir, port)
    out, _ = last.communicate(timeout=120)
    assert out.decode().split() == ["started", "done"]
    assert QueueStore(queue_dir).queue_ids() == []

    received = Counter(number for _, number in handler.accepted)
    assert set(received) == set(queued)  # every acknowledged message reached the peer
    # The only messages that may arrive again: the last one accepted on a connection
    # whose runner was killed (the peer's 250 came, the qf was not removed yet).
    last_on_killed: Counter[str] = Counter()
    for connection in killed_connections:
        numbers = [n for c, n in handler.accepted if c == connection]
        if numbers:
            last_on_killed[numbers[-1]] += 1
    for number, count in received.items():
        assert count - 1 <= last_on_killed[number], (number, count)
    assert sum(received.values()) - len(queued) <= kills
