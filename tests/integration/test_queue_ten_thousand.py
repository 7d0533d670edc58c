"""A queue of 10,000 messages is listed by the real `mailq` command and drained by one
queue run: every message is handed to its mailer exactly once with its body read from
its df, and the queue directory is left empty. The mailer here only records what it is
given (delivery itself is tested in test_delivery_*: this is about the queue)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pysendmail.delivery.result import DeliveryResult
from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from pysendmail.record import record
from tests.conftest import command, subprocess_env

COUNT = 10_000


@record
class Routed:
    mailer: str
    address: str


class Recording:
    def __init__(self) -> None:
        self.handed: dict[str, bytes] = {}

    def deliver(self, message, deliveries):
        assert message.qid not in self.handed  # never twice
        self.handed[message.qid] = message.read_body()
        return [DeliveryResult.sent(d.address, mailer="local") for d in deliveries]


def _mailq(queue: Path, oracle_dir: Path, tmp_path: Path) -> str:
    cf = oracle_dir / "configs" / "office" / "office.cf"
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    run = subprocess.run(
        [*command("mailq"), "-C", str(cf), "-O", f"QueueDirectory={queue}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_ten_thousand_messages_are_listed_and_drained(oracle_dir, tmp_path):
    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700)
    store = QueueStore(queue, fsync=False)
    queued = {
        store.enqueue(
            Envelope(sender="<s@example.com>", recipients=[Recipient(f"<u{n % 7}@here>")]),
            [Header("Subject", f"number {n}")],
            f"body of message {n}\n".encode(),
            hostname="mail.example.com",
        ): n
        for n in range(COUNT)
    }
    listing = _mailq(queue, oracle_dir, tmp_path)
    assert listing.startswith(f"\t\t{queue} ({COUNT} requests)\n")
    assert listing.endswith(f"\t\tTotal requests: {COUNT}\n")
    assert sum(line[:14] in queued for line in listing.splitlines()) == COUNT

    mailer = Recording()
    runner = QueueRunner(
        store,
        route=lambda rcpt, message: [Routed("local", rcpt.bare_address)],
        deliverers={"local": mailer},
        hostname="mail.example.com",
    )
    summary = runner.run()
    assert summary.attempted == COUNT and all(o.removed for o in summary.outcomes)
    assert mailer.handed == {qid: f"body of message {n}\n".encode() for qid, n in queued.items()}
    assert list(queue.iterdir()) == []
    assert _mailq(queue, oracle_dir, tmp_path) == f"{queue} is empty\n\t\tTotal requests: 0\n"
