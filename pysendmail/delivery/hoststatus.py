"""sendmail's persistent host status: one small file per remote host under
HostStatusDirectory, shared by every sendmail process (and by sendmail itself: the
files are in its format, so `hoststat` of either reads the other's).

A host `a.b.c` lives in `DIR/c./b./a`: each domain label but the first is a directory
named with a trailing dot, the first label is the file (lower case, `/` written `:`); an
address literal `[1.2.3.4]` is kept as `DIR/4./3./2./1`. A file holds lines keyed by
their first letter: `V0` (version), `E` errno, `H` resolver errno, `S` the sysexits
status, `D` the DSN status, `R` the last SMTP reply, `U` the time of the last use, and a
final `.`.

This module owns that layout and format, the `hoststat` listing (-bh) and the purge of
old entries (-bH). Writing is best effort: a host status file that cannot be written
never fails a delivery.
"""

from __future__ import annotations

import errno as errno_codes
import fcntl
import ipaddress
import os
import time
from collections.abc import Iterator
from typing import NamedTuple

from pysendmail.delivery.result import sysexit_message

FORMAT_VERSION = 0
HEADING = " -------------- Hostname --------------- How long ago ---------Results---------\n"
_MAX_FIELD = 80  # sendmail stores at most this much of the D and R lines


class HostStatus(NamedTuple):
    """What one file says about a host."""

    errno: int = 0
    resolver_errno: int = 0
    exit_status: int = 0
    dsn: str | None = None  # D line: the enhanced status code
    reply: str | None = None  # R line: the last SMTP reply
    last_use: int = 0  # U line: seconds since the epoch


def resolve_dir(directory: str | None, queue_dir: str) -> str | None:
    """HostStatusDirectory as sendmail reads it: a relative path is under the queue."""
    if not directory:
        return None
    return directory if os.path.isabs(directory) else os.path.join(queue_dir, directory)


def status_path(directory: str, host: str) -> str | None:
    """Where `host`'s status lives under `directory`; None for a name sendmail would not
    store (empty, leading dot, `..`, a bracketed text that is not an address)."""
    if not host or host.startswith("."):
        return None
    bracketed = host.startswith("[")
    name = host[1:] if bracketed else host
    name = name.rstrip(".]" if bracketed else ".")
    if bracketed:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return None
    if not name or ".." in name:
        return None
    labels = name.split(".")
    parts = [_label(label) + "." for label in reversed(labels[1:])]
    return os.path.join(directory, *parts, _label(labels[0]))


def _label(label: str) -> str:
    return label.lower().replace("/", ":")


def host_of(path: str, directory: str) -> str:
    """The host name a status file stands for (the inverse of status_path)."""
    relative = os.path.relpath(path, directory).split(os.sep)
    return ".".join(part.removesuffix(".") for part in reversed(relative))


def format_status(status: HostStatus) -> str:
    lines = [
        f"V{FORMAT_VERSION}",
        f"E{status.errno}",
        f"H{status.resolver_errno}",
        f"S{status.exit_status}",
    ]
    if status.dsn is not None:
        lines.append("D" + _one_line(status.dsn)[:_MAX_FIELD])
    if status.reply is not None:
        lines.append("R" + _one_line(status.reply)[:_MAX_FIELD])
    lines += [f"U{status.last_use}", "."]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def parse_status(text: str) -> HostStatus | None:
    """The status in a file's text; None when it is not a status file sendmail could read
    (an unknown line, a version other than 0)."""
    fields: dict[str, object] = {}
    version_seen = False
    for line in text.split("\n"):
        if not line:
            continue
        key, value = line[0], line[1:]
        try:
            if key == "V":
                if int(value) != FORMAT_VERSION:
                    return None
                version_seen = True
            elif key in "EHSU":
                number = int(value)
                name = {"E": "errno", "H": "resolver_errno", "S": "exit_status", "U": "last_use"}
                fields[name[key]] = number
            elif key == "D":
                fields["dsn"] = value
            elif key == "R":
                fields["reply"] = value
            elif key == ".":
                return HostStatus(**fields)  # type: ignore[arg-type]
            else:
                return None
        except ValueError:
            return None
    return HostStatus(**fields) if version_seen else None  # type: ignore[arg-type]


