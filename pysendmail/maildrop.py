"""Mailbox layout and locking: the one place that writes and rewrites maildrops.

Local delivery appends here; the POP3 server reads, and removes what its client deleted.

mbox (`/var/mail/USER`), written the way sendmail's mail.local writes it so that
procmail, mutt, mail.local itself and Dovecot can share the file:
- locks: a dot-lock `USER.lock` (created with O_EXCL, removed when older than five
  minutes, as mail.local does) AND an fcntl (POSIX) write lock on the mailbox. The
  dot-lock is what excludes two sessions of one process: fcntl locks are per process.
- a mailbox that is a symbolic link, has other links, or is not a regular file is
  refused (mail.local's "irregular file"); one owned by someone else than its user is
  refused too. It is opened with O_NOFOLLOW and its inode is checked again once locked.
- each message: a `From sender date` line, the message with CRLF turned into LF and
  every line that starts with `From ` written as `>From `, then a blank line.
- a write that fails (disk full, quota) truncates the file back to its size before the
  message: a mailbox never keeps half a message.
- a POP3 commit copies the kept messages AND everything appended since the index was
  taken to a temporary file in the same directory, fsyncs it and renames it over the
  mailbox while both locks are held: a delivery during a POP3 session is never lost.
  Deliverers here re-check the inode after taking the lock, so one that waited on the
  old file goes to the new one.

Maildir (`DIR/{tmp,new,cur}`): a message is written to tmp/ under a unique name, fsynced,
and linked into new/; no locks are needed. The name carries `,S=size,W=wire size` so a
reader learns both sizes without reading the file.

When running as root with a mailbox owner given, the writing happens in a forked child
that has switched to the owner's uid and gid (quota applies, root never writes into a
user's file); the dot-lock is taken by the parent, which keeps the spool directory's
usual root:mail permissions working.

This module knows nothing of configuration or routing: callers give paths and owners.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import mmap
import os
import pickle
import re
import socket
import stat
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pysendmail.errors import MailError, TempFailure
from pysendmail.record import record
from pysendmail.sysexits import ExitCode

T = TypeVar("T")

DOTLOCK_STALE_SECONDS = 300  # mail.local's LOCKTO_RM: a lock this old is broken
DEFAULT_LOCK_TIMEOUT = 60.0
_COPY_CHUNK = 1 << 20

# Seam for tests: every write of message data goes through this (inject ENOSPC, EDQUOT).
_os_write: Callable[[int, bytes | memoryview], int] = os.write


# ---------------------------------------------------------------- errors


class MaildropError(MailError):
    """A mailbox that cannot be used (permanent unless a subclass says otherwise)."""

    exit_code = ExitCode.CANTCREAT
    reply_code = 550
    status = "5.2.0"


class MailboxRefused(MaildropError):
    """A symlink, a hard-linked file, a non-regular file or a foreign owner."""


class MailboxLocked(TempFailure):
    """The mailbox stayed locked by someone else for the whole lock timeout."""

    status = "4.2.0"


class MailboxFull(TempFailure):
    """Disk full (4.3.1) or the user's quota exceeded (4.2.2): try again later."""

    exit_code = ExitCode.TEMPFAIL
    status = "4.3.1"


class MaildropChanged(TempFailure):
    """The mailbox was rewritten by someone else since it was indexed: nothing deleted."""

    status = "4.2.0"


class MaildropTempError(TempFailure):
    """Any other I/O error on a mailbox: try again later."""

    exit_code = ExitCode.IOERR
    status = "4.2.0"


_ERROR_CLASSES: dict[str, type[MailError]] = {
    cls.__name__: cls
    for cls in (
        MaildropError,
        MailboxRefused,
        MailboxLocked,
        MailboxFull,
        MaildropChanged,
        MaildropTempError,
        TempFailure,
        MailError,
    )
}


