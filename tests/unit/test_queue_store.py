"""The queue directory: durable enqueue, each crash state, disk full, locks, quarantine."""

import errno
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from pysendmail.envelope import Envelope, Recipient
from pysendmail.errors import QueueError
from pysendmail.headers import Header
from pysendmail.queue import qf as qfmod
from pysendmail.queue.store import FileOps, QueueStore


def _envelope(*rcpts: str) -> Envelope:
    recipients = [Recipient(r) for r in rcpts or ("bob",)]
    return Envelope(sender="alice@example.com", recipients=recipients)


HEADERS = [Header("Subject", "test"), Header("From", "alice@example.com")]


def _files(queue_dir):
    return sorted(os.listdir(queue_dir))


def test_enqueue_writes_qf_and_df_with_mode_0600_and_leaves_no_tf(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope("bob", "carol"), HEADERS, b"line one\nline two\n")
    assert _files(tmp_path) == [f"df{qid}", f"qf{qid}"]
    for name in _files(tmp_path):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600
    assert (tmp_path / f"df{qid}").read_bytes() == b"line one\nline two\n"
    parsed = store.read(qid)
    assert [r.address for r in parsed.recipients] == ["bob", "carol"]
    assert parsed.priority == 60000 + len(b"Subject: test\nFrom: alice@example.com\n\n") + 18
    assert qfmod.is_queue_id(qid)


def test_draft_streams_the_body_in_chunks(tmp_path):
    store = QueueStore(tmp_path)
    draft = store.open_draft()
    for i in range(5000):
        draft.write(b"line %05d\n" % i)
    draft.write("caf\u00e9\n".encode())
    qid = draft.commit(_envelope(), HEADERS, msg_size=1000)
    body = (tmp_path / f"df{qid}").read_bytes()
    assert len(body) == 5000 * 11 + 6 and body.endswith("café\n".encode())
    assert store.read(qid).has_flag("8") and store.read(qid).priority == 31000


def test_abort_removes_the_draft(tmp_path):
    store = QueueStore(tmp_path)
    with store.open_draft() as draft:
        draft.write(b"x\n")
        assert _files(tmp_path) == [f"df{draft.qid}"]
    assert _files(tmp_path) == []


class FailingOps(FileOps):
    """Fails the n-th call of one operation with ENOSPC."""

    def __init__(self, op: str, nth: int = 1, code: int = errno.ENOSPC) -> None:
        self.op, self.nth, self.code, self.calls = op, nth, code, 0

    def _maybe_fail(self, op: str) -> None:
        if op == self.op:
            self.calls += 1
            if self.calls == self.nth:
                raise OSError(self.code, os.strerror(self.code))

    def write(self, fd, data):
        self._maybe_fail("write")
        return super().write(fd, data)

    def fsync(self, fd):
        self._maybe_fail("fsync")
        super().fsync(fd)

    def datasync(self, fd):
        self._maybe_fail("fsync")
        super().datasync(fd)

    def rename(self, src, dst):
        self._maybe_fail("rename")
        super().rename(src, dst)

    def open(self, path, flags, mode=0o600):
        self._maybe_fail("open")
        return super().open(path, flags, mode)


@pytest.mark.parametrize(
    ("op", "nth"),
    [
        ("open", 1),  # df create
        ("write", 1),  # df write
        ("fsync", 1),  # df fsync
        ("open", 2),  # tf create
        ("write", 2),  # tf write
        ("fsync", 2),  # tf fsync
        ("rename", 1),  # tf -> qf
        ("open", 3),  # opening the directory to sync it
        ("fsync", 3),  # directory fsync
    ],
)
def test_disk_full_at_each_step_is_a_temporary_failure_and_loses_nothing_queued(tmp_path, op, nth):
    good = QueueStore(tmp_path)
    kept = good.enqueue(_envelope(), HEADERS, b"already queued\n")
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}
    store = QueueStore(tmp_path, ops=FailingOps(op, nth))
    with pytest.raises(QueueError) as info:
        store.enqueue(_envelope(), HEADERS, b"new message\n" * 10)
    assert info.value.is_temporary and info.value.exit_code == 75
    assert "No space left on device" in str(info.value)
    assert {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)} == before
    assert good.lock(kept) is not None


