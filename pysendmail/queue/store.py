"""The durable queue directory: enqueue, locks, rewrite, removal, quarantine.

Nothing is acknowledged before `Draft.commit()` returns, and `commit()` returns only
once the message is on stable storage. The files of one message go through these
states (ID = the queue ID; "crash" = the process dies or the machine loses power):

  S0  nothing.                                  Crash: nothing.
  S1  df<ID> being written (open_draft, write).  Crash: an orphan df, never acknowledged;
      `cleanup()` removes it once old.
  S2  df fsynced, tf<ID> being written (commit). Crash: df + partial tf, never
      acknowledged; `cleanup()` removes both once old.
  S3  tf fsynced and renamed to qf<ID>, directory not yet synced. Power loss: the rename
      may be lost (back to S2). Process crash: the message is queued but was not
      acknowledged; it is delivered, and the client may send it again (the duplicate
      window every MTA has).
  S4  directory fsynced: commit() returns the ID; the message is acknowledged, durable.
  S5  a runner holds the qf's flock while delivering. Crash: the kernel drops the lock,
      the qf is as before the attempt, so recipients delivered in that attempt are
      delivered again: the one window sendmail also has, between a mailer's success
      and the qf rewrite.
  S6  rewrite(): tf written and fsynced, then renamed over the qf. Crash before the
      rename: the old qf wins; `cleanup()` removes the stale tf.
  S7  remove(): the qf is unlinked first, then the df. Crash between: an orphan df of a
      finished message; `cleanup()` removes it.
  lost  a qf that cannot be parsed, or whose df is missing, is renamed Qf<ID> and logged
      (`quarantine_lost()`); it is kept for the administrator and never run again.

A qf is always created by rename, so a reader sees a whole qf or none; a df exists before
its qf and is removed after it, so a qf without a df is damage (-> lost). Locks are
flock(2) locks on the qf, the kind sendmail takes on Linux, held by the open file, so two
runners (processes or threads) never work on one message at once.

Disk errors (ENOSPC, EIO, EDQUOT) raise QueueError, a temporary failure; what was
already queued is untouched. Every file operation goes through `FileOps`, the seam the
tests use to inject failures.

Group commit: `commit()` fsyncs its own df and tf, then asks the directory's
`DirectorySyncer` for a directory fsync that *starts* after its rename. Committers that
arrive while one fsync runs share the next one, so N threads committing together cost
about two directory fsyncs, not N.

With `group_commit` set (the SMTP daemon sets it), the df and tf data are not fsynced one
by one either: after writing its tf a committer asks `data_syncer` for one syncfs(2) of
the queue's file system that starts after its writes, shared by every session waiting
at that moment, and only then renames tf to qf (S2 -> S3 above keeps its order: whole
files on disk before the name). A commit thus costs two shared syncs instead of two
fsyncs of its own plus a shared one. syncfs reports write-back errors (Linux 5.8 and
later); where it is missing the per-file fdatasyncs are used.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import time
from _thread import allocate_lock  # locks without importing threading (start-up time)

from pysendmail.envelope import Envelope
from pysendmail.errors import QueueError
from pysendmail.headers import Header
from pysendmail.queue import qf as qfmod
from pysendmail.queue.qf import QueueFile, QueueFileCorrupt, QueueIdGenerator
from pysendmail.record import record
from pysendmail.record import replace as replace_fields

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)

if TYPE_CHECKING:
    import logging
    from collections.abc import Iterator
    from pathlib import Path  # built when asked for: the submission path does without it


def _log() -> logging.Logger:
    """The queue's logger; `logging` is imported only when there is something to log."""
    import logging

    return logging.getLogger("pysendmail.queue")


_FILE_MODE = 0o600
_WRITE_BUFFER = 64 * 1024
# Orphans (df without qf, stale tf) younger than this may belong to a live writer.
ORPHAN_AGE = 36 * 3600


_LIBC = None  # the C library, loaded by the first syncfs


