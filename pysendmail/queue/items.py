"""Reading the items of a queue directory for a listing or a queue run: what `mailq`
shows of each message, in the order sendmail takes them.

Every `qf*` file (or `hf*`/`Qf*` for the quarantined and lost items) is read in
directory order and sorted as the QueueSortOrder option says (priority by default;
stable sorts, so ties keep directory order, as glibc's qsort leaves them). A qf is
read without its lock being waited for: a message another process holds is marked;
one that vanishes meanwhile is marked completed. Nothing here writes.

`mailq` on 10,000 messages is timed against sendmail's (bench/queue_mailq.py), so the
work per message is kept small: a qf is read with one read(2), only its envelope (the
lines before the first header line) is kept, as bytes, and the few fields a listing
shows are found in it with bytes searches, inline (the last line of a kind wins, as
when sendmail reads them in turn); the other fields are found when asked for. A large
queue can be read by two processes, each taking half of the files (`split=True`), when
the machine has a CPU idle for the second.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import re
from operator import itemgetter

from pysendmail.headers import decode
from pysendmail.record import record

# What is kept of one item, in a plain tuple (a listing makes thousands):
#   0 priority, 1 file name (b"qf" + queue ID), 2 df size (-1 when missing),
#   3 mark (b" "; b"*" when another process holds its lock; b"?" for a lost Qf item),
#   4 completed (the qf vanished while the directory was read), 5 queue time,
#   6 sender, 7 last failure (M), 8 body type (B), 9 quarantine reason (q),
#   10 the b"\nC..." and b"\nR..." lines in qf order, 11 the envelope
#   (b"\n" + the lines before the first header line, each ended by b"\n").
Row = tuple

# From this many items on, split=True reads the queue in two processes.
SPLIT_FROM = 2000


@record
class ListedRecipient:
    address: str
    flags: str
    controlling_user: str | None = None


class ListedMessage:
    """One queue item, with str views of its row's fields."""

    __slots__ = ("row",)

    def __init__(self, row: Row) -> None:
        self.row = row

    def __repr__(self) -> str:
        return f"ListedMessage({self.qid!r}, size={self.size}, priority={self.priority})"

    priority = property(lambda self: self.row[0])
    qid = property(lambda self: decode(self.row[1][2:]))
    size = property(lambda self: self.row[2])
    locked = property(lambda self: self.row[3] == b"*")
    completed = property(lambda self: self.row[4])
    queued_at = property(lambda self: self.row[5])
    sender = property(lambda self: decode(self.row[6]))
    status = property(lambda self: decode(self.row[7]))
    body_type = property(lambda self: decode(self.row[8]))
    quarantine = property(lambda self: decode(self.row[9]))  # of an hf item
    flags = property(lambda self: decode(field(self.row[11], b"\nF")))
    last_attempt = property(lambda self: number(self.row[11], b"\nK"))
    attempts = property(lambda self: number(self.row[11], b"\nN"))

    @property
    def entries(self) -> list[tuple[str, str]]:
        """("C", controlling user) and ("R", flags:address) in qf order."""
        return [(decode(line[1:2]), decode(line[2:])) for line in self.row[10]]

    @property
    def recipients(self) -> list[ListedRecipient]:
        out = []
        controlling: str | None = None
        for kind, text in self.entries:
            if kind == "C":
                controlling = text or None
            else:
                flags, _, address = text.partition(":")
                out.append(ListedRecipient(address, flags, controlling))
        return out


def field(envelope: bytes, key: bytes) -> bytes:
    """The rest of the last line of `envelope` that starts with `key` (b"\\nX"), or b""."""
    start = envelope.rfind(key)
    if start < 0:
        return b""
    return envelope[start + 2 : envelope.index(b"\n", start + 2)]


def number(envelope: bytes, key: bytes) -> int:
    """The number on that line, read as atol() reads it (0 when there is none)."""
    digits = field(envelope, key)
    if digits.isdigit():
        return int(digits)
    match = _LEADING_NUMBER.match(digits)
    return int(match.group()) if match else 0


