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
* `-oew` (write): sendmail's ttypath() finds the caller's terminal (that of standard
  error, else output, else input), which others must be allowed to write (`mesg y`:
  world-writable) and on which the user must be logged in (getlogin()); the errors are
  written there (`Message from $n...`, the transcript, `Original message will be saved
  in dead.letter.`), then the message is saved in `~/dead.letter` as for `-oep`, with
  its `Saved message in` line on that terminal too. With no such terminal, or no
  dead.letter, the report is mailed.

Recipients refused at submission (an unknown user) are held in every mode but `-oep`
and returned the same way when the submission ends (`report_refused`): with `-oew` on
the terminal and in dead.letter, else in a mailed report.

A report about a report is never saved here: it goes the queue runner's way (to the
postmaster). When a report cannot be queued the message stays in the queue, as any
message whose attempt failed halfway.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pysendmail import address
from pysendmail.errors import MailError

# (queue file, queued message, [(recipient, result)]) -> True when handled (no report)
FailureHook = Callable[[Any, Any, list[tuple[Any, Any]]], bool]
# -> the terminal -oew writes to, opened for writing; None when there is none
TerminalOpener = Callable[[], "TextIO | None"]


def failure_hook(
    *,
    error_mode: str,
    caller_uid: int,
    caller_gid: int,
    local_domains: frozenset[str],
    hostname: str,
    out: TextIO | None,
    daemon_name: str = "MAILER-DAEMON",
    terminal_opener: TerminalOpener | None = None,
) -> FailureHook:
    """The queue runner's `return_failures` for this submission's own attempt."""

    def handle(queue_file: Any, message: Any, failed: list[tuple[Any, Any]]) -> bool:
        if queue_file.has_flag("r") or not address.bare(queue_file.sender):
            return False  # a report, or the null sender: the runner's way
        if error_mode == "q":
            return True
        report_to = out
        terminal = None
        if error_mode == "w":
            terminal = (terminal_opener or open_terminal)()
            if terminal is None:
                return False  # not logged in there, or `mesg n`: mail it
            _report_to_terminal(terminal, daemon_name, failed)
            report_to = terminal
        elif error_mode != "p":
            return False
        try:
            home = _local_home(queue_file.sender, local_domains)
            if home is None:
                return False
            path = os.path.join(home, "dead.letter")
            if not save(path, message, caller_uid, caller_gid):
                return False
            if report_to is not None:
                report_to.write(f"{path}... Saved message in {path}\n")
                report_to.flush()
            return True
        finally:
            if terminal is not None:
                terminal.close()

    return handle


def report_refused(
    queue_file: Any,
    df_path: Path,
    transcript: list[str],
    *,
    caller_uid: int,
    caller_gid: int,
    local_domains: frozenset[str],
    daemon_name: str = "MAILER-DAEMON",
    terminal_opener: TerminalOpener | None = None,
) -> bool:
    """-oew at the end of a submission that refused recipients: the transcript on the
    caller's terminal, the message (as it is queued for the others) in dead.letter.
    False when there is no such terminal or dead.letter: the report is then mailed."""
    from pysendmail.queue.runner import QueuedMessage

    home = _local_home(queue_file.sender, local_domains)
    terminal = (terminal_opener or open_terminal)()
    if terminal is None:
        return False
    with terminal:
        _write_transcript(terminal, daemon_name, transcript)
        if home is None:
            return False
        path = os.path.join(home, "dead.letter")
        message = QueuedMessage(qid=queue_file.qid, queue_file=queue_file, df_path=df_path)
        if not save(path, message, caller_uid, caller_gid):
            return False
        terminal.write(f"{path}... Saved message in {path}\n")
    return True


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


def terminal_path() -> str | None:
    """sendmail's ttypath(): the terminal of standard error, output or input, when
    others may write it and the user is logged in; None otherwise."""
    for fd in (2, 1, 0):
        try:
            path = os.ttyname(fd)
            break
        except OSError:
            continue
    else:
        return None
    try:
        if not os.stat(path).st_mode & stat.S_IWOTH:
            return None
        os.getlogin()
    except OSError:
        return None
    return path


def open_terminal() -> TextIO | None:
    path = terminal_path()
    if path is None:
        return None
    try:
        return open(path, "w", encoding="utf-8", errors="replace")
    except OSError:
        return None


def terminal_fd() -> int | None:
    """The caller's -oew terminal (as ttypath() finds it) as a descriptor, for handing
    to the daemon with the submission; None when there is none."""
    path = terminal_path()
    if path is None:
        return None
    try:
        return os.open(path, os.O_WRONLY | os.O_NOCTTY)
    except OSError:
        return None


def opener_of(fd: int | None) -> TerminalOpener:
    """A TerminalOpener for a terminal descriptor a user handed over (the daemon's side):
    only a terminal is written to, each time through a copy of the descriptor."""

    def open_given() -> TextIO | None:
        if fd is None or not os.isatty(fd):
            return None
        return open(os.dup(fd), "w", encoding="utf-8", errors="replace")

    return open_given


def _report_to_terminal(tty: TextIO, daemon_name: str, failed: list[tuple[Any, Any]]) -> None:
    _write_transcript(tty, daemon_name, [result.text for _rcpt, result in failed])


def _write_transcript(tty: TextIO, daemon_name: str, transcript: list[str]) -> None:
    """-oew: the errors on the caller's terminal, as sendmail's savemail() writes them."""
    tty.write(f"\r\nMessage from {daemon_name}...\r\n")
    tty.write("Errors occurred while sending mail.\r\n")
    tty.write("Transcript follows:\r\n")
    for line in transcript:
        tty.write(f"{line}\n")
    tty.write("Original message will be saved in dead.letter.\r\n")
    tty.flush()