def _mount_tmpfs(path) -> bool:
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True
    )
    return result.returncode == 0


def test_a_really_full_tmpfs_refuses_with_queue_error_and_keeps_what_was_queued(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if not _mount_tmpfs(mount_point):
        pytest.skip("cannot mount a tmpfs here (needs root and mount(8))")
    try:
        store = QueueStore(mount_point)
        queued = []
        with pytest.raises(QueueError):
            for _ in range(100):
                queued.append(store.enqueue(_envelope(), HEADERS, b"y" * 8000))
        assert queued, "at least one message fits"
        for qid in queued:
            assert (mount_point / f"df{qid}").read_bytes() == b"y" * 8000
            assert store.read(qid).recipients[0].address == "bob"
        assert not [n for n in os.listdir(mount_point) if n.startswith("tf")]
        assert len([n for n in os.listdir(mount_point) if n.startswith("df")]) == len(queued)
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


# ---------------------------------------------------------------- crash states


def _age(path, seconds=40 * 3600):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_crash_in_s1_leaves_an_orphan_df_that_is_not_queued_and_is_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    draft = store.open_draft()
    draft.write(b"partial")
    draft._flush()  # the process dies here: no commit, no abort
    assert store.queue_ids() == []
    assert store.cleanup() == []  # young: may belong to a live writer
    _age(tmp_path / f"df{draft.qid}")
    assert store.cleanup() == [f"df{draft.qid}"]


def test_crash_in_s2_leaves_df_and_tf_that_are_not_queued_and_are_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    (tmp_path / "df6AQBB1aa000001").write_bytes(b"body\n")
    (tmp_path / "tf6AQBB1aa000001").write_bytes(b"V8\nT1\n")  # half-written tf
    assert store.queue_ids() == []
    for name in _files(tmp_path):
        _age(tmp_path / name)
    assert sorted(store.cleanup()) == ["df6AQBB1aa000001", "tf6AQBB1aa000001"]


def test_s3_s4_a_renamed_qf_is_a_queued_message(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    for name in _files(tmp_path):
        _age(tmp_path / name)
    assert store.cleanup() == [] and store.queue_ids() == [qid]


def test_s5_a_crashed_runner_leaves_the_qf_unchanged_and_unlocked(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    before = (tmp_path / f"qf{qid}").read_bytes()
    code = (
        "import sys; from pysendmail.queue.store import QueueStore; import os\n"
        f"m = QueueStore({str(tmp_path)!r}).lock({qid!r}); assert m; os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert (tmp_path / f"qf{qid}").read_bytes() == before
    assert store.lock(qid) is not None


def test_s6_a_stale_tf_beside_its_qf_loses_to_the_qf_and_is_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    (tmp_path / f"tf{qid}").write_bytes(b"V8\nT")
    locked = store.lock(qid)
    assert locked is not None and locked.queue_file.recipients[0].address == "bob"
    locked.release()
    _age(tmp_path / f"tf{qid}")
    assert store.cleanup() == [f"tf{qid}"]
    assert store.queue_ids() == [qid]


def test_s7_removal_unlinks_qf_before_df(tmp_path):
    order = []

    class Recording(FileOps):
        def unlink(self, path):
            order.append(os.path.basename(path)[:2])
            super().unlink(path)

    store = QueueStore(tmp_path, ops=Recording())
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    store.remove(store.lock(qid))
    assert order == ["qf", "df"] and _files(tmp_path) == []


def test_a_locked_tf_is_not_cleaned(tmp_path):
    store = QueueStore(tmp_path)
    path = tmp_path / "tf6AQBB1aa000002"
    path.write_bytes(b"")
    _age(path)
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert store.cleanup() == []


# ---------------------------------------------------------------- locks and rewrite


def test_one_message_is_locked_by_one_runner_at_a_time(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    first = store.lock(qid)
    assert first is not None
    assert store.lock(qid) is None and store.is_locked(qid)
    first.release()
    assert not store.is_locked(qid)
    assert store.lock(qid) is not None


def test_a_lock_held_by_another_process_is_respected(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    code = (
        "import fcntl, sys, time\n"
        f"f = open({str(tmp_path / ('qf' + qid))!r}, 'rb'); fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline() == b"locked\n"
        assert store.lock(qid) is None
    finally:
        child.communicate(b"")
    assert store.lock(qid) is not None


def test_rewrite_keeps_the_lock_and_replaces_the_qf_atomically(tmp_path):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope("bob", "carol"), HEADERS, b"b\n")
    locked = store.lock(qid)
    locked.queue_file.recipients = locked.queue_file.recipients[1:]
    locked.queue_file.attempts = 1
    locked.queue_file.status = "Deferred: try later"
    store.rewrite(locked)
    assert store.lock(qid) is None  # still ours
    reread = store.read(qid)
    assert [r.address for r in reread.recipients] == ["carol"] and reread.attempts == 1
    assert not (tmp_path / f"tf{qid}").exists()
    locked.release()
    assert store.lock(qid).queue_file.status == "Deferred: try later"


def test_corrupt_qf_is_renamed_Qf_and_logged_and_the_run_goes_on(tmp_path, caplog):
    store = QueueStore(tmp_path)
    good = store.enqueue(_envelope(), HEADERS, b"b\n")
    (tmp_path / "qf6AQBB1zz000009").write_bytes(b"V8\nthis is not a queue file\n")
    (tmp_path / "df6AQBB1zz000009").write_bytes(b"b\n")
    with caplog.at_level(logging.ERROR, logger="pysendmail.queue"):
        results = {qid: store.lock(qid) for qid in store.queue_ids()}
    assert results["6AQBB1zz000009"] is None and results[good] is not None
    assert (tmp_path / "Qf6AQBB1zz000009").exists()
    assert "6AQBB1zz000009" in caplog.text and "unreadable" in caplog.text


def test_qf_without_df_is_renamed_Qf(tmp_path, caplog):
    store = QueueStore(tmp_path)
    qid = store.enqueue(_envelope(), HEADERS, b"b\n")
    os.unlink(tmp_path / f"df{qid}")
    with caplog.at_level(logging.ERROR, logger="pysendmail.queue"):
        assert store.lock(qid) is None
    assert _files(tmp_path) == [f"Qf{qid}"] and "data file missing" in caplog.text


def test_binary_garbage_qf_is_quarantined(tmp_path):
    store = QueueStore(tmp_path)
    (tmp_path / "qf6AQBB1zz000010").write_bytes(os.urandom(300) + b"\n")
    (tmp_path / "df6AQBB1zz000010").write_bytes(b"")
    assert store.lock("6AQBB1zz000010") is None
    assert (tmp_path / "Qf6AQBB1zz000010").exists()


# ---------------------------------------------------------------- group commit


class SlowDirSync(FileOps):
    def __init__(self):
        self.dir_fsyncs = 0
        self.lock = threading.Lock()

    def fsync(self, fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            with self.lock:
                self.dir_fsyncs += 1
            time.sleep(0.05)  # a slow disk: committers pile up behind it
        super().fsync(fd)


def test_concurrent_commits_share_directory_fsyncs(tmp_path):
    ops = SlowDirSync()
    store = QueueStore(tmp_path, ops=ops)
    start = threading.Barrier(16)
    ids = []

    def submit():
        start.wait()
        ids.append(store.enqueue(_envelope(), HEADERS, b"b\n"))

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 16 and sorted(store.queue_ids()) == sorted(ids)
    assert ops.dir_fsyncs < 16
    assert store.syncer.fsync_count == ops.dir_fsyncs


def test_fsync_can_be_turned_off(tmp_path):
    ops = SlowDirSync()
    store = QueueStore(tmp_path, ops=ops, fsync=False)
    store.enqueue(_envelope(), HEADERS, b"b\n")
    assert ops.dir_fsyncs == 0


def test_a_process_out_of_queue_ids_for_this_second_waits_for_the_next(tmp_path, monkeypatch):
    class Ids:
        def __init__(self):
            self.served = 0

        def next_id(self):
            self.served += 1
            return "6AQBB1aa000001" if self.served <= 7200 else "6AQBB2aa000001"

    sleeps = []
    monkeypatch.setattr("pysendmail.queue.store.time.sleep", sleeps.append)
    (tmp_path / "qf6AQBB1aa000001").write_bytes(b"")
    store = QueueStore(tmp_path, id_generator=Ids())
    with store.open_draft() as draft:
        assert draft.qid == "6AQBB2aa000001"
    assert len(sleeps) == 2
