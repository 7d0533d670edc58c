"""What a command-line submission does with a message that failed during its own
delivery attempt (-odi, -odb), by ErrorMode, as sendmail's savemail() decides:

* `-oeq` (quiet): nothing is returned at all.
* `-oem` (mail), `-oee`: the failure report is mailed to the sender (the queue runner's
  DSN).
* `-oep` (print, the default): the errors were printed already; when the sender is a
  local user with a home directory, the message is saved in `~/dead.letter` (written as
  the user who ran `sendmail`, in mbox form as the `*file*` mailer writes it) and
  `<path>... Saved message in <path>` is printed; when that is impossible the report is
  mailed instead.
* `-oew` (write): the errors are written to the caller's terminal, then as `-oep`; with
  no terminal the report is mailed.

A report about a report is never saved here: it goes the queue runner's way (to the
postmaster). When a report cannot be queued the message stays in the queue, as any
message whose attempt failed halfway.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pysendmail import address
from pysendmail.errors import MailError

# (queue file, queued message, [(recipient, result)]) -> True when handled (no report)
FailureHook = Callable[[Any, Any, list[tuple[Any, Any]]], bool]


def failure_hook(
    *,
    error_mode: str,
    caller_uid: int,
    caller_gid: int,
    local_domains: frozenset[str],
    hostname: str,
    out: TextIO | None,
) -> FailureHook:
    """The queue runner's `return_failures` for this submission's own attempt."""

    def handle(queue_file: Any, message: Any, failed: list[tuple[Any, Any]]) -> bool:
        if queue_file.has_flag("r") or not address.bare(queue_file.sender):
            return False  # a report, or the null sender: the runner's way
        if error_mode == "q":
            return True
        if error_mode == "w":
            if not _report_to_terminal(hostname, failed):
                return False
        elif error_mode != "p":
            return False
        home = _local_home(queue_file.sender, local_domains)
        if home is None:
            return False
        path = os.path.join(home, "dead.letter")
        if not save(path, message, caller_uid, caller_gid):
            return False
        if out is not None:
            out.write(f"{path}... Saved message in {path}\n")
            out.flush()
        return True

    return handle


def _local_home(sender: str, local_domains: frozenset[str]) -> str | None:
    """The home directory of a local sender (no domain, or one of class w)."""
    bare = address.bare(sender)
    local, domain = address.split_addr_spec(bare)
    if domain is not None and domain.lower().rstrip(".") not in {d.lower() for d in local_domains}:
        return None
    try:
        home = pwd.getpwnam(address.unquote_local_part(local)).pw_dir
    except KeyError:
        return None
    return home if home and os.path.isdir(home) else None


def save(path: str, message: Any, uid: int, gid: int) -> bool:
    """Append the queued message to `path` as the `*file*` mailer would (as uid/gid)."""
    from pysendmail.delivery.message import with_return_path
    from pysendmail.maildrop import MailboxOwner, append_mbox
    from pysendmail.queue.deliverers import DEFAULT_FILE_FLAGS, outgoing

    out = outgoing(message, DEFAULT_FILE_FLAGS)
    headers = with_return_path(out.headers, out.sender)
    try:
        append_mbox(
            Path(path),
            out.sender,
            out.open_with_headers(headers),
            owner=MailboxOwner(uid, gid),
            received_at=out.received_at,
            dot_lock=False,
            require_owner=False,
            create_mode=0o600,
            refuse_executable=True,
        )
    except (MailError, OSError):
        return False
    return True


def _report_to_terminal(hostname: str, failed: list[tuple[Any, Any]]) -> bool:
    """-oew: the errors on the caller's terminal; False when there is none."""
    try:
        tty = open("/dev/tty", "w")  # noqa: SIM115 (closed below; may not exist)
    except OSError:
        return False
    with tty:
        tty.write(f"\r\nMessage from {hostname}...\r\nErrors occurred while sending mail.\r\n")
        tty.write("Transcript follows:\r\n")
        for rcpt, result in failed:
            tty.write(f"{rcpt.address}... {result.text}\r\n")
        tty.write("Original message will be saved in dead.letter.\r\n")
    return True
