"""Submission by a user who may not write the queue: the submission directory.

Python cannot be setuid, so a user other than root (or the owner of a private queue)
hands the message over instead of queueing it. This module owns that hand-over and its
other half, taking submissions in:

* `hand_over()` (run by the user): writes one file into the submission directory, a
  sibling of the queue directory named `<QueueDirectory>-submit`, mode 1733 like
  Postfix's maildrop (anyone may create a file there, nobody but root may list or read
  the others'). The file holds the command line and the message as they were given. It
  is created mode 0200, written, made 0400 (the mark of a complete file) and fsynced;
  only then does `sendmail` exit 0. When that is impossible nothing is left behind and
  the exit status is 75 (EX_TEMPFAIL).
* `take_in()` (run by root: the daemon, or `sendmail -q`): queues each complete file as
  a submission by the file's owner uid, which is the only thing about it that is
  trusted. A file that is not a regular file, has other links, belongs to root, or is not
  marked complete is left alone; the command line inside is read again and stripped of
  what only a trusted user may say (-C, -O/-o options other than -oi/-oe/-od, -M other
  than -Mr and -Ms, -X, -D), exactly as if that user had run sendmail with a queue of
  their own.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from collections.abc import Callable
from typing import BinaryIO, TextIO

from pysendmail.cli.options import Invocation, parse_args
from pysendmail.record import record
from pysendmail.sysexits import ExitCode

MAGIC = b"PYSENDMAIL-SUBMIT 1\n"
DIR_MODE = 0o1733
COMPLETE_MODE = 0o400
_WRITING_MODE = 0o200
_COPY_CHUNK = 64 * 1024
# The -o letters an untrusted submitter keeps: -oi, -oe<mode>, -od<mode>.
_USER_OPTION_LETTERS = frozenset("ied")


def submission_dir(queue_dir: str) -> str:
    return queue_dir.rstrip("/") + "-submit"


def ensure_submission_dir(queue_dir: str) -> str:
    """Create the submission directory (root only) with mode 1733; returns its path."""
    path = submission_dir(queue_dir)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(f"{path} is not a directory")
    if st.st_uid != 0 and os.geteuid() == 0:
        os.chown(path, 0, 0)
    os.chmod(path, DIR_MODE)
    return path


def hand_over(ctx, inv: Invocation, caller, stdin: BinaryIO, out: TextIO, err: TextIO) -> int:
    """Write the submission file; 0 once it is durable, 75 (nothing left) otherwise."""
    directory = submission_dir(ctx.queue_dir)
    name = f"{int(time.time())}.{os.getpid()}.{secrets.token_hex(8)}"
    path = os.path.join(directory, name)
    fields = {"argv": _argv_of(inv), "uid": caller.uid, "name": os.environ.get("NAME")}
    header = json.dumps(fields).encode() + b"\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _WRITING_MODE)
    except OSError as exc:
        err.write(f"sendmail: cannot hand the message over ({directory}): {exc.strerror}\n")
        return int(ExitCode.TEMPFAIL)
    try:
        _write_all(fd, MAGIC + header)
        while True:
            chunk = stdin.read(_COPY_CHUNK)
            if not chunk:
                break
            _write_all(fd, chunk)
        os.fchmod(fd, COMPLETE_MODE)
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        _unlink_quietly(path)
        err.write(f"sendmail: cannot hand the message over ({directory}): {exc.strerror}\n")
        return int(ExitCode.TEMPFAIL)
    os.close(fd)
    return int(ExitCode.OK)


def _argv_of(inv: Invocation) -> list[str]:
    """The command line as given (argv[0] and every argument), kept for take_in()."""
    return list(inv.source_argv) if inv.source_argv else [inv.program]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def untrusted_view(inv: Invocation) -> Invocation:
    """The command line with what only a trusted user may say taken out."""
    inv.config_file = None
    inv.debug_file = None
    inv.traffic_log = None
    # sendmail lets anyone set the protocol and host macros ($r, $s: -p, -Mr, -Ms); any
    # other -M makes it give up its privileges, so it could not queue into this queue.
    inv.macros = {name: value for name, value in inv.macros.items() if name in ("r", "s")}
    inv.settings = [
        s
        for s in inv.settings
        if s.letter in _USER_OPTION_LETTERS or (s.letter == "v" and s.value == "T")
    ]
    return inv


@record
class Submission:
    """One complete file of the submission directory, opened and checked."""

    path: str
    uid: int
    argv: list[str]
    body: BinaryIO
    name: str | None = None  # the submitter's $NAME (the full name without -F)


def _open_submission(path: str) -> Submission | None:
    """The submission in `path`, or None when it is not one we may take (yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    st = os.fstat(fd)
    if (
        not stat.S_ISREG(st.st_mode)
        or st.st_nlink != 1
        or st.st_uid == 0
        or stat.S_IMODE(st.st_mode) != COMPLETE_MODE
    ):
        os.close(fd)
        return None
    stream = os.fdopen(fd, "rb")
    magic = stream.readline(len(MAGIC))
    header = stream.readline(1 << 20)
    try:
        fields = json.loads(header) if magic == MAGIC else None
        argv = [str(a) for a in fields["argv"]] if isinstance(fields, dict) else None
        name = fields.get("name") if isinstance(fields, dict) else None
    except (ValueError, KeyError, TypeError):
        argv = name = None
    if not argv:
        stream.close()
        return None
    name = name if isinstance(name, str) else None
    return Submission(path=path, uid=st.st_uid, argv=argv, body=stream, name=name)


def take_in(
    queue_dir: str,
    submit_one: Callable[[Invocation, int, BinaryIO], int | None],
) -> list[str]:
    """Queue every complete submission; returns the queue IDs made.

    `submit_one(invocation, uid, body)` queues one message as user `uid` and returns its
    queue ID, or None when it was refused (the user's error; the file is then dropped, as
    sendmail drops a message it refuses). A temporary failure (an exception) leaves the
    file for the next time.
    """
    directory = submission_dir(queue_dir)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    made: list[str] = []
    for name in names:
        path = os.path.join(directory, name)
        submission = _open_submission(path)
        if submission is None:
            continue
        with submission.body:
            try:
                environ = {} if submission.name is None else {"NAME": submission.name}
                inv = untrusted_view(parse_args(submission.argv, environ=environ))
            except Exception:
                inv = None
            qid = None if inv is None else submit_one(inv, submission.uid, submission.body)
        if qid:
            made.append(qid)
        _unlink_quietly(path)
    return made


def submit_as_owner(ctx_for: Callable[[Invocation], object]) -> Callable:
    """A `submit_one` for take_in(): the normal submission, as the file's owner."""
    import io

    from pysendmail.cli.submit import Caller, submit

    def submit_one(inv: Invocation, uid: int, body: BinaryIO) -> str | None:
        ctx = ctx_for(inv)
        messages = io.StringIO()
        outcome = submit(ctx, inv, Caller.from_uid(uid), body, messages)
        return outcome.qid

    return submit_one