_NOTES = re.compile(rb"\n[MBq]")
_ENTRY = re.compile(rb"\n[CR][^\n]*")
_END = re.compile(rb"\n[H.]")
_LEADING_NUMBER = re.compile(rb"[ \t]*[-+]?\d+")
_PRIORITY = itemgetter(0)


def gather(queue_dir: str, prefix: str = "qf", order: str = "priority") -> list[ListedMessage]:
    """Every item in `queue_dir`, sorted as sendmail sorts them (`order`: the
    QueueSortOrder option): the normal items (`qf`), or with `prefix` the quarantined
    (`hf`, -qQ) or lost (`Qf`, -qL) ones.

    Raises OSError when the directory cannot be read.
    """
    return [ListedMessage(row) for row in read_rows(queue_dir, prefix, order)]


def read_rows(
    queue_dir: str, prefix: str = "qf", order: str = "priority", *, split: bool = False
) -> list[Row]:
    """gather()'s rows. With `split` (for a command that runs alone: the child is
    forked) a queue of SPLIT_FROM items or more is read by two processes when a CPU
    is idle for the second. Raises OSError as gather() does."""
    wanted = prefix.encode()
    names = [name for name in os.listdir(os.fsencode(queue_dir)) if name[:2] == wanted]
    plain = b"?" if prefix == "Qf" else b" "
    if split and len(names) >= SPLIT_FROM and _a_cpu_is_idle():
        rows = _read_in_two(queue_dir, names, plain)
    else:
        rows = _read(queue_dir, names, plain)
    sort_rows(rows, order, queue_dir)
    return rows


def sort_rows(rows: list[Row], order: str, queue_dir: str) -> None:
    """Sort in place as sendmail's QueueSortOrder says (only its first letter counts):
    priority (the default), host (the reversed domain of the first recipient that
    has one, all of a host's messages after the unlocked hosts' when one of them is
    locked, then priority), time (submission), filename, modification (of the qf,
    oldest first), random, none (directory order). Sorts are stable, as glibc's
    qsort is, so ties keep directory order."""
    kind = (order or "p")[:1].lower()
    if kind == "h":
        hosts = [_reversed_host(row) for row in rows]
        held = {host for host, row in zip(hosts, rows, strict=True) if row[3] == b"*"}
        keyed = sorted(
            zip(hosts, rows, strict=True),
            key=lambda pair: (
                pair[0] in held,
                pair[0] is not None,
                pair[0] or b"",
                pair[1][0],
                pair[1][3] != b"*",
            ),
        )
        rows[:] = [row for _, row in keyed]
    elif kind == "t":
        rows.sort(key=_QUEUE_TIME)
    elif kind == "f":
        rows.sort(key=_FILE_NAME)
    elif kind == "m":
        rows.sort(key=lambda row: _modified(queue_dir, row[1]))
    elif kind == "r":
        import random  # seldom wanted: not loaded by every listing

        random.shuffle(rows)
    elif kind != "n":
        rows.sort(key=_PRIORITY)


_QUEUE_TIME = itemgetter(5)
_FILE_NAME = itemgetter(1)


def _reversed_host(row: Row) -> bytes | None:
    for line in row[10]:
        if line[1:2] == b"R" and b"@" in line:
            return line.rpartition(b"@")[2].lower()[::-1]
    return None


def _modified(queue_dir: str, name: bytes) -> float:
    try:
        return os.stat(os.path.join(os.fsencode(queue_dir), name)).st_mtime
    except OSError:
        return 0.0


def _a_cpu_is_idle() -> bool:
    """Whether a second process would find a CPU mostly idle: this one may run on two or
    more, and the one-minute load average stays half a CPU below their number (on 2 CPUs
    the split read 10,000 messages in 70 ms instead of 91 at load 1.5, in 120 instead of
    101 at load 2.5: on a busy machine it costs more than it saves)."""
    cpus = len(os.sched_getaffinity(0))
    return cpus > 1 and os.getloadavg()[0] <= cpus - 0.5


