"""Which queue items a `-q` selection names, and sendmail's quarantine (`-Q`).

sendmail 8.17 keeps three kinds of items in a queue directory: normal ones (`qf<ID>`),
quarantined ones (`hf<ID>`, holding a `q<reason>` line; normal runs leave them alone)
and lost ones (`Qf<ID>`, files it could not read). `-qQ[substr]` and `-qL` make a
listing or an operation look at the quarantined or the lost items instead of the normal
ones; `-qI`, `-qR`, `-qS` (and `-qQsubstr` on the reason) narrow the choice.

`quarantine_queue()` is `-Q reason` (quarantine the selected normal items: a `q` line
before the `S` line, `qf` renamed `hf`) and `-Q` alone (release the selected quarantined
items: `q` line removed, `hf` renamed `qf`), with sendmail's messages under `-v`. Each
item is changed under its lock, through a `tf` file that is fsynced and renamed, so a
crash leaves either the old item or the new one.
"""

from __future__ import annotations

import fcntl
import os

from pysendmail.cli.options import QueueRunRequest

TYPE_CHECKING = False  # typing is not imported at run time: mailq starts often
if TYPE_CHECKING:
    from typing import TextIO

NORMAL, QUARANTINED, LOST = "qf", "hf", "Qf"


def prefix_of(request: QueueRunRequest | None) -> str:
    """The kind of item a -q request looks at."""
    if request is None:
        return NORMAL
    if request.lost_items:
        return LOST
    return QUARANTINED if request.quarantine_reasons else NORMAL


def _contains(limits: list[tuple[str, bool]], text: str) -> bool:
    """sendmail's check: some limit matches (a negated one matches when absent)."""
    return any((substr in text) != negated for substr, negated in limits)


def selected(request: QueueRunRequest | None, message) -> bool:
    """Whether a listed message (queue.listing.ListedMessage) passes the -q limits."""
    if request is None:
        return True
    if request.ids and not _contains(request.ids, message.qid):
        return False
    if request.senders and not _contains(request.senders, message.sender):
        return False
    if request.recipients and not any(
        _contains(request.recipients, r.address) for r in message.recipients
    ):
        return False
    # -qQ alone takes every quarantined item; -qQsubstr those whose reason holds it.
    reasons = [(text, negated) for text, negated in request.quarantine_reasons if text]
    return not reasons or _contains(reasons, message.quarantine)


def select(queue_dir: str, request: QueueRunRequest | None, order: str = "priority"):
    """The listed messages a request names, in listing order (`order`: QueueSortOrder).
    Raises OSError."""
    from pysendmail.queue.items import gather

    return [m for m in gather(queue_dir, prefix_of(request), order) if selected(request, m)]


def quarantine_queue(
    queue_dir: str,
    request: QueueRunRequest | None,
    reason: str | None,
    out: TextIO,
    *,
    verbose: bool,
) -> int:
    """-Q: quarantine (reason) or release (None) the selected items; returns how many
    changed."""
    if reason is not None:
        reason = reason.replace("\r", " ").replace("\n", " ")
    messages = select(queue_dir, request)
    if not messages:
        if verbose:
            out.write(f"{queue_dir}: no matches\n")
    elif verbose:
        out.write(f"Processing {queue_dir}:\n")
    changed = sum(
        1
        for m in messages
        if _change_item(queue_dir, prefix_of(request), m.qid, reason, out, verbose)
    )
    if verbose:
        out.write("No changes\n" if changed == 0 else f"{changed} change{'s' * (changed != 1)}\n")
    return changed