def _io_error(what: str, err: OSError) -> MailError:
    """Map an OSError during writing to the typed error sendmail's mailers would give."""
    if err.errno == errno.ENOSPC:
        return MailboxFull(f"{what}: {os.strerror(err.errno)}", status="4.3.1")
    if err.errno == errno.EDQUOT:
        return MailboxFull(f"{what}: {os.strerror(err.errno)}", status="4.2.2")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return MaildropTempError(f"{what}: {os.strerror(err.errno)}", status="4.2.1")
    return MaildropTempError(f"{what}: {err.strerror or err}")


# ---------------------------------------------------------------- owners, privilege


@record(frozen=True)
class MailboxOwner:
    """Whose mailbox it is: files are created for, and written as, this uid/gid."""

    uid: int
    gid: int


def _run_as(owner: MailboxOwner | None, action: Callable[[], T], root_dir: str | None = None) -> T:
    """Run `action` with the owner's identity: in a forked child when we are root and the
    owner is someone else (or a chroot to `root_dir` is asked for: a file mailer's /=),
    in this process otherwise. Typed errors cross back intact."""
    switch = owner is not None and os.geteuid() == 0 and owner.uid != 0
    if not switch and not root_dir:
        return action()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        os.close(read_end)
        outcome: tuple

        def switch_and_act() -> T:
            if root_dir:
                os.chroot(root_dir)
                os.chdir("/")
            if switch:
                assert owner is not None
                become(owner)
            return action()

        outcome = capture_outcome(switch_and_act)
        try:
            payload = pickle.dumps(outcome)
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view) :]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as reader:
        while chunk := reader.read(65536):
            chunks.append(chunk)
    os.waitpid(pid, 0)
    if not chunks:
        raise MaildropTempError("delivery child died without a result")
    return reraise_outcome(pickle.loads(b"".join(chunks)))


def become(owner: MailboxOwner) -> None:
    """Switch this (child) process to the owner for good: groups, gid, then uid."""
    os.setgroups([owner.gid])
    os.setgid(owner.gid)
    os.setuid(owner.uid)


def capture_outcome(action: Callable[[], T]) -> tuple:
    """Run `action` in a delivery child: its result or typed error as a picklable tuple."""
    try:
        return ("ok", action())
    except MailError as err:
        return ("err", type(err).__name__, err.text, err.status, err.reply_code,
                int(err.exit_code))  # fmt: skip
    except BaseException as err:  # report, never let the child run on
        return ("err", "MaildropTempError", f"delivery child: {err!r}", "4.3.0", 451, 75)


def reraise_outcome(outcome: tuple) -> Any:
    """The parent's side of capture_outcome: the result, or the typed error raised."""
    if outcome[0] == "ok":
        return outcome[1]
    _, name, text, status, reply_code, exit_code = outcome
    cls = _ERROR_CLASSES.get(name, MaildropTempError)
    raise cls(text, status=status, reply_code=reply_code, exit_code=ExitCode(exit_code))


class UserWriter(Protocol):
    """Runs one of WRITE_OPERATIONS as a mailbox owner, the message streamed to it: a
    pool of children kept for a queue run (delivery/user_writers.py) does this
    without a fork per message."""

    def run(
        self, owner: MailboxOwner, operation: str, args: tuple, message: Iterable[bytes]
    ) -> Any: ...


# ---------------------------------------------------------------- locks


