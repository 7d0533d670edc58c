"""A queue run's local deliveries as root: one writer child per user for the whole run
(not one fork per message), each message still appended, fsync'ed and answered on its
own; a child that dies costs only the message it was writing, and a message that
cannot be read is truncated away."""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pysendmail.delivery.local import LocalSettings, deliver_local
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.prog import RunIdentity
from pysendmail.delivery.result import Outcome
from pysendmail.delivery.user_writers import UserWriters
from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue.deliverers import LocalDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from tests.delivery_support import IS_ROOT, NOBODY_UID, world_enterable_dir

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="writing as another user needs root")

USERS = {"ann": (NOBODY_UID, NOBODY_UID), "ben": (1, 1)}  # nobody and daemon's ids


def lookup(name: str) -> RunIdentity | None:
    ids = USERS.get(name)
    return RunIdentity(name, ids[0], ids[1], "/") if ids else None


@pytest.fixture
def spool() -> Iterator[Path]:
    with world_enterable_dir() as path:
        yield path


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids this process forks (the real fork still happens)."""
    seen: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            seen.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counting_fork)
    return seen


def _message(n: int, body: object = None) -> OutgoingMessage:
    headers = f"From: a@example.com\nSubject: number {n}\n".encode()
    return OutgoingMessage("<a@example.com>", headers, body or f"body {n}\n".encode())


def _settings(spool: Path) -> LocalSettings:
    return LocalSettings(spool_dir=spool, user_lookup=lookup, lock_timeout=5)


def test_one_child_per_user_for_many_messages(spool, forks):
    settings = _settings(spool)
    with UserWriters() as writers:
        for n in range(6):
            user = "ann" if n % 3 else "ben"
            [result] = deliver_local(_message(n), [user], settings, writer=writers)
            assert result.outcome is Outcome.SENT, result
    assert len(forks) == 2
    ann, ben = (spool / "ann").read_bytes(), (spool / "ben").read_bytes()
    assert [ann.count(f"Subject: number {n}\n".encode()) for n in (1, 2, 4, 5)] == [1] * 4
    assert ben.count(b"Subject: number ") == 2 and b"number 3\n" in ben
    assert (spool / "ann").stat().st_uid == NOBODY_UID and (spool / "ben").stat().st_uid == 1
    assert ann.startswith(b"From a@example.com ") and ann.endswith(b"body 5\n\n")


def test_a_dead_child_defers_its_message_and_a_new_child_takes_the_next(spool):
    settings = _settings(spool)
    with UserWriters() as writers:
        assert deliver_local(_message(1), ["ann"], settings, writer=writers)[0].is_success
        [child] = writers._children.values()
        os.kill(child.pid, signal.SIGKILL)
        os.waitpid(child.pid, 0)
        [lost] = deliver_local(_message(2), ["ann"], settings, writer=writers)
        assert lost.outcome is Outcome.DEFERRED and "child died" in lost.text
        [again] = deliver_local(_message(3), ["ann"], settings, writer=writers)
        assert again.is_success
    box = (spool / "ann").read_bytes()
    assert b"number 1\n" in box and b"number 2\n" not in box and b"number 3\n" in box


def test_unreadable_message_leaves_the_mailbox_as_it_was(spool):
    settings = _settings(spool)

    def breaks_midway() -> Iterator[bytes]:
        yield b"first part of the body\n" * 1000
        raise OSError(5, "Input/output error")

    with UserWriters() as writers:
        assert deliver_local(_message(1), ["ann"], settings, writer=writers)[0].is_success
        before = (spool / "ann").read_bytes()
        [broken] = deliver_local(_message(2, breaks_midway), ["ann"], settings, writer=writers)
        assert broken.outcome is Outcome.DEFERRED
        assert (spool / "ann").read_bytes() == before
        assert deliver_local(_message(3), ["ann"], settings, writer=writers)[0].is_success
    assert (spool / "ann").read_bytes().count(b"Subject: number ") == 2


@dataclass
class Routed:
    mailer: str
    user: str
    address: str


def test_queue_run_keeps_the_children_for_the_run_and_ends_them_after(tmp_path, spool, forks):
    store = QueueStore(tmp_path)
    qids = [
        store.enqueue(
            Envelope(sender="<a@example.com>", recipients=[Recipient("<ann>"), Recipient("<ben>")]),
            [Header("Subject", f"queued {n}")],
            f"queued body {n}\n".encode(),
            hostname="mail.example.com",
        )
        for n in range(4)
    ]
    runner = QueueRunner(
        store,
        route=lambda rcpt, message: [Routed("local", rcpt.bare_address, rcpt.bare_address)],
        deliverers={"local": LocalDeliverer(_settings(spool))},
        hostname="mail.example.com",
    )
    summary = runner.run()
    assert summary.attempted == 4
    assert all(o.removed for o in summary.outcomes)
    assert not any(store.path("qf", q).exists() for q in qids)
    assert len(forks) == 2
    for user in ("ann", "ben"):
        assert (spool / user).read_bytes().count(b"Subject: queued ") == 4
    for pid in forks:  # every child was reaped when the run ended
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    # a lone attempt (the daemon's delivery on arrival) still forks per message
    qid = store.enqueue(
        Envelope(sender="<a@example.com>", recipients=[Recipient("<ann>")]),
        [Header("Subject", "alone")],
        b"alone\n",
        hostname="mail.example.com",
    )
    assert runner.run_one(qid).removed
    assert len(forks) == 3


def test_a_writer_child_keeps_none_of_the_parents_files_open(spool):
    """A child lives for the whole run: it must not hold, say, an SMTP client's socket
    that the daemon has closed (the client would wait for the close)."""
    read_end, write_end = os.pipe()
    try:
        with UserWriters() as writers:
            assert deliver_local(_message(1), ["ann"], _settings(spool), writer=writers)[0]
            os.close(write_end)  # the parent's only copy, if the child kept none
            write_end = -1
            ready, _, _ = select.select([read_end], [], [], 30)
            assert ready and os.read(read_end, 1) == b""  # end of file: nobody else has it
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
