"""kill -9 at random moments while messages are enqueued and while they are delivered:
nothing acknowledged is lost, and a message is delivered twice only in the window the
docs name (between a mailer's success and the qf rewrite), at most once per kill."""

import os
import random
import signal
import subprocess
import sys
import time

from pysendmail.queue.store import QueueStore
from tests.conftest import subprocess_env

ENQUEUER = r"""
import sys
from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue.store import QueueStore
store = QueueStore(sys.argv[1])
n = 0
while True:
    n += 1
    body = (b"message %d\n" % n) * 200
    draft = store.open_draft()
    for i in range(0, len(body), 500):
        draft.write(body[i:i + 500])
    qid = draft.commit(Envelope(sender="a@example.com", recipients=[Recipient("bob")]),
                       [Header("Subject", "n=%d" % n)])
    sys.stdout.write("%s %d\n" % (qid, n))   # the acknowledgement: one write(2), whole
    sys.stdout.flush()
"""

RUNNER = r"""
import os, sys
from dataclasses import dataclass
from pysendmail.delivery.result import DeliveryResult
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore

@dataclass
class D:
    mailer: str
    address: str

class Recorder:
    def deliver(self, message, deliveries):
        line = ("%s\n" % message.qid).encode()
        fd = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, line)
        os.fsync(fd)
        os.close(fd)
        return [DeliveryResult.sent(d.address, mailer="local") for d in deliveries]

runner = QueueRunner(QueueStore(sys.argv[1]), route=lambda r, m: [D("local", r.address)],
                     deliverers={"local": Recorder()}, hostname="h")
runner.run()
print("done", flush=True)
"""


def _count_lines(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _spawn(code, *args):
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        env=subprocess_env(),
    )


def test_kill_9_during_enqueue_loses_nothing_acknowledged(tmp_path):
    rng = random.Random(1234)
    acked: dict[str, int] = {}
    for _ in range(8):
        child = _spawn(ENQUEUER, tmp_path)
        assert child.stdout is not None
        first = child.stdout.readline()  # started and acknowledging (a loaded machine is slow)
        time.sleep(rng.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        for line in (first + out).decode().splitlines():
            qid, n = line.split()
            acked[qid] = int(n)
    assert acked, "the enqueuer acknowledged nothing"
    store = QueueStore(tmp_path)
    removed = store.cleanup(min_age=0)
    assert not set(removed) & {f"qf{q}" for q in acked}
    ids = set(store.queue_ids())
    assert set(acked) <= ids
    for qid in ids:  # every qf left is whole, acknowledged or not
        parsed = store.read(qid)
        n = int(parsed.headers[0].value.split("=")[1])
        assert (tmp_path / f"df{qid}").read_bytes() == (b"message %d\n" % n) * 200
        if qid in acked:
            assert acked[qid] == n
    leftovers = [n for n in os.listdir(tmp_path) if not n.startswith(("qf", "df"))]
    assert leftovers == []
    assert {n[2:] for n in os.listdir(tmp_path) if n.startswith("df")} == ids


def test_kill_9_during_delivery_delivers_everything_duplicates_only_per_kill(tmp_path):
    queue_dir = tmp_path / "q"
    queue_dir.mkdir()
    record = tmp_path / "delivered"
    store = QueueStore(queue_dir, fsync=False)
    from pysendmail.envelope import Envelope, Recipient

    queued = {
        store.enqueue(Envelope(sender="a@x", recipients=[Recipient("bob")]), [], b"b\n")
        for _ in range(300)
    }
    rng = random.Random(99)
    kills = 0
    for _ in range(6):
        # Killed once it has delivered a few more (by the clock alone a fast runner could
        # finish first): 6 rounds of at most 40 leave messages for every round.
        before = _count_lines(record)
        goal = before + rng.randint(1, 40)
        child = _spawn(RUNNER, queue_dir, record)
        deadline = time.monotonic() + 60
        while _count_lines(record) < goal and child.poll() is None:
            assert time.monotonic() < deadline, "the runner delivered nothing"
            time.sleep(0.001)
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.communicate()
    assert kills == 6, "a runner finished before it was killed"
    child = _spawn(RUNNER, queue_dir, record)
    out, _ = child.communicate(timeout=120)
    assert out.decode().strip() == "done"
    delivered = record.read_text().split() if record.exists() else []
    assert set(delivered) == queued  # everything acknowledged was delivered
    assert len(delivered) - len(queued) <= kills
    assert QueueStore(queue_dir).queue_ids() == []