def store(directory: str | None, host: str, status: HostStatus) -> bool:
    """Write `host`'s status (best effort). The base directory must exist, as sendmail
    requires; the domain directories below it are made as needed."""
    if not directory or not os.path.isdir(directory):
        return False
    path = status_path(directory, host)
    if path is None:
        return False
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, format_status(status).encode("utf-8", "replace"), 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def walk(directory: str, root: str | None = None) -> Iterator[tuple[str, str]]:
    """(path, host) of every status file, skipping names that begin with a dot."""
    root = directory if root is None else root
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            yield from walk(path, root)
        elif os.path.isfile(path):
            yield path, host_of(path, root)


def interval(seconds: int) -> str:
    """sendmail's brief interval: `HH:MM:SS`, with `D+` in front past a day."""
    seconds = max(seconds, 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}+{text}" if days else text


def result_text(status: HostStatus, width: int) -> str:
    """The Results column, as -bh prints it (`width` is 25, or 78 with -v)."""
    if status.reply is not None:
        return status.reply[:width]
    if status.exit_status == 75 and status.errno:
        return "Deferred: " + os.strerror(status.errno)[: width - 10]
    if status.exit_status:
        _, dsn, text = sysexit_message(status.exit_status)
        if text.startswith("unknown mailer error"):
            return f"Unknown mailer error {status.exit_status}"[:width]
        return f"{dsn} {text}"[:width]
    if not status.errno:
        return "OK"
    return "OK: " + os.strerror(status.errno)[: width - 4]


def _is_locked(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno_codes.EWOULDBLOCK, errno_codes.EAGAIN)
    finally:
        os.close(fd)
    return False


def listing(directory: str, *, verbose: bool = False, now: float | None = None) -> tuple[str, str]:
    """(standard output, error output) of -bh: the heading once a host is found, then a
    line per host; a file that is not a status file is reported on the error output."""
    now = time.time() if now is None else now
    width = 78 if verbose else 25
    out: list[str] = []
    errors: list[str] = []
    for path, host in walk(directory):
        if not out:
            out.append(HEADING)
        try:
            with open(path, encoding="utf-8", errors="replace") as stream:
                status = parse_status(stream.read())
        except OSError:
            continue
        if status is None:
            errors.append(f"{path}: could not read status file\n")
            continue
        mark = "*" if _is_locked(path) else " "
        ago = interval(int(now) - status.last_use)
        out.append(f"{mark}{host:<39} {ago:>12} {result_text(status, width)}\n")
    return "".join(out), "".join(errors)


def purge(directory: str, max_age: float, *, now: float | None = None) -> int:
    """-bH: remove status files (and emptied domain directories) not touched for more
    than `max_age` seconds, as sendmail does; returns how many files were removed."""
    now = time.time() if now is None else now
    removed, _ = _purge_dir(directory, max_age, now)
    return removed


def _purge_dir(path: str, max_age: float, now: float) -> tuple[int, bool]:
    """Returns (files removed, whether something was left in `path`)."""
    removed = 0
    left = False
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return 0, True
    for name in names:
        if name.startswith("."):
            continue
        child = os.path.join(path, name)
        try:
            st = os.lstat(child)
        except OSError:
            continue
        if os.path.isdir(child) and not os.path.islink(child):
            count, child_left = _purge_dir(child, max_age, now)
            removed += count
            # A directory goes only when it is empty, is a domain (trailing dot) and is
            # itself old enough, as in sendmail: one just emptied waits for the next purge.
            if child_left or not name.endswith(".") or now - os.stat(child).st_mtime <= max_age:
                left = True
                continue
            try:
                os.rmdir(child)
            except OSError:
                left = True
        elif now - st.st_mtime <= max_age:
            left = True
        else:
            try:
                os.unlink(child)
                removed += 1
            except OSError:
                left = True
    return removed, left
