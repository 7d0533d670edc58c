"""A POP3 mbox index kept between sessions, so a large mbox is not re-read at every login.

`IndexedMbox` is `maildrop.MboxMaildrop` with a saved index: the offsets, sizes and
UIDLs of its messages, written after each indexing to a file beside the mbox
(`SPOOL/.USER.pop3.index`) and keyed by the mbox's device, inode, size and mtime. On the
next open, with the mailbox locks held as always:

- same inode, same size and mtime: every saved entry is used;
- same inode, grown (mail appended, or a reader rewrote part of it in place): the saved
  entries whose `From ` line is still byte for byte at its offset are used, except the
  last of them, and the file is scanned from that one's offset to the end: only the
  appended part is read;
- anything else (another inode after a rewrite, a smaller file, an unreadable or
  foreign index file): the whole file is scanned, as without an index.

Every reused entry's `From ` line is compared with the mbox before it is trusted. A
message's UIDL is the one its first scan gave, so UIDLs do not depend on the index.
After a commit (deletions by QUIT), the index of the rewritten file is saved at once,
its entries moved up, so the rewrite costs no scan either.
The index file is a cache: losing it, or failing to write it, costs one full scan.
"""

from __future__ import annotations

import array
import os
import stat
from collections.abc import Collection
from pathlib import Path

from pysendmail.maildrop import (
    MboxMaildrop,
    MessageRef,
    _index_mbox,
    _MboxEntry,
    _message_refs,
)

_MAGIC = b"pysendmail-mbox-index 2"
_MAX_INDEX_BYTES = 1 << 28  # a sane bound: a line per message, ~150 octets a line


def index_path(mbox: Path) -> Path:
    """Where the saved index of the mbox `mbox` lives."""
    return mbox.with_name(f".{mbox.name}.pop3.index")


class IndexedMbox(MboxMaildrop):
    """An mbox opened for POP3 whose index is saved beside it between sessions."""

    def __init__(self, path: Path, **options: object) -> None:
        self.index_file = index_path(Path(path))
        super().__init__(path, **options)  # type: ignore[arg-type]

    def _index(self, opened: os.stat_result) -> tuple[list[_MboxEntry], list[MessageRef]]:
        if self._mm is None:
            return [], []
        saved = _load(self.index_file, opened)
        entries, refs = self._reusable(saved, opened)
        start = entries[-1].segment_end if entries else 0
        if start < opened.st_size or saved is None or len(entries) != len(saved.entries):
            scanned = _index_mbox(self._mm, opened.st_size, self.path, start)
            entries += scanned
            refs += _message_refs(self._mm, scanned, refs)
            _save(self.index_file, opened, entries, refs)
        return entries, refs

    def commit(self, deleted: Collection[int]) -> None:
        """Commit as an mbox does, then save the index of the new file: the kept messages
        moved up, so that the next session need not read the rewritten mbox again."""
        super().commit(deleted)
        doomed = {number for number in deleted if 1 <= number <= len(self.messages)}
        if not doomed:
            return
        entries: list[_MboxEntry] = []
        refs: list[MessageRef] = []
        end = 0
        for number, (entry, ref) in enumerate(zip(self._entries, self.messages, strict=True), 1):
            if number in doomed:
                continue
            shift = end - entry.offset
            moved = _MboxEntry(
                end,
                entry.body_start + shift,
                entry.body_end + shift,
                entry.segment_end + shift,
                entry.from_line,
            )
            entries.append(moved)
            refs.append(MessageRef(len(refs) + 1, ref.size, ref.wire_size, ref.uid, str(end)))
            end = moved.segment_end
        try:
            rewritten = os.stat(self.path)
        except OSError:
            return
        # Mail appended during the session (or since) lies past `end`: the next open sees
        # the file grown past the index, checks these entries and reads only that part.
        _save(self.index_file, rewritten, entries, refs, indexed_size=end)

    def _reusable(
        self, saved: _Saved | None, opened: os.stat_result
    ) -> tuple[list[_MboxEntry], list[MessageRef]]:
        """The saved entries that still describe the mbox (see the module's rules)."""
        assert self._mm is not None
        if saved is None or saved.size > opened.st_size:
            return [], []
        unchanged = saved.size == opened.st_size and saved.mtime_ns == opened.st_mtime_ns
        if saved.size == opened.st_size and not unchanged:
            return [], []  # rewritten in place to the same size: nothing to trust
        entries: list[_MboxEntry] = []
        for entry in saved.entries:
            if self._mm[entry.offset : entry.body_start] != entry.from_line:
                break
            entries.append(entry)
        if unchanged and len(entries) == len(saved.entries):
            return entries, saved.refs
        # The last entry that still matches may have grown: scan again from it.
        keep = max(0, len(entries) - 1)
        return entries[:keep], saved.refs[:keep]


