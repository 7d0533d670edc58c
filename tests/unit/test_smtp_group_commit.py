"""The queue store's group commit as the SMTP daemon uses it (`store.group_commit`):
sessions committing together share one syncfs for their df+tf data and one directory
fsync, a failure at any step is a temporary failure that leaves nothing of the new
message, and without syncfs the per-file fdatasyncs are used."""

import errno
import os
import threading
import time

import pytest

from pysendmail.envelope import Envelope, Recipient
from pysendmail.errors import QueueError
from pysendmail.headers import Header
from pysendmail.queue.store import FileOps, QueueStore

HEADERS = [Header("Subject", "group"), Header("From", "alice@example.com")]


def _envelope() -> Envelope:
    return Envelope(sender="alice@example.com", recipients=[Recipient("bob")])


def _files(queue_dir) -> list[str]:
    return sorted(os.listdir(queue_dir))


class CountingOps(FileOps):
    """Counts the syncs; a syncfs is slow (committers pile up behind it)."""

    def __init__(self, syncfs_delay: float = 0.0) -> None:
        self.syncfs_calls = 0
        self.datasyncs = 0
        self.syncfs_delay = syncfs_delay
        self.lock = threading.Lock()

    def syncfs(self, fd):
        with self.lock:
            self.syncfs_calls += 1
        time.sleep(self.syncfs_delay)
        super().syncfs(fd)

    def datasync(self, fd):
        with self.lock:
            self.datasyncs += 1
        super().datasync(fd)


def _group_store(path, ops) -> QueueStore:
    store = QueueStore(path, ops=ops)
    store.group_commit = True
    return store


def test_concurrent_sessions_share_one_syncfs_and_fsync_no_file_of_their_own(tmp_path):
    ops = CountingOps(syncfs_delay=0.05)
    store = _group_store(tmp_path, ops)
    start = threading.Barrier(16)
    ids: list[str] = []

    def session(number: int) -> None:
        start.wait()
        ids.append(store.enqueue(_envelope(), HEADERS, b"message %d\n" % number))

    threads = [threading.Thread(target=session, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 16 and sorted(store.queue_ids()) == sorted(ids)
    assert ops.datasyncs == 0
    assert 1 <= ops.syncfs_calls < 16
    assert store.data_syncer.fsync_count == ops.syncfs_calls
    bodies = {(tmp_path / f"df{qid}").read_bytes() for qid in ids}
    assert bodies == {b"message %d\n" % n for n in range(16)}


def test_a_lone_commit_costs_one_syncfs_and_one_directory_fsync(tmp_path):
    ops = CountingOps()
    store = _group_store(tmp_path, ops)
    qid = store.enqueue(_envelope(), HEADERS, b"alone\n")
    assert _files(tmp_path) == [f"df{qid}", f"qf{qid}"]
    assert (ops.syncfs_calls, ops.datasyncs, store.syncer.fsync_count) == (1, 0, 1)


class FailingOps(FileOps):
    """Fails the n-th call of one operation with EIO."""

    def __init__(self, op: str, nth: int = 1) -> None:
        self.op, self.nth, self.calls = op, nth, 0

    def _maybe_fail(self, op: str) -> None:
        if op == self.op:
            self.calls += 1
            if self.calls == self.nth:
                raise OSError(errno.EIO, os.strerror(errno.EIO))

    def open(self, path, flags, mode=0o600):
        self._maybe_fail("open")
        return super().open(path, flags, mode)

    def write(self, fd, data):
        self._maybe_fail("write")
        return super().write(fd, data)

    def syncfs(self, fd):
        self._maybe_fail("syncfs")
        super().syncfs(fd)

    def fsync(self, fd):
        self._maybe_fail("fsync")
        super().fsync(fd)

    def rename(self, src, dst):
        self._maybe_fail("rename")
        super().rename(src, dst)


@pytest.mark.parametrize(
    ("op", "nth"),
    [
        ("open", 1),  # df create
        ("write", 1),  # df write
        ("open", 2),  # tf create
        ("write", 2),  # tf write
        ("open", 3),  # the directory, for the syncfs
        ("syncfs", 1),  # the shared data sync
        ("rename", 1),  # tf -> qf
        ("open", 4),  # the directory, for its fsync
        ("fsync", 1),  # the directory fsync
    ],
)
def test_a_failure_at_each_group_commit_step_acknowledges_nothing_and_keeps_the_queue(
    tmp_path, op, nth
):
    kept = QueueStore(tmp_path).enqueue(_envelope(), HEADERS, b"already queued\n")
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}
    store = _group_store(tmp_path, FailingOps(op, nth))
    with pytest.raises(QueueError) as info:
        store.enqueue(_envelope(), HEADERS, b"new message\n" * 10)
    assert info.value.is_temporary
    assert {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)} == before
    assert store.lock(kept) is not None


def test_after_a_failed_syncfs_the_next_commit_syncs_again(tmp_path):
    store = _group_store(tmp_path, FailingOps("syncfs", 1))
    with pytest.raises(QueueError):
        store.enqueue(_envelope(), HEADERS, b"first\n")
    qid = store.enqueue(_envelope(), HEADERS, b"second\n")
    assert _files(tmp_path) == [f"df{qid}", f"qf{qid}"]
    assert store.data_syncer.fsync_count == 1


class NoSyncfs(CountingOps):
    def syncfs(self, fd):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))


def test_without_syncfs_the_df_and_tf_are_fsynced_one_by_one(tmp_path):
    ops = NoSyncfs()
    store = _group_store(tmp_path, ops)
    first = store.enqueue(_envelope(), HEADERS, b"one\n")
    second = store.enqueue(_envelope(), HEADERS, b"two\n")
    assert _files(tmp_path) == sorted([f"df{first}", f"qf{first}", f"df{second}", f"qf{second}"])
    assert ops.datasyncs == 4 and store.group_commit is False
