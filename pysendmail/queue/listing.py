"""The `mailq` / `sendmail -bp` listing, byte for byte as sendmail 8.17 prints it, and a
JSON form of the same facts (`--json`, our extension).

Functions here return (text, exit status); the command line prints the text. The queue
is read as sendmail reads it for a listing: every `qf*` file in directory order, sorted
by priority (a stable sort, so equal priorities keep directory order, as glibc's qsort
leaves them), each qf scanned line by line without taking its lock (a message another
process holds is marked `*`). A qf that vanishes meanwhile shows `(job completed)`.
"""

from __future__ import annotations

import fcntl
import os
import re
import time

from pysendmail.headers import decode
from pysendmail.record import asdict, field, record
from pysendmail.sysexits import ExitCode


@record
class ListedRecipient:
    address: str
    flags: str
    controlling_user: str | None = None


@record
class ListedMessage:
    qid: str
    size: int  # of the df, -1 when missing
    locked: bool = False
    completed: bool = False  # the qf vanished while listing
    priority: int = 0
    queued_at: int = 0
    last_attempt: int = 0
    attempts: int = 0
    flags: str = ""
    sender: str = ""
    status: str = ""
    body_type: str = ""
    quarantine: str = ""  # the `q` line of a quarantined (hf) item
    lost: bool = False  # a Qf item (-qL): marked `?`
    # What the listing prints after the sender, in qf order: ("C", text) or ("R", address).
    entries: list[tuple[str, str]] = field(default_factory=list)

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