class _Saved:
    def __init__(self, size: int, mtime_ns: int) -> None:
        self.size = size
        self.mtime_ns = mtime_ns
        self.entries: list[_MboxEntry] = []
        self.refs: list[MessageRef] = []


# The file: a header line (magic, version, the mbox's dev, inode, size, mtime_ns, the
# message count), then five native 64-bit integers per message (offset, body start,
# body end, segment end, wire size), then the UIDLs and the From lines (without their
# LF), each LF-separated. Binary, so that reading 10,000 entries costs milliseconds.
_FIELDS = 5


def _key(st: os.stat_result, size: int) -> bytes:
    return b"%d %d %d %d" % (st.st_dev, st.st_ino, size, st.st_mtime_ns)


def _load(path: Path, opened: os.stat_result) -> _Saved | None:
    """The saved index of this inode, or None (none, not ours, unreadable, malformed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return None
        if st.st_size > _MAX_INDEX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return _parse(data, opened)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _parse(data: bytes, opened: os.stat_result) -> _Saved | None:
    head, _, rest = data.partition(b"\n")
    words = head.split(b" ")
    if b" ".join(words[:2]) != _MAGIC or len(words) != 7:
        return None
    dev, ino, size, mtime_ns, count = (int(word) for word in words[2:])
    if (dev, ino) != (opened.st_dev, opened.st_ino):
        return None
    numbers = array.array("q")
    cut = count * _FIELDS * numbers.itemsize
    numbers.frombytes(rest[:cut])
    texts = rest[cut:].split(b"\n")
    if len(numbers) != count * _FIELDS or len(texts) != 2 * count + 1 or texts[-1]:
        return None  # cut short or padded: never trust part of a file
    uids = [uid.decode("ascii") for uid in texts[:count]]
    saved = _Saved(size, mtime_ns)
    entries, refs = saved.entries, saved.refs
    previous_end = 0
    for index in range(count):
        offset, body_start, body_end, segment_end, wire_size = numbers[
            index * _FIELDS : index * _FIELDS + _FIELDS
        ]
        from_line = texts[count + index] + b"\n"
        if not (
            offset == previous_end
            and offset + len(from_line) == body_start <= body_end <= segment_end
            and from_line.startswith(b"From ")
        ):
            return None
        previous_end = segment_end
        entries.append(_MboxEntry(offset, body_start, body_end, segment_end, from_line))
        refs.append(
            MessageRef(index + 1, body_end - body_start, wire_size, uids[index], str(offset))
        )
    if previous_end != size:
        return None
    return saved


def _save(
    path: Path,
    opened: os.stat_result,
    entries: list[_MboxEntry],
    refs: list[MessageRef],
    indexed_size: int | None = None,
) -> None:
    """Write the index beside the mbox (a temporary file renamed over the old one).
    `indexed_size`: where the entries end, when the file goes on past them."""
    numbers = array.array("q")
    for entry, ref in zip(entries, refs, strict=True):
        numbers.extend(
            (entry.offset, entry.body_start, entry.body_end, entry.segment_end, ref.wire_size)
        )
    texts = [ref.uid.encode("ascii") for ref in refs]
    texts += [entry.from_line.removesuffix(b"\n") for entry in entries]
    size = opened.st_size if indexed_size is None else indexed_size
    data = b"%s %s %d\n" % (_MAGIC, _key(opened, size), len(entries))
    data += numbers.tobytes() + b"".join(text + b"\n" for text in texts)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a cache: a failed write costs a scan next time