class FileOps:
    """The file operations the store makes; tests subclass it to inject failures."""

    def open(self, path: str, flags: int, mode: int = _FILE_MODE) -> int:
        return os.open(path, flags, mode)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def datasync(self, fd: int) -> None:
        """Flush a file's data and size (not its times): enough for a df or tf, whose
        name is made durable by the directory fsync."""
        os.fdatasync(fd)

    def syncfs(self, fd: int) -> None:
        """Flush every file of fd's file system to disk (Linux syncfs(2))."""
        import ctypes  # only the daemon's group commit comes here

        global _LIBC
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        if _LIBC.syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def close(self, fd: int) -> None:
        os.close(fd)


def _write_all(ops: FileOps, fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = ops.write(fd, view)
        view = view[written:]


def _queue_error(action: str, error: OSError) -> QueueError:
    reason = os.strerror(error.errno) if error.errno else str(error)
    return QueueError(f"queue: cannot {action}: {reason}")


class DirectorySyncer:
    """One directory fsync shared by every commit that is waiting for it; with
    `whole_filesystem`, one syncfs of the directory's file system instead.

    Committers take turns (`_turn`); each counts the sync it needs when it arrives (the
    next one to start), and when its turn comes either finds that sync done by another
    committer meanwhile, or runs it itself for everyone who is waiting. Plain locks, not
    a threading.Condition: `threading` is not imported on the submission path."""

    def __init__(self, directory: str, ops: FileOps, *, whole_filesystem: bool = False) -> None:
        self._directory = directory
        self._ops = ops
        self._whole_filesystem = whole_filesystem
        self._counters = allocate_lock()  # guards _started and _done
        self._turn = allocate_lock()  # held by the committer whose sync runs
        self._started = 0
        self._done = 0
        self._fd = -1  # the directory, opened by the first sync and kept
        self.fsync_count = 0  # for tests and benchmarks

    def sync(self) -> None:
        """Return once a directory fsync that began after this call has finished."""
        with self._counters:
            needed = self._started + 1
        with self._turn:
            with self._counters:
                if self._done >= needed:
                    return
                self._started += 1
                generation = self._started
            if self._fd < 0:
                self._fd = self._ops.open(self._directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if self._whole_filesystem:
                    self._ops.syncfs(self._fd)
                else:
                    self._ops.fsync(self._fd)
            except OSError:
                self.close()  # the next sync opens the directory afresh
                raise
            with self._counters:
                self._done = generation
                self.fsync_count += 1

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                self._ops.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()


class Draft:
    """A message being written: the body streams into df<ID>; commit() queues it."""

    def __init__(self, store: QueueStore, qid: str, df_fd: int) -> None:
        self.store = store
        self.qid = qid
        self._fd: int | None = df_fd
        self._buffer = bytearray()
        self.size = 0
        self.has_8bit = False
        self.finished = False

    def write(self, chunk: bytes) -> None:
        """Append body bytes (LF line ends, no dot-stuffing) to the df."""
        if self.finished or self._fd is None:
            raise QueueError("queue: write to a finished draft")
        if not self.has_8bit and not chunk.isascii():
            self.has_8bit = True
        self.size += len(chunk)
        self._buffer += chunk
        if len(self._buffer) >= _WRITE_BUFFER:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer or self._fd is None:
            return
        try:
            _write_all(self.store.ops, self._fd, bytes(self._buffer))
        except OSError as error:
            self.abort()
            raise _queue_error(f"write df{self.qid}", error) from error
        self._buffer.clear()

    def commit(
        self,
        envelope: Envelope,
        headers: list[Header],
        *,
        msg_size: int | None = None,
        hostname: str | None = None,
        msg_class: int = 0,
        now: float | None = None,
    ) -> str:
        """Make the message durable (df, tf, rename to qf, directory fsync); its queue ID.

        `msg_size` is what sendmail counts for the priority: the header block as received
        plus the body; by default the rendered headers, a separator line and the body.
        """
        qf = self.build_queue_file(
            envelope, headers, msg_size=msg_size, hostname=hostname, msg_class=msg_class, now=now
        )
        return self.commit_queue_file(qf)

    def build_queue_file(
        self,
        envelope: Envelope,
        headers: list[Header],
        *,
        msg_size: int | None = None,
        hostname: str | None = None,
        msg_class: int = 0,
        now: float | None = None,
    ) -> QueueFile:
        if msg_size is None:
            header_size = sum(len(h.text().encode("utf-8", "surrogateescape")) + 1 for h in headers)
            msg_size = header_size + (1 if headers else 0) + self.size
        envelope_copy = envelope
        if self.has_8bit and "8" not in envelope.flags:
            envelope_copy = replace_fields(envelope, flags={*envelope.flags, "8"})
        return qfmod.from_envelope(
            self.qid,
            envelope_copy,
            headers,
            msg_size=msg_size,
            queued_at=int(time.time() if now is None else now),
            hostname=hostname,
            msg_class=msg_class,
        )

    def commit_queue_file(self, qf: QueueFile) -> str:
        """Commit with a QueueFile the caller built (its qid must be this draft's)."""
        if self.finished or self._fd is None:
            raise QueueError("queue: commit of a finished draft")
        qf.qid = self.qid
        store = self.store
        self._flush()
        try:
            if store.fsync and not store.group_commit:
                store.ops.datasync(self._fd)  # with group commit: the shared syncfs
            store.ops.close(self._fd)
            self._fd = None
        except OSError as error:
            self.abort()
            raise _queue_error(f"sync df{self.qid}", error) from error
        try:
            store.write_qf(qf, create=True)
        except QueueError:
            self.abort()
            raise
        self.finished = True
        return self.qid

    def abort(self) -> None:
        """Forget the draft: its df (and tf) are removed. Safe to call twice."""
        if self._fd is not None:
            try:
                self.store.ops.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if not self.finished:
            self.finished = True
            # qf too: a commit that failed after its rename was never acknowledged.
            for prefix in ("qf", "tf", "df"):
                try:
                    self.store.ops.unlink(self.store._file(prefix, self.qid))
                except OSError:
                    pass

    def __enter__(self) -> Draft:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.finished:
            self.abort()


@record
class LockedMessage:
    """A qf this process holds the lock of; `queue_file` may be rewritten and saved."""

    qid: str
    fd: int
    queue_file: QueueFile

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the file drops the flock
            self.fd = -1


class QueueStore:
    """One queue directory (QueueDirectory) of qf/df files."""

    def __init__(
        self,
        queue_dir: str | os.PathLike[str],
        *,
        ops: FileOps | None = None,
        fsync: bool = True,
        id_generator: QueueIdGenerator | None = None,
    ) -> None:
        self.directory = os.fspath(queue_dir)
        self.ops = ops or FileOps()
        self.fsync = fsync
        self.ids = id_generator or QueueIdGenerator()
        self.syncer = DirectorySyncer(self.directory, self.ops)
        # New messages' df+tf made durable by one shared syncfs (see the module doc).
        self.group_commit = False
        self.data_syncer = DirectorySyncer(self.directory, self.ops, whole_filesystem=True)

    @property
    def queue_dir(self) -> Path:
        """The directory as a Path (pathlib is imported only when someone asks)."""
        from pathlib import Path

        return Path(self.directory)

    def path(self, prefix: str, qid: str) -> Path:
        return self.queue_dir / f"{prefix}{qid}"

    def _file(self, prefix: str, qid: str) -> str:
        return os.path.join(self.directory, f"{prefix}{qid}")

    # ------------------------------------------------------------ enqueue

    def open_draft(self) -> Draft:
        """Reserve a queue ID (df<ID> created exclusively) and return its draft.

        An ID names its second and pid, with 3600 sequence values each: a process that
        uses them all within one second waits for the next second, as sendmail does.
        """
        deadline = time.monotonic() + 30
        collisions = 0
        while time.monotonic() < deadline:
            qid = self.ids.next_id()
            if os.path.exists(self._file("qf", qid)) or os.path.exists(self._file("tf", qid)):
                collisions += 1
            else:
                try:
                    fd = self.ops.open(
                        self._file("df", qid), os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE
                    )
                except FileExistsError:
                    collisions += 1
                except OSError as error:
                    raise _queue_error(f"create df{qid} in {self.directory}", error) from error
                else:
                    return Draft(self, qid, fd)
            if collisions and collisions % 3600 == 0:
                time.sleep(0.05)
        raise QueueError("queue: no free queue ID")

    def enqueue(self, envelope: Envelope, headers: list[Header], body: bytes, **kwargs) -> str:
        """Queue a whole message at once; returns its queue ID once it is durable."""
        draft = self.open_draft()
        try:
            draft.write(body)
            return draft.commit(envelope, headers, **kwargs)
        except BaseException:
            draft.abort()
            raise

    def write_qf(self, qf: QueueFile, *, create: bool = False, lock_fd: int | None = None) -> int:
        """Write tf<ID>, fsync it, rename it over qf<ID>, fsync the directory.

        Returns the fd of the new qf, locked (the caller owns it), unless `create` is set,
        when it is closed. The tf is locked while written, so a concurrent cleanup leaves it.
        """
        tf_path = self._file("tf", qf.qid)
        data = qfmod.render(qf)
        try:
            fd = self.ops.open(tf_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except OSError as error:
            raise _queue_error(f"create tf{qf.qid}", error) from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(self.ops, fd, data)
            if self.fsync:
                self._sync_new_files(qf.qid, fd, create)
            self.ops.rename(tf_path, self._file("qf", qf.qid))
        except OSError as error:
            self.ops.close(fd)
            try:
                self.ops.unlink(tf_path)
            except OSError:
                pass
            raise _queue_error(f"write qf{qf.qid}", error) from error
        if lock_fd is not None and lock_fd >= 0:
            os.close(lock_fd)
        try:
            if self.fsync:
                self.syncer.sync()
        except OSError as error:
            # The rename happened but may not be durable: not acknowledged.
            if create:
                self.ops.close(fd)
            raise _queue_error(f"sync {self.directory}", error) from error
        if create:
            self.ops.close(fd)
            return -1
        return fd

    def _sync_new_files(self, qid: str, tf_fd: int, create: bool) -> None:
        """Before the rename: the tf's data on disk, and for a new message with group
        commit the df's too, by the one syncfs that every waiting committer shares."""
        if not (create and self.group_commit):
            self.ops.datasync(tf_fd)
            return
        try:
            self.data_syncer.sync()
        except OSError as error:
            if error.errno != errno.ENOSYS:
                raise
            # No syncfs here: the df was closed without a sync, so sync it by name.
            self.group_commit = False
            self.ops.datasync(tf_fd)
            df_fd = self.ops.open(self._file("df", qid), os.O_RDONLY)
            try:
                self.ops.datasync(df_fd)
            finally:
                self.ops.close(df_fd)

    # ------------------------------------------------------------ reading and locking

    def queue_ids(self) -> list[str]:
        """The IDs of every qf in the directory, in directory order."""
        try:
            with os.scandir(self.queue_dir) as entries:
                return [e.name[2:] for e in entries if e.name.startswith("qf")]
        except FileNotFoundError:
            return []

    def read(self, qid: str) -> QueueFile:
        """Parse qf<ID> without locking it (for listings). Raises QueueFileCorrupt/OSError."""
        return qfmod.parse(self.path("qf", qid).read_bytes(), qid)

    def is_locked(self, qid: str) -> bool:
        """Whether another process or thread holds the qf's lock now."""
        try:
            fd = os.open(self.path("qf", qid), os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def lock(self, qid: str) -> LockedMessage | None:
        """Lock and read qf<ID>; None if someone else holds it or it is gone.

        A qf that cannot be parsed, or whose df is missing, is renamed Qf<ID>, logged,
        and None returned: the run goes on with the next message.
        """
        qf_path = self.path("qf", qid)
        try:
            fd = os.open(qf_path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        # The file we locked must still be the one named qf<ID> (not replaced meanwhile).
        try:
            if not _same_file(os.fstat(fd), os.stat(qf_path)):
                os.close(fd)
                return None
        except FileNotFoundError:
            os.close(fd)
            return None
        try:
            data = _read_fd(fd)
            queue_file = qfmod.parse(data, qid)
        except (QueueFileCorrupt, UnicodeError) as error:
            os.close(fd)
            self.quarantine_lost(qid, f"unreadable queue file: {error}")
            return None
        if not self.path("df", qid).exists():
            os.close(fd)
            self.quarantine_lost(qid, "data file missing")
            return None
        return LockedMessage(qid=qid, fd=fd, queue_file=queue_file)

    def rewrite(self, locked: LockedMessage) -> None:
        """Save the locked message's queue file (tf + rename); the lock moves to the new qf."""
        new_fd = self.write_qf(locked.queue_file, lock_fd=locked.fd)
        locked.fd = new_fd

    def remove(self, locked: LockedMessage) -> None:
        """The message is done: qf unlinked first, then df, then the lock dropped."""
        for prefix in ("qf", "df"):
            try:
                self.ops.unlink(self._file(prefix, locked.qid))
            except FileNotFoundError:
                pass
        locked.release()

    def quarantine_lost(self, qid: str, reason: str) -> None:
        """Rename qf<ID> to Qf<ID> (sendmail's "lost" queue file) and log why."""
        try:
            self.ops.rename(self._file("qf", qid), self._file("Qf", qid))
        except OSError as error:
            _log().error(
                "%s: cannot rename qf to Qf: %s (%s)", qid, os.strerror(error.errno), reason
            )
            return
        _log().error("%s: %s: renamed to Qf%s", qid, reason, qid)

    def df_size(self, qid: str) -> int:
        try:
            return os.stat(self.path("df", qid)).st_size
        except OSError:
            return -1

    def df_inode(self, qid: str) -> str | None:
        """The `I` line value sendmail writes: major/minor/inode of the df."""
        try:
            st = os.stat(self.path("df", qid))
        except OSError:
            return None
        return f"{os.major(st.st_dev)}/{os.minor(st.st_dev)}/{st.st_ino}"

    def open_body(self, qid: str):
        """The df opened for reading (binary); the caller closes it."""
        return open(self.path("df", qid), "rb")

    # ------------------------------------------------------------ cleanup

    def cleanup(self, min_age: float = ORPHAN_AGE, now: float | None = None) -> list[str]:
        """Remove what crashes left: stale tf files and df files without a qf.

        Only files older than `min_age` seconds and not locked are removed; the names
        removed are returned.
        """
        now = time.time() if now is None else now
        removed: list[str] = []
        try:
            names = set(os.listdir(self.queue_dir))
        except FileNotFoundError:
            return removed
        for name in sorted(names):
            prefix, qid = name[:2], name[2:]
            if prefix == "tf":
                stale = True
            elif prefix == "df":
                stale = f"qf{qid}" not in names and f"Qf{qid}" not in names
            else:
                continue
            if not stale or not self._old_and_unlocked(name, now - min_age):
                continue
            try:
                os.unlink(self.queue_dir / name)
                removed.append(name)
                _log().info("%s: removed orphan %s", qid, name)
            except FileNotFoundError:
                pass
        return removed

    def _old_and_unlocked(self, name: str, cutoff: float) -> bool:
        path = self.queue_dir / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            st = os.fstat(fd)
            if st.st_mtime > cutoff or not stat.S_ISREG(st.st_mode):
                return False
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def __iter__(self) -> Iterator[str]:
        return iter(self.queue_ids())


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
