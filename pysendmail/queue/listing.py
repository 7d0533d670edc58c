"""The `mailq` / `sendmail -bp` listing, byte for byte as sendmail 8.17 prints it, and a
JSON form of the same facts (`--json`, our extension).

Functions here return (text, exit status); the command line prints the text. The items
come from `queue.items` in sendmail's order: a message another process holds is marked
`*`, a lost one (-qL) `?`, one whose qf vanished meanwhile shows `(job completed)`. The
listing is built in bytes, as sendmail prints it, and decoded once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from pysendmail.headers import decode
from pysendmail.queue.items import (
    ListedMessage,
    ListedRecipient,
    Row,
    field,
    gather,
    number,
    read_rows,
)
from pysendmail.record import asdict
from pysendmail.sysexits import ExitCode

__all__ = [
    "ListedMessage",
    "ListedRecipient",
    "LoadMarks",
    "format_listing",
    "gather",
    "list_queue",
]


# The bytes prtstr() prints as they are; `\` is doubled, the others become \ooo.
_PLAIN = bytes(range(0x20, 0x7F)).replace(b"\\", b"")


def printable(text: str, width: int) -> str:
    """sendmail's prtstr(): at most `width` columns, `\\` doubled, others as `\\ooo`."""
    return decode(_printable(text.encode("utf-8", "surrogateescape"), width))


def _printable(raw: bytes, width: int) -> bytes:
    if len(raw) <= width and not raw.translate(None, _PLAIN):
        return raw
    out = bytearray()
    left = width
    for byte in raw:
        if left <= 0:
            break
        if byte == 0x5C:
            left -= 2
            if left < 0:
                break
            out += b"\\\\"
        elif 0x20 <= byte < 0x7F:
            left -= 1
            out.append(byte)
        else:
            left -= 4
            if left < 0:
                break
            out += b"\\%03o" % byte
    return bytes(out)


class LoadMarks:
    """The marks sendmail's listing gives an item nobody holds: `-` when a queue run would
    find it too young to try again (MinQueueAge, or MaxQueueAge), `X` when a run would
    only keep it queued for the load average (QueueLA, default 8 per CPU online, and
    QueueFactor: its priority above QueueFactor / (load - QueueLA + 1)). The load is
    the one-minute average rounded, as sendmail's getla() gives it."""

    def __init__(
        self,
        load: int,
        queue_la: int,
        queue_factor: int = 600000,
        min_queue_age: float = 0,
        max_queue_age: float = 0,
        now: float | None = None,
    ) -> None:
        self.load, self.queue_la, self.queue_factor = load, queue_la, queue_factor
        self.min_queue_age, self.max_queue_age = min_queue_age, max_queue_age
        self.now = time.time() if now is None else now
        # nothing to mark, the usual case: the listing then spends nothing on it
        self.active = load >= queue_la or min_queue_age > 0 or max_queue_age > 0

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> LoadMarks:
        queue_la = options.get("QueueLA")
        try:
            load = int(os.getloadavg()[0] + 0.5)
        except OSError:
            load = -1
        return cls(
            load,
            int(queue_la) if queue_la is not None else 8 * (os.cpu_count() or 1),  # type: ignore[call-overload]
            int(options.get("QueueFactor") or 600000),  # type: ignore[call-overload]
            float(options.get("MinQueueAge") or 0),  # type: ignore[arg-type]
            float(options.get("MaxQueueAge") or 0),  # type: ignore[arg-type]
        )

    def mark(self, row: Row) -> bytes:
        if self._too_young(row):
            return b"-"
        if self.load >= self.queue_la and row[0] > self.queue_factor // (
            self.load - self.queue_la + 1
        ):
            return b"X"
        return b" "

    def _too_young(self, row: Row) -> bool:
        if not (self.min_queue_age > 0 or self.max_queue_age > 0):
            return False
        envelope = row[11]
        if number(envelope, b"\nN") == 0 and b"\nN" in envelope:
            return False  # never tried yet
        last_try = number(envelope, b"\nK")
        age = self.now - last_try
        if self.max_queue_age > 0:
            return age < min(last_try - row[5], self.max_queue_age)
        return 0 <= age < self.min_queue_age


def format_listing(
    display_dir: str,
    messages: list[ListedMessage],
    verbose: bool = False,
    marks: LoadMarks | None = None,
) -> str:
    """The text of the listing for one queue directory, `Total requests` line included."""
    return format_rows(display_dir, [message.row for message in messages], verbose, marks)


def format_rows(
    display_dir: str, rows: list[Row], verbose: bool = False, marks: LoadMarks | None = None
) -> str:
    """format_listing() of read_rows()'s rows."""
    count = len(rows)
    if count == 0:
        return f"{display_dir} is empty\n\t\tTotal requests: 0\n"
    plural = "" if count == 1 else "s"
    head = f"\t\t{display_dir} ({count} request{plural})\n"
    times = _Times()
    if marks is not None and marks.active:
        rows = [
            (*row[:3], marks.mark(row), *row[4:]) if row[3] == b" " and not row[4] else row
            for row in rows
        ]
    if verbose:
        head += "-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------\n"
        body = [_format_verbose(row, times) for row in rows]
    else:
        head += "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
        body = [_format_short(row, times) for row in rows]
    return f"{head}{decode(b''.join(body))}\t\tTotal requests: {count}\n"


