"""Where a POP3 user's maildrop is, and how a session holds it for its whole length.

`local_maildrops()` finds a user's mailbox where local delivery writes it (mbox in the
spool, or the Maildir of the cf's `LocalMaildir` template) and opens it through
`pysendmail.maildrop` (an mbox through `pysendmail.mbox_index`, which keeps its index
between sessions), whose mailbox locks (dot-lock and fcntl) are held only while the
maildrop is indexed and while deletions are committed: local delivery is never kept
waiting for a whole POP3 session.

"One session per maildrop" (RFC 1939's exclusive-access lock) is kept by a separate
session lock: an flock(2) on a lock file beside the maildrop, held from login to the end
of the session. Every pysendmail process that serves the same maildrop takes it (two
daemons, two configurations, a daemon and its restarted self), and so can any other
program that flocks the same file; a plain mail reader does not know it, and a reader
that rewrites the mbox meanwhile makes this session's commit refuse to delete anything
(`MaildropChanged`) rather than lose mail. flock, unlike fcntl's record locks, belongs
to the open file, so two sessions in one process exclude each other too, and the kernel
drops it when the holder dies: a lock file left behind holds nothing.

- mbox `SPOOL/USER`: the lock file is `SPOOL/.USER.pop3.lock` (the spool is writable by
  root and group mail only, on Debian, so users cannot make or hold it for another user).
- Maildir `DIR/`: `DIR/pysendmail-pop3.lock`, beside the other readers' files.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

from pysendmail import maildrop as maildrops
from pysendmail.delivery.local import expand_maildir, lookup_user
from pysendmail.delivery.prog import RunIdentity
from pysendmail.mbox_index import IndexedMbox
from pysendmail.protocol.pop3 import Maildrop, MaildropInUse, MessageInfo, OpenMaildrop

# A session waits this long for a delivery that holds the mailbox lock, then says [IN-USE].
MAILBOX_LOCK_TIMEOUT = 10.0
MAILDIR_LOCK_NAME = "pysendmail-pop3.lock"


def session_lock_path(maildrop_path: Path, is_maildir: bool) -> Path:
    """The lock file that a POP3 session on `maildrop_path` holds."""
    if is_maildir:
        return maildrop_path / MAILDIR_LOCK_NAME
    return maildrop_path.with_name(f".{maildrop_path.name}.pop3.lock")


class SessionLock:
    """An flock on a maildrop's session lock file; `acquire` says `MaildropInUse` at once
    when another session holds it (no waiting: the client is told to come back)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            # No directory, so no maildrop yet: nothing to exclude. A delivery may make it
            # during the session, but this session indexed nothing and deletes nothing.
            return
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise maildrops.MailboxRefused(f"{self.path}: a symbolic link") from error
            raise maildrops.MaildropTempError(f"{self.path}: {error.strerror}") from error
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise maildrops.MailboxRefused(f"{self.path}: not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise MaildropInUse(f"{self.path}: held by another POP3 session") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; the file stays (removing it would race with a new session)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor of the open file drops the flock


class HeldMaildrop:
    """A maildrop that runs `on_close` (giving back what the session held) after its
    own close."""

    def __init__(self, maildrop: Maildrop, on_close: Callable[[], None]) -> None:
        self._maildrop = maildrop
        self._on_close = on_close

    @property
    def messages(self) -> Sequence[MessageInfo]:
        return self._maildrop.messages

    def iter_bytes(self, number: int, chunk_size: int = 65536) -> Iterator[bytes]:
        return self._maildrop.iter_bytes(number, chunk_size)

    def commit(self, deleted: Collection[int]) -> None:
        self._maildrop.commit(deleted)

    def close(self) -> None:
        try:
            self._maildrop.close()
        finally:
            self._on_close()


def local_maildrops(
    spool_dir: Path,
    mailbox_format: str = "mbox",
    *,
    maildir_template: str | None = None,
    lock_timeout: float = MAILBOX_LOCK_TIMEOUT,
    user_lookup: Callable[[str], RunIdentity | None] = lookup_user,
) -> OpenMaildrop:
    """Open a user's mailbox where local delivery writes it, holding its session lock.

    mbox: `spool_dir/USER`. maildir: the `LocalMaildir` template local delivery uses
    (`$z/Maildir`, for the user's home) when there is one, else `spool_dir/USER/`.
    """
    if mailbox_format not in ("mbox", "maildir"):
        raise ValueError(f"unknown mailbox format {mailbox_format!r}")

    def maildir_of(user: str) -> Path:
        if maildir_template is None:
            return maildrops.mbox_path(spool_dir, user)
        identity = user_lookup(user)
        if identity is None:
            raise maildrops.MailboxRefused(f"{user}: no such local user for {maildir_template}")
        return expand_maildir(maildir_template, identity)

    def open_unlocked(user: str) -> tuple[Path, Callable[[], Maildrop]]:
        if mailbox_format == "maildir":
            path = maildir_of(user)
            if os.path.lexists(path) and not path.is_dir():
                raise maildrops.MailboxRefused(f"{path}: not a Maildir")
            return path, lambda: maildrops.MaildirMaildrop(path)
        if user.startswith("."):  # the spool's dot files are the session locks and indexes
            raise maildrops.MailboxRefused(f"{user!r}: not a valid mailbox name")
        path = maildrops.mbox_path(spool_dir, user)
        if path.is_dir():
            raise maildrops.MailboxRefused(f"{path}: a directory, not an mbox")
        return path, lambda: IndexedMbox(path, lock_timeout=lock_timeout)

    def open_for(user: str) -> Maildrop:
        path, opener = open_unlocked(user)
        lock = SessionLock(session_lock_path(path, mailbox_format == "maildir"))
        lock.acquire()
        try:
            maildrop = opener()
        except maildrops.MailboxLocked as error:
            lock.release()
            raise MaildropInUse(str(error)) from error
        except BaseException:
            lock.release()
            raise
        return HeldMaildrop(maildrop, lock.release)

    return open_for