class DotLock:
    """`<mailbox>.lock`, the lock file mail.local, procmail and mutt agree on."""

    def __init__(
        self,
        mailbox: Path,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        stale_after: float = DOTLOCK_STALE_SECONDS,
    ) -> None:
        self.path = mailbox.with_name(mailbox.name + ".lock")
        self.timeout = timeout
        self.stale_after = stale_after
        self.held = False

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                self._break_if_stale()
            except OSError as err:
                raise _io_error(f"{self.path}: cannot create lock", err) from err
            else:
                try:
                    os.write(fd, f"{os.getpid()}\n".encode())
                finally:
                    os.close(fd)
                self.held = True
                return
            if time.monotonic() >= deadline:
                raise MailboxLocked(f"{self.path}: mailbox is locked")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _break_if_stale(self) -> None:
        try:
            age = time.time() - os.lstat(self.path).st_mtime
            if age > self.stale_after:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def touch(self) -> None:
        """Keep a long-held lock from looking stale to other programs."""
        if self.held:
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> DotLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def fcntl_lock(fd: int, timeout: float = DEFAULT_LOCK_TIMEOUT, path: object = "") -> None:
    """Take an exclusive fcntl write lock on the whole file, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise _io_error(f"{path}: cannot lock", err) from err
        if time.monotonic() >= deadline:
            raise MailboxLocked(f"{path}: mailbox is locked")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def fcntl_unlock(fd: int) -> None:
    try:
        fcntl.lockf(fd, fcntl.LOCK_UN)
    except OSError:
        pass


# ---------------------------------------------------------------- mbox writing

_FROM_LINE_START = re.compile(rb"^From ", re.MULTILINE)


def mbox_from_line(envelope_sender: str, when: float | None = None) -> bytes:
    """`From sender Thu Nov 26 12:43:42 2026` (local time, as ctime(3) prints it)."""
    sender = envelope_sender.strip().removeprefix("<").removesuffix(">")
    if not sender:
        sender = "MAILER-DAEMON"
    sender = "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in sender)
    stamp = time.asctime(time.localtime(time.time() if when is None else when))
    return f"From {sender} {stamp}\n".encode("utf-8", "surrogateescape")


class MboxEncoder:
    """Turns message chunks into mbox body bytes: LF line ends, `>From ` escaping, and a
    final newline plus the blank separator line. Chunks may split lines anywhere."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._encode_lines(data[:cut])

    def finish(self) -> bytes:
        tail = self._partial
        self._partial = b""
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        encoded = self._encode_lines(tail + b"\n") if tail else b""
        return encoded + b"\n"

    @staticmethod
    def _encode_lines(complete: bytes) -> bytes:
        if not complete:
            return b""
        return _FROM_LINE_START.sub(b">From ", complete.replace(b"\r\n", b"\n"))


def _check_regular(st: os.stat_result, path: Path) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise MailboxRefused(f"{path}: mailbox is a symbolic link")
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise MailboxRefused(f"{path}: irregular file")