def gather(queue_dir: str, prefix: str = "qf") -> list[ListedMessage]:
    """Every message in `queue_dir`, sorted as sendmail sorts the listing: the normal
    items (`qf`), or with `prefix` the quarantined (`hf`, -qQ) or lost (`Qf`, -qL) ones.

    Raises OSError when the directory cannot be read.
    """
    with os.scandir(queue_dir) as entries:
        names = [e.name for e in entries if e.name.startswith(prefix)]
    dir_fd = os.open(queue_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        messages = [_scan(dir_fd, name[2:], prefix) for name in names]
    finally:
        os.close(dir_fd)
    messages.sort(key=lambda m: m.priority)
    return messages


def _scan(dir_fd: int, qid: str, prefix: str = "qf") -> ListedMessage:
    try:
        size = os.stat(f"df{qid}", dir_fd=dir_fd).st_size
    except OSError:
        size = -1
    message = ListedMessage(qid=qid, size=size, lost=prefix == "Qf")
    try:
        fd = os.open(f"{prefix}{qid}", os.O_RDONLY, dir_fd=dir_fd)
    except OSError:
        message.completed = True
        return message
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            message.locked = True
        data = _read_envelope_part(fd)
    finally:
        os.close(fd)
    for raw in data.split(b"\n"):
        kind = raw[:1]
        if kind == b"H" or kind == b".":
            break  # headers and the end: nothing the listing shows
        if kind in _NUMBERS:
            try:
                setattr(message, _NUMBERS[kind], int(raw[1:]))
            except ValueError:
                pass
        elif kind in _TEXTS:
            rest = decode(raw[1:])
            if kind == b"C" or kind == b"R":
                message.entries.append(("C" if kind == b"C" else "R", rest))
            else:
                setattr(message, _TEXTS[kind], rest)
    return message


_NUMBERS = {b"P": "priority", b"T": "queued_at", b"K": "last_attempt", b"N": "attempts"}
_TEXTS = {
    b"F": "flags",
    b"S": "sender",
    b"M": "status",
    b"B": "body_type",
    b"q": "quarantine",
    b"C": "",
    b"R": "",
}


def _read_envelope_part(fd: int) -> bytes:
    """The qf up to its first header line (all the listing needs), read in few calls."""
    data = os.read(fd, 8192)
    while b"\nH" not in data and b"\n.\n" not in data:
        more = os.read(fd, 65536)
        if not more:
            break
        data += more
    return data


_PLAIN = re.compile(r"[ -\[\]-~]*")


def printable(text: str, width: int) -> str:
    """sendmail's prtstr(): at most `width` columns, `\\` doubled, others as `\\ooo`."""
    if len(text) <= width and _PLAIN.fullmatch(text):
        return text
    out: list[str] = []
    left = width
    for byte in text.encode("utf-8", "surrogateescape"):
        if left <= 0:
            break
        char = chr(byte)
        if char == "\\":
            left -= 2
            if left < 0:
                break
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            left -= 1
            out.append(char)
        else:
            left -= 4
            if left < 0:
                break
            out.append(f"\\{byte:03o}")
    return "".join(out)


def _ctime(seconds: int) -> str:
    return time.ctime(seconds)


def format_listing(display_dir: str, messages: list[ListedMessage], verbose: bool = False) -> str:
    """The text of the listing for one queue directory, `Total requests` line included."""
    count = len(messages)
    if count == 0:
        return f"{display_dir} is empty\n\t\tTotal requests: 0\n"
    plural = "" if count == 1 else "s"
    lines = [f"\t\t{display_dir} ({count} request{plural})\n"]
    if verbose:
        lines.append(
            "-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------\n"
        )
    else:
        lines.append(
            "-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n"
        )
    for message in messages:
        lines.append(_format_message(message, verbose))
    lines.append(f"\t\tTotal requests: {count}\n")
    return "".join(lines)


def _format_message(message: ListedMessage, verbose: bool) -> str:
    mark = "*" if message.locked else ("?" if message.lost else " ")
    out = [f"{message.qid:>13}{mark}"]
    if message.completed:
        out.append(f"{'':8} (job completed)\n")
        return "".join(out)
    when = _ctime(message.queued_at)
    if verbose:
        warned = "+" if "w" in message.flags else " "
        out.append(f"{message.size:8d} {message.priority:10d}{warned}{when[4:16]} ")
        out.append(printable(message.sender, 78))
    else:
        out.append(f"{message.size:8d} {when[:16]} ")
        out.append(printable(message.sender, 39))
    if message.status or message.body_type:
        out.append(f"\n    {message.body_type[:10]:>10}")
        if message.status:
            out.append(f"   ({message.status[: 100 if verbose else 60]})")
    if message.quarantine:
        out.append(f"\n    QUARANTINE: {message.quarantine[: 100 if verbose else 60]}")
    for kind, text in message.entries:
        if kind == "C":
            if verbose:
                out.append(f"\n\t\t\t\t\t\t(---{text[:64]}---)")
            continue
        address = text.partition(":")[2]
        if verbose:
            out.append("\n\t\t\t\t\t\t" + printable(address, 73))
        else:
            out.append("\n\t\t\t\t\t " + printable(address, 38))
    out.append("\n")
    return "".join(out)


def list_queue(
    queue_dir: str, *, verbose: bool = False, display_dir: str | None = None, prefix: str = "qf"
) -> tuple[str, int]:
    """`mailq` / `sendmail -bp` [-v] [-qQ | -qL]: (stdout text, exit status)."""
    shown = display_dir if display_dir is not None else queue_dir
    try:
        messages = gather(queue_dir, prefix)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        return f"can not chdir({shown}/): {reason}\n", int(ExitCode.CONFIG)
    return format_listing(shown, messages, verbose), int(ExitCode.OK)


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


def list_queue_json(queue_dir: str, *, display_dir: str | None = None) -> tuple[str, int]:
    """`mailq --json`: the same facts as the listing as one JSON document."""
    import json  # only --json needs it: mailq starts often

    shown = display_dir if display_dir is not None else queue_dir
    try:
        messages = gather(queue_dir)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        body = {"queue_dir": shown, "error": f"can not chdir({shown}/): {reason}"}
        return json.dumps(body) + "\n", int(ExitCode.CONFIG)
    return json.dumps(to_json(shown, messages), indent=1) + "\n", int(ExitCode.OK)