def _change_item(
    queue_dir: str, prefix: str, qid: str, reason: str | None, out: TextIO, verbose: bool
) -> bool:
    old_path = os.path.join(queue_dir, f"{prefix}{qid}")
    try:
        fd = os.open(old_path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        out.write(f"Skipping {qid}\n")
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.write(f"Skipping {qid}\n")
            return False
        with os.fdopen(os.dup(fd), "rb") as stream:
            lines = stream.read().split(b"\n")
        new_lines, dirty, finished = _rewrite(lines, qid, reason, out, verbose)
        if not finished:
            out.write(f"Skipping {qid}: Incomplete file: {old_path}\n")
            return False
        if not dirty:
            return False
        new_prefix = NORMAL if reason is None else QUARANTINED
        return _replace(queue_dir, qid, prefix, new_prefix, b"\n".join(new_lines), out)
    finally:
        os.close(fd)


def _rewrite(
    lines: list[bytes], qid: str, reason: str | None, out: TextIO, verbose: bool
) -> tuple[list[bytes], bool, bool]:
    """The qf lines with the quarantine reason changed: (lines, changed, complete)."""
    new_reason = None if reason is None else reason.encode("utf-8", "surrogateescape")
    result: list[bytes] = []
    found = dirty = finished = False
    for line in lines:
        kind = line[:1]
        if kind == b"q" and not finished:
            found = True
            old = line[1:].decode("utf-8", "surrogateescape")
            if new_reason is None:
                if verbose:
                    out.write(f'{qid}: Removed quarantine of "{old}"\n')
                dirty = True
                continue
            if old == reason:
                if verbose:
                    out.write(f'{qid}: Already quarantined with "{reason}"\n')
            else:
                if verbose:
                    out.write(f'{qid}: Quarantine changed from "{old}" to "{reason}"\n')
                dirty = True
            result.append(b"q" + new_reason)
            continue
        if kind == b"S" and not found and new_reason is not None and not finished:
            if verbose:
                out.write(f'{qid}: Quarantined with "{reason}"\n')
            result.append(b"q" + new_reason)
            found = dirty = True
        if line == b"." and not finished:
            finished = True
        result.append(line)
    return result, dirty, finished


def _replace(queue_dir: str, qid: str, old: str, new: str, data: bytes, out: TextIO) -> bool:
    temp = os.path.join(queue_dir, f"tf{qid}")
    try:
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:
        out.write(f"Skipping {qid}: Could not open {temp}: {exc.strerror}\n")
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(temp)
        out.write(f"Skipping {qid}: Error writing {temp}: {exc.strerror}\n")
        return False
    os.close(fd)
    old_path = os.path.join(queue_dir, f"{old}{qid}")
    new_path = os.path.join(queue_dir, f"{new}{qid}")
    os.rename(temp, new_path)
    if new_path != old_path:
        os.unlink(old_path)
    dir_fd = os.open(queue_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


def run_items(queue_dir: str, request: QueueRunRequest, runner, out: TextIO | None) -> int:
    """-qQ / -qL runs: the quarantined (or lost) items the request selects are delivered
    like queued ones, as sendmail runs them in that queue mode. Each is renamed to `qf`
    for its attempt; a quarantined item that is still queued afterwards is hidden again
    (`hf`); a lost one stays a normal item if it can be read now (the store loses it
    again if it cannot). Returns how many were attempted."""
    prefix = prefix_of(request)
    messages = select(queue_dir, request)
    attempted = 0
    for number, message in enumerate(messages, 1):
        if out is not None:
            out.write(
                f"\nRunning {queue_dir}/{message.qid} (sequence {number} of {len(messages)})\n"
            )
        hidden = os.path.join(queue_dir, f"{prefix}{message.qid}")
        visible = os.path.join(queue_dir, f"{NORMAL}{message.qid}")
        if not _rename_unlocked(hidden, visible):
            continue
        attempted += 1
        try:
            runner.run_one(message.qid)
        finally:
            if prefix == QUARANTINED and os.path.exists(visible):
                _rename_unlocked(visible, hidden)
    return attempted


def _rename_unlocked(source: str, target: str) -> bool:
    """Rename `source` unless another process holds its lock (or it is gone)."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.exists(target):
            return False
        os.rename(source, target)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