def _prepare_mbox(
    path: Path,
    owner: MailboxOwner | None,
    *,
    require_owner: bool = True,
    create_mode: int = 0o600,
    refuse_executable: bool = False,
) -> None:
    """Check (or create, owned by its user) the mailbox before anyone writes to it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, create_mode)
        except FileExistsError:
            st = os.lstat(path)
        except OSError as err:
            raise _io_error(f"{path}: cannot create mailbox", err) from err
        else:
            try:
                if owner is not None and os.geteuid() == 0:
                    os.fchown(fd, owner.uid, owner.gid)  # as mail.local: the user's group
            finally:
                os.close(fd)
            return
    _check_regular(st, path)
    if require_owner and owner is not None and st.st_uid != owner.uid:
        raise MailboxRefused(f"{path}: wrong ownership ({st.st_uid})")
    if refuse_executable and st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH):
        raise MailboxRefused(f"{path}: cannot write to an executable file")


def _open_locked_mbox(path: Path, lock_timeout: float) -> int:
    """Open the mailbox for appending and take the fcntl lock on the inode that is still
    at `path` (a POP3 commit may have renamed a new file over it while we waited)."""
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NOCTTY)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise MailboxRefused(f"{path}: mailbox is a symbolic link") from err
            raise _io_error(f"{path}: cannot open mailbox", err) from err
        try:
            fcntl_lock(fd, lock_timeout, path)
            opened = os.fstat(fd)
            _check_regular(opened, path)
            try:
                current = os.lstat(path)
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_dev, current.st_ino) == (
                opened.st_dev,
                opened.st_ino,
            ):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise MaildropTempError(f"{path}: mailbox keeps changing under us")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view) :]


def _append_message(
    path: Path, from_line: bytes, message: Iterable[bytes], lock_timeout: float
) -> int:
    fd = _open_locked_mbox(path, lock_timeout)
    try:
        start = os.fstat(fd).st_size
        try:
            prefix = b""
            if start >= 1:
                last = os.pread(fd, 2, max(0, start - 2))
                # keep the new From line on a line of its own after a blank line
                if not last.endswith(b"\n"):
                    prefix = b"\n\n"
                elif start >= 2 and last != b"\n\n":
                    prefix = b"\n"
            encoder = MboxEncoder()
            buffer = bytearray(prefix + from_line)
            for chunk in message:
                buffer += encoder.feed(bytes(chunk))
                if len(buffer) >= 65536:
                    _write_all(fd, bytes(buffer))
                    buffer.clear()
            buffer += encoder.finish()
            _write_all(fd, bytes(buffer))
            os.fsync(fd)
        except OSError as err:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise _io_error(f"{path}: write error", err) from err
        return os.fstat(fd).st_size - start
    finally:
        fcntl_unlock(fd)
        os.close(fd)


def append_mbox(
    path: Path,
    envelope_sender: str,
    message: Iterable[bytes],
    *,
    owner: MailboxOwner | None = None,
    received_at: float | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    dot_lock: bool = True,
    require_owner: bool = True,
    create_mode: int = 0o600,
    refuse_executable: bool = False,
    root_dir: str | None = None,
    writer: UserWriter | None = None,
) -> int:
    """Append one message (header and body bytes, in chunks of any size) to an mbox.

    Returns the number of bytes added. Raises MailboxRefused (permanent), MailboxLocked
    or MailboxFull (temporary) or another MailError; on error the mailbox is unchanged.
    `message` is consumed in the writing process (a forked child when switching uid):
    pass an iterator over an already opened file, not something that needs privileges
    to open.

    For a mailbox (the default) the dot-lock is taken and the file created by the
    caller's identity, and the file must belong to `owner`. For a `/file` target
    (`dot_lock=False, require_owner=False`) every step, creation included, happens as
    `owner`, so the kernel's permission checks are the owner's, and inside the chroot
    `root_dir` when one is given (`path` is then a path inside it). A mailbox's append
    is done by `writer` when one is given (the locks and checks stay here).
    """
    path = Path(path)
    from_line = mbox_from_line(envelope_sender, received_at)
    checks = {
        "require_owner": require_owner,
        "create_mode": create_mode,
        "refuse_executable": refuse_executable,
    }
    if not dot_lock:

        def prepare_and_append() -> int:
            _prepare_mbox(path, owner, **checks)  # type: ignore[arg-type]
            return _append_message(path, from_line, message, lock_timeout)

        return _run_as(owner, prepare_and_append, root_dir)
    with DotLock(path, timeout=lock_timeout):
        _prepare_mbox(path, owner, **checks)  # type: ignore[arg-type]
        if writer is not None and _switches(owner):
            assert owner is not None
            return writer.run(owner, "mbox", (path, from_line, lock_timeout), message)
        return _run_as(owner, lambda: _append_message(path, from_line, message, lock_timeout))


# ---------------------------------------------------------------- Maildir writing

_maildir_counter = itertools.count(1)


def _maildir_host() -> str:
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def maildir_unique_name() -> str:
    """`seconds.MmicrosecondsPpidQcounter.host`: unique per host, process and call."""
    now = time.time()
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    return f"{seconds}.M{micros}P{os.getpid()}Q{next(_maildir_counter)}.{_maildir_host()}"


def ensure_maildir(root: Path, owner: MailboxOwner | None = None) -> None:
    """Create DIR and DIR/{tmp,new,cur} (mode 0700, owned by the owner) where missing."""
    for directory in (root, root / "tmp", root / "new", root / "cur"):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            st = os.lstat(directory)
            if not stat.S_ISDIR(st.st_mode):
                raise MailboxRefused(f"{directory}: not a directory") from None
            continue
        except OSError as err:
            raise _io_error(f"{directory}: cannot create", err) from err
        if owner is not None and os.geteuid() == 0:
            os.chown(directory, owner.uid, owner.gid)


def _write_maildir(root: Path, message: Iterable[bytes]) -> str:
    unique = maildir_unique_name()
    tmp_path = root / "tmp" / unique
    try:
        fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        raise _io_error(f"{tmp_path}: cannot create", err) from err
    size = 0
    newlines = 0
    try:
        try:
            partial = b""
            for chunk in message:
                data = partial + bytes(chunk)
                cut = data.rfind(b"\n") + 1
                partial = data[cut:]
                lines = data[:cut].replace(b"\r\n", b"\n")
                if lines:
                    _write_all(fd, lines)
                    size += len(lines)
                    newlines += lines.count(b"\n")
            if partial:
                tail = partial.removesuffix(b"\r") + b"\n"
                _write_all(fd, tail)
                size += len(tail)
                newlines += 1
            os.fsync(fd)
        finally:
            os.close(fd)
        name = f"{unique},S={size},W={size + newlines}"
        os.link(tmp_path, root / "new" / name)
    except OSError as err:
        raise _io_error(f"{root}: write error", err) from err
    finally:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
    _fsync_dir(root / "new")
    return name


def deliver_maildir(
    root: Path,
    message: Iterable[bytes],
    *,
    owner: MailboxOwner | None = None,
    writer: UserWriter | None = None,
) -> str:
    """Write one message into the Maildir `root`; returns its file name in new/."""
    root = Path(root)
    if owner is not None and os.geteuid() == 0:
        ensure_maildir(root, owner)
    if writer is not None and _switches(owner):
        assert owner is not None
        return writer.run(owner, "maildir", (root,), message)
    return _run_as(owner, lambda: _maildir_write(root, message))


def _maildir_write(root: Path, message: Iterable[bytes]) -> str:
    ensure_maildir(root, None)
    return _write_maildir(root, message)


def _switches(owner: MailboxOwner | None) -> bool:
    return owner is not None and os.geteuid() == 0 and owner.uid != 0


# What a UserWriter's child may be asked to do: name -> f(*args, message).
WRITE_OPERATIONS: dict[str, Callable[..., Any]] = {
    "mbox": lambda path, from_line, lock_timeout, message: _append_message(
        path, from_line, message, lock_timeout
    ),
    "maildir": lambda root, message: _maildir_write(root, message),
}


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- reading (POP3)


@record(frozen=True)
class MessageRef:
    """One message of an indexed maildrop. `number` is 1-based, as POP3 numbers them.

    `size` is the message's length as stored (LF line ends, mbox separator excluded);
    `wire_size` its length with CRLF line ends, which POP3's LIST and STAT report;
    `uid` is stable while the message stays in the maildrop (POP3 UIDL).
    """

    number: int
    size: int
    wire_size: int
    uid: str
    location: str  # mbox: the separator's byte offset; Maildir: the file's path


class Maildrop(ABC):
    """An indexed maildrop: read messages, then commit deletions once, then close."""

    messages: tuple[MessageRef, ...]

    def message(self, number: int) -> MessageRef:
        if not 1 <= number <= len(self.messages):
            raise KeyError(number)
        return self.messages[number - 1]

    @abstractmethod
    def iter_bytes(self, number: int, chunk_size: int = 65536) -> Iterator[bytes]:
        """The message's bytes as stored (LF line ends), in chunks."""

    def read(self, number: int) -> bytes:
        return b"".join(self.iter_bytes(number))

    @abstractmethod
    def commit(self, deleted: Collection[int]) -> None:
        """Remove the messages numbered in `deleted`, atomically; keep everything else,
        including messages that arrived after the index was taken."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Maildrop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@record(frozen=True)
class _MboxEntry:
    offset: int  # where the From line starts
    body_start: int  # after the From line
    body_end: int  # end of the message, separator blank line excluded
    segment_end: int  # where the next message's From line starts
    from_line: bytes


def _count_newlines(mm: mmap.mmap, start: int, end: int) -> tuple[int, int]:
    """(LF count, CRLF count) in mm[start:end], without copying it whole."""
    lf = crlf = 0
    pos = start
    previous = b""
    while pos < end:
        stop = min(end, pos + _COPY_CHUNK)
        piece = mm[pos:stop]
        lf += piece.count(b"\n")
        if b"\r" in piece:  # a one-byte search first: most mail stored here has no CR
            crlf += piece.count(b"\r\n")
        if previous == b"\r" and piece.startswith(b"\n"):
            crlf += 1
        previous = piece[-1:]
        pos = stop
    return lf, crlf


def _index_mbox(mm: mmap.mmap, size: int, path: Path, start: int = 0) -> list[_MboxEntry]:
    """The messages of mm[start:size]; `start` is 0 or where a known message begins."""
    if size <= start:
        return []
    if mm[start : start + 5] != b"From ":
        raise MaildropError(f"{path}: not an mbox (no From line at offset {start})")
    # A message starts at a From line after a blank line. mmap.find is a fast substring
    # search; a MULTILINE regex over the whole file was several times slower.
    starts = [start]
    offset = start
    while True:
        line_end = mm.find(b"\n", offset)
        if line_end < 0:
            break
        hit = mm.find(b"\n\nFrom ", line_end)
        following = size if hit < 0 else hit + 2
        by_length = _end_by_content_length(mm, line_end, size)
        if by_length is not None and by_length > following:
            # Debian's mail.local writes Content-Length and leaves `From ` lines of the
            # body unquoted: trust the length when it lands on the next From line
            following = by_length
        if following >= size:
            break
        starts.append(following)
        offset = following
    entries = []
    for index, offset in enumerate(starts):
        segment_end = starts[index + 1] if index + 1 < len(starts) else size
        line_end = mm.find(b"\n", offset, segment_end)
        body_start = segment_end if line_end < 0 else line_end + 1
        body_end = segment_end
        # the blank separator line belongs to the mbox, not the message
        if segment_end > body_start and mm[segment_end - 2 : segment_end] == b"\n\n":
            body_end = segment_end - 1
        entries.append(
            _MboxEntry(offset, body_start, body_end, segment_end, bytes(mm[offset:body_start]))
        )
    return entries


_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*(\d{1,12})[ \t]*\r?$", re.I | re.M)
_HEADER_SCAN_LIMIT = 1 << 16


def _end_by_content_length(mm: mmap.mmap, from_line_end: int, size: int) -> int | None:
    """Where the next message starts according to this message's Content-Length header,
    or None when it has none or the length does not land on a From line (or the end)."""
    head_end = mm.find(b"\n\n", from_line_end, min(size, from_line_end + _HEADER_SCAN_LIMIT))
    if head_end < 0:
        return None
    match = _CONTENT_LENGTH.search(mm[from_line_end : head_end + 1])
    if match is None:
        return None
    end = head_end + 2 + int(match.group(1))
    if end > size:
        return None
    probe = end
    while probe < size and probe - end < 2 and mm[probe : probe + 1] == b"\n":
        probe += 1
    if probe >= size:
        return size
    if mm[probe - 1 : probe] == b"\n" and mm[probe : probe + 5] == b"From ":
        return probe
    return None


def _message_refs(
    mm: mmap.mmap, entries: list[_MboxEntry], earlier: Sequence[MessageRef] = ()
) -> list[MessageRef]:
    """The refs of `entries`, which follow the messages `earlier` in the mbox: numbered
    after them, UIDs made unique among them too (the n-th identical one gets `.n`)."""
    seen: dict[str, int] = {}
    for ref in earlier:
        base = ref.uid.partition(".")[0]
        seen[base] = seen.get(base, 0) + 1
    refs = []
    for number, entry in enumerate(entries, start=len(earlier) + 1):
        size = entry.body_end - entry.body_start
        lf, crlf = _count_newlines(mm, entry.body_start, entry.body_end)
        digest = hashlib.sha1(entry.from_line)
        digest.update(mm[entry.body_start : min(entry.body_end, entry.body_start + 4096)])
        uid = digest.hexdigest()
        seen[uid] = seen.get(uid, 0) + 1
        if seen[uid] > 1:
            uid = f"{uid}.{seen[uid]}"
        refs.append(MessageRef(number, size, size + lf - crlf, uid, str(entry.offset)))
    return refs


class MboxMaildrop(Maildrop):
    """A POP3 view of an mbox, indexed once with both locks held."""

    def __init__(
        self, path: Path, *, hold_lock: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    ) -> None:
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.hold_lock = hold_lock
        self._dotlock = DotLock(self.path, timeout=lock_timeout)
        self._fd: int | None = None
        self._mm: mmap.mmap | None = None
        self._entries: list[_MboxEntry] = []
        self._indexed_end = 0
        self._inode: tuple[int, int] | None = None
        self._dotlock.acquire()
        try:
            self._open_and_index()
        except BaseException:
            self.close()
            raise
        if not hold_lock:
            self._unlock()

    def _open_and_index(self) -> None:
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            self.messages = ()
            return
        _check_regular(st, self.path)
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NOCTTY)
        except OSError as err:
            raise _io_error(f"{self.path}: cannot open mailbox", err) from err
        fcntl_lock(self._fd, self.lock_timeout, self.path)
        opened = os.fstat(self._fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise MaildropChanged(f"{self.path}: mailbox replaced while opening")
        self._inode = (opened.st_dev, opened.st_ino)
        self._indexed_end = opened.st_size
        if opened.st_size:
            self._mm = mmap.mmap(self._fd, opened.st_size, prot=mmap.PROT_READ)
        self._entries, refs = self._index(opened)
        self.messages = tuple(refs)

    def _index(self, opened: os.stat_result) -> tuple[list[_MboxEntry], list[MessageRef]]:
        """Scan the whole mapped file (a subclass may reuse an index it saved)."""
        if self._mm is None:
            return [], []
        entries = _index_mbox(self._mm, opened.st_size, self.path)
        return entries, _message_refs(self._mm, entries)

    def _unlock(self) -> None:
        if self._fd is not None:
            fcntl_unlock(self._fd)
        self._dotlock.release()

    def iter_bytes(self, number: int, chunk_size: int = 65536) -> Iterator[bytes]:
        self.message(number)
        entry = self._entries[number - 1]
        assert self._mm is not None
        self._dotlock.touch()
        for pos in range(entry.body_start, entry.body_end, chunk_size):
            yield self._mm[pos : min(pos + chunk_size, entry.body_end)]

    def commit(self, deleted: Collection[int]) -> None:
        doomed = {n for n in deleted if 1 <= n <= len(self.messages)}
        if not doomed:
            return
        assert self._fd is not None and self._mm is not None
        if not self.hold_lock:
            self._dotlock.acquire()
        try:
            if not self.hold_lock:
                fcntl_lock(self._fd, self.lock_timeout, self.path)
            self._rewrite(doomed)
        finally:
            if not self.hold_lock:
                self._unlock()

    def _rewrite(self, doomed: set[int]) -> None:
        assert self._fd is not None and self._mm is not None
        try:
            current = os.lstat(self.path)
        except FileNotFoundError:
            raise MaildropChanged(f"{self.path}: mailbox removed since it was read") from None
        if (current.st_dev, current.st_ino) != self._inode:
            raise MaildropChanged(f"{self.path}: mailbox replaced since it was read")
        now = os.fstat(self._fd)
        if now.st_size < self._indexed_end:
            raise MaildropChanged(f"{self.path}: mailbox shrank since it was read")
        for entry in self._entries:
            if os.pread(self._fd, len(entry.from_line), entry.offset) != entry.from_line:
                raise MaildropChanged(f"{self.path}: mailbox rewritten since it was read")
        tmp_path = self.path.with_name(f".{self.path.name}.pop.{os.getpid()}.{time.time_ns()}")
        try:
            out = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            raise _io_error(f"{tmp_path}: cannot create", err) from err
        try:
            try:
                os.fchmod(out, stat.S_IMODE(now.st_mode))
                if os.geteuid() == 0:
                    os.fchown(out, now.st_uid, now.st_gid)
                for number, entry in enumerate(self._entries, start=1):
                    if number not in doomed:
                        self._copy_range(out, entry.offset, entry.segment_end)
                # what was appended after the index was taken: never lost
                self._copy_range(out, self._indexed_end, now.st_size)
                os.fsync(out)
            finally:
                os.close(out)
            os.rename(tmp_path, self.path)
        except OSError as err:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
            raise _io_error(f"{self.path}: cannot rewrite mailbox", err) from err
        _fsync_dir(self.path.parent)

    def _copy_range(self, out: int, start: int, end: int) -> None:
        assert self._fd is not None
        pos = start
        while pos < end:
            piece = os.pread(self._fd, min(_COPY_CHUNK, end - pos), pos)
            if not piece:
                raise MaildropChanged(f"{self.path}: mailbox shrank while rewriting")
            _write_all(out, piece)
            pos += len(piece)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fd is not None:
            fcntl_unlock(self._fd)
            os.close(self._fd)
            self._fd = None
        self._dotlock.release()


_SIZE_TAGS = re.compile(r",([SW])=(\d+)")


class MaildirMaildrop(Maildrop):
    """A POP3 view of a Maildir: the files of new/ and cur/, oldest first."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        found = []
        for sub in ("new", "cur"):
            try:
                names = os.listdir(self.root / sub)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                path = self.root / sub / name
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append((st.st_mtime, name, path, st.st_size))
        found.sort()
        refs = []
        for number, (_, name, path, st_size) in enumerate(found, start=1):
            tags = dict(_SIZE_TAGS.findall(name.split(":", 1)[0]))
            size = int(tags.get("S", st_size))
            if "W" in tags:
                wire = int(tags["W"])
            elif st_size == 0:
                wire = 0
            else:  # counted over a map of the file, in slices: never read whole
                with (
                    open(path, "rb") as handle,
                    mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as mapped,
                ):
                    lf, crlf = _count_newlines(mapped, 0, len(mapped))
                wire = size + lf - crlf
            uid = name.split(":", 1)[0]
            refs.append(MessageRef(number, size, wire, uid, str(path)))
        self.messages = tuple(refs)

    def iter_bytes(self, number: int, chunk_size: int = 65536) -> Iterator[bytes]:
        ref = self.message(number)
        with open(self._find(ref), "rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def _find(self, ref: MessageRef) -> Path:
        path = Path(ref.location)
        if path.exists():
            return path
        # another reader may have moved it from new/ to cur/ and added flags
        for candidate in (self.root / "cur").glob(f"{ref.uid}:*"):
            return candidate
        raise MaildropChanged(f"{path}: message vanished")

    def commit(self, deleted: Collection[int]) -> None:
        for number in sorted(set(deleted)):
            if not 1 <= number <= len(self.messages):
                continue
            try:
                os.unlink(self._find(self.messages[number - 1]))
            except (MaildropChanged, FileNotFoundError):
                continue  # already gone: what the client wanted
            except OSError as err:
                raise _io_error(f"{self.root}: cannot delete", err) from err
        _fsync_dir(self.root / "cur")
        _fsync_dir(self.root / "new")

    def close(self) -> None:
        pass


def open_maildrop(
    path: Path, *, hold_lock: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> Maildrop:
    """Open and index a maildrop: a directory is a Maildir, anything else an mbox (a
    missing mbox is an empty maildrop). With `hold_lock`, an mbox stays locked until
    close (RFC 1939's exclusive-access lock; deliveries wait, then defer); without it,
    the locks are held only while indexing and while committing."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return MaildirMaildrop(path)
    return MboxMaildrop(path, hold_lock=hold_lock, lock_timeout=lock_timeout)


def mbox_path(spool_dir: Path, user: str) -> Path:
    """The mailbox of `user` in a spool directory (`/var/mail/alice`)."""
    if not user or "/" in user or user in (".", "..") or "\0" in user:
        raise MailboxRefused(f"{user!r}: not a valid mailbox name")
    return Path(spool_dir) / user