class _Times(dict):
    """ctime() of each queue time, made once per second that messages share."""

    def __missing__(self, seconds: int) -> bytes:
        text = self[seconds] = time.ctime(seconds).encode()
        return text


_COMPLETED = b"%8s (job completed)\n" % b""


def _format_short(row: Row, times: _Times) -> bytes:
    """One message of the plain listing: 80 columns, sender and recipients cut short."""
    _, name, size, mark, completed, queued_at, sender, status, body_type, quarantine = row[:10]
    if completed:
        return b"%13s%s%s" % (name[2:], mark, _COMPLETED)
    if len(sender) > 39 or sender.translate(None, _PLAIN):
        sender = _printable(sender, 39)
    out = b"%13s%s%8d %s %s" % (name[2:], mark, size, times[queued_at][:16], sender)
    if status or body_type or quarantine:
        out += _notes(status, body_type, quarantine, 60)
    for line in row[10]:
        if line[1] == 0x52:  # R
            address = line.partition(b":")[2]
            if len(address) > 38 or address.translate(None, _PLAIN):
                address = _printable(address, 38)
            out += b"\n\t\t\t\t\t " + address
    return out + b"\n"


def _format_verbose(row: Row, times: _Times) -> bytes:
    """One message of `-bp -v`: the priority, `+` once a delay warning went out, the
    controlling users, longer texts."""
    priority, name, size, mark, completed, queued_at, sender, status, body_type = row[:9]
    if completed:
        return b"%13s%s%s" % (name[2:], mark, _COMPLETED)
    out = b"%13s%s%8d %10d%s%s %s%s" % (
        name[2:],
        mark,
        size,
        priority,
        b"+" if b"w" in field(row[11], b"\nF") else b" ",
        times[queued_at][4:16],
        _printable(sender, 78),
        _notes(status, body_type, row[9], 100),
    )
    for line in row[10]:
        if line[1] == 0x43:  # C
            out += b"\n\t\t\t\t\t\t(---%s---)" % line[2:66]
        else:
            out += b"\n\t\t\t\t\t\t" + _printable(line.partition(b":")[2], 73)
    return out + b"\n"


def _notes(status: bytes, body_type: bytes, quarantine: bytes, width: int) -> bytes:
    """The body type and the last failure, and the quarantine reason, when there are."""
    out = b""
    if status or body_type:
        out = b"\n    %10s" % body_type[:10]
        if status:
            out += b"   (%s)" % status[:width]
    if quarantine:
        out += b"\n    QUARANTINE: %s" % quarantine[:width]
    return out


def list_queue(
    queue_dir: str,
    *,
    verbose: bool = False,
    display_dir: str | None = None,
    prefix: str = "qf",
    order: str = "priority",
    split: bool = False,
    marks: LoadMarks | None = None,
) -> tuple[str, int]:
    """`mailq` / `sendmail -bp` [-v] [-qQ | -qL]: (stdout text, exit status), in the
    QueueSortOrder `order`, with `marks` for what a queue run would skip now. `split`: a
    large queue may be read by two processes (see queue.items.read_rows)."""
    shown = display_dir if display_dir is not None else queue_dir
    try:
        rows = read_rows(queue_dir, prefix, order, split=split)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        return f"can not chdir({shown}/): {reason}\n", int(ExitCode.CONFIG)
    return format_rows(shown, rows, verbose, marks), int(ExitCode.OK)


def to_json(queue_dir: str, messages: list[ListedMessage]) -> dict:
    out = []
    for m in messages:
        record = {
            "id": m.qid,
            "size": m.size,
            "priority": m.priority,
            "queued_at": m.queued_at,
            "last_attempt": m.last_attempt,
            "attempts": m.attempts,
            "sender": m.sender,
            "status": m.status or None,
            "body_type": m.body_type or None,
            "flags": m.flags,
            "locked": m.locked,
            "recipients": [asdict(r) for r in m.recipients],
        }
        if m.completed:
            record["completed"] = True
        out.append(record)
    return {"queue_dir": queue_dir, "total": len(out), "messages": out}


def list_queue_json(
    queue_dir: str, *, display_dir: str | None = None, order: str = "priority"
) -> tuple[str, int]:
    """`mailq --json`: the same facts as the listing as one JSON document."""
    import json  # only --json needs it: mailq starts often

    shown = display_dir if display_dir is not None else queue_dir
    try:
        messages = gather(queue_dir, order=order)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        body = {"queue_dir": shown, "error": f"can not chdir({shown}/): {reason}"}
        return json.dumps(body) + "\n", int(ExitCode.CONFIG)
    return json.dumps(to_json(shown, messages), indent=1) + "\n", int(ExitCode.OK)