def _read_in_two(queue_dir: str, names: list[bytes], plain: bytes) -> list[Row]:
    """The second half of `names` read by a forked child, which sends its rows back
    marshalled through a pipe, while this process reads the first half. If the child
    fails, this process reads its half too (and meets the same error, if any)."""
    half = len(names) // 2
    reader, writer = os.pipe()
    try:
        child = os.fork()
    except OSError:
        os.close(reader)
        os.close(writer)
        return _read(queue_dir, names, plain)
    if child == 0:
        status = 1
        try:
            os.close(reader)
            view = memoryview(marshal.dumps(_read(queue_dir, names[half:], plain)))
            while view:
                view = view[os.write(writer, view) :]
            status = 0
        finally:
            os._exit(status)  # nothing of the parent's (buffers, atexit) runs twice
    os.close(writer)
    try:
        first = _read(queue_dir, names[:half], plain)
        chunks = []
        while chunk := os.read(reader, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(reader)  # before waiting: a child still writing gets EPIPE and ends
        try:
            status: int | None = os.waitpid(child, 0)[1]
        except ChildProcessError:  # SIGCHLD ignored (inherited): reaped, status unknown
            status = None
    if status in (0, None):
        try:
            return first + marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            pass  # the child died before it sent all of its rows
    return first + _read(queue_dir, names[half:], plain)


def _read(queue_dir: str, names: list[bytes], plain: bytes) -> list[Row]:
    rows = []
    stat, open_file, read, close, flock = os.stat, os.open, os.read, os.close, fcntl.flock
    shared = fcntl.LOCK_SH | fcntl.LOCK_NB
    dir_fd = open_file(queue_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            try:
                size = stat(b"df" + name[2:], dir_fd=dir_fd).st_size
            except OSError:
                size = -1
            try:
                fd = open_file(name, os.O_RDONLY, dir_fd=dir_fd)
            except OSError:  # it went since the directory was read
                rows.append((0, name, size, plain, True, 0, b"", b"", b"", b"", [], b"\n"))
                continue
            try:
                try:
                    flock(fd, shared)
                    mark = plain
                except BlockingIOError:
                    mark = b"*"
                data = read(fd, 8192)
                if len(data) >= 8192:
                    data = _read_rest(fd, data)
            finally:
                close(fd)
            rows.append(_row(name, size, mark, b"\n%s\n" % data))
    finally:
        close(dir_fd)
    return rows


def _row(name: bytes, size: int, mark: bytes, text: bytes) -> Row:
    """The row of one qf whose text is b"\\n" + its text + b"\\n"."""
    # field() and number() inline, for the fields every listing shows: this runs once
    # per queued message
    found = _END.search(text)
    envelope = text[: found.start() + 1] if found else text
    at = envelope.rfind(b"\nP")
    digits = envelope[at + 2 : envelope.index(b"\n", at + 2)] if at >= 0 else b"0"
    priority = int(digits) if digits.isdigit() else number(envelope, b"\nP")
    at = envelope.rfind(b"\nT")
    digits = envelope[at + 2 : envelope.index(b"\n", at + 2)] if at >= 0 else b"0"
    queued_at = int(digits) if digits.isdigit() else number(envelope, b"\nT")
    at = envelope.rfind(b"\nS")
    sender = envelope[at + 2 : envelope.index(b"\n", at + 2)] if at >= 0 else b""
    if _NOTES.search(envelope) is None:  # the usual case: none of the three
        status = body_type = quarantine = b""
    else:
        status = field(envelope, b"\nM")
        body_type = field(envelope, b"\nB")
        quarantine = field(envelope, b"\nq")
    entries = _ENTRY.findall(envelope)
    return (priority, name, size, mark, False, queued_at, sender, status, body_type,
            quarantine, entries, envelope)  # fmt: skip


def _read_rest(fd: int, data: bytes) -> bytes:
    """More of a qf whose first 8 kB held no header line yet (all a listing needs)."""
    while b"\nH" not in data and b"\n." not in data:
        more = os.read(fd, 65536)
        if not more:
            break
        data += more
    return data
