"""Submission by a user who cannot write the queue: the submission directory.

These tests use a real unprivileged user: `pysendmail-test`, created with useradd when
absent (CI runs as root). The user's half runs in a forked child that has called
os.setgid/os.setuid to that user; the queue directory is root's, mode 0700, so the
child cannot write it and must hand the message over.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from pysendmail.cli.handoff import (
    COMPLETE_MODE,
    ensure_submission_dir,
    hand_over,
    submission_dir,
    submit_as_owner,
    take_in,
)
from pysendmail.cli.options import parse_args
from pysendmail.cli.submit import Caller, SubmitContext
from pysendmail.headers import MACRO_CHAR
from tests.integration.cli_support import UNPRIVILEGED_USER, unprivileged_user

USER = UNPRIVILEGED_USER


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create and become an unprivileged user")
    return unprivileged_user()


@pytest.fixture
def queue_dir():
    base = Path(tempfile.mkdtemp(prefix="pysendmail-handoff-", dir="/tmp"))
    base.chmod(0o755)
    queue = base / "mqueue"
    queue.mkdir(mode=0o700)
    yield queue
    shutil.rmtree(base)


def context(queue: Path) -> SubmitContext:
    from pysendmail.config.model import HeaderSpec
    from pysendmail.errors import Location

    here = Location("test.cf", 1)
    return SubmitContext(
        hostname="mail.example.com",
        queue_dir=str(queue),
        templates=(
            HeaderSpec("Return-Path", "<$g>", "P", None, here),
            HeaderSpec("Received", "$?_(from $_)$. by $j id $i", "", None, here),
        ),
        local_domains=frozenset({"mail.example.com"}),
        fsync=False,
    )


def as_user(user: pwd.struct_passwd, action) -> int:
    """Run `action()` in a child process that has become `user`; its return is the status."""
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            status = action()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def user_submits(user, queue: Path, argv: list[str], message: bytes) -> int:
    ctx = context(queue)
    inv = parse_args(["sendmail", *argv], environ={})

    def action() -> int:
        return hand_over(
            ctx,
            inv,
            Caller.from_uid(os.getuid()),
            io.BytesIO(message),
            io.StringIO(),
            io.StringIO(),
        )

    return as_user(user, action)


def test_user_cannot_write_the_queue_but_hands_over(user, queue_dir):
    ensure_submission_dir(str(queue_dir))
    assert as_user(user, lambda: 0 if not os.access(queue_dir, os.W_OK) else 1) == 0
    status = user_submits(
        user,
        queue_dir,
        ["-f", "forged@example.com", "-C", "/evil.cf", "-oQ/tmp", "alice"],
        b"Subject: hi\n\nbody\n",
    )
    assert status == 0
    [entry] = list(Path(submission_dir(str(queue_dir))).iterdir())
    st = entry.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (user.pw_uid, COMPLETE_MODE)
    assert list(queue_dir.iterdir()) == []

    made = take_in(str(queue_dir), submit_as_owner(lambda inv: context(queue_dir)))
    assert len(made) == 1
    qf = (queue_dir / f"qf{made[0]}").read_text(errors="surrogateescape")
    assert f"$_{USER}@localhost\n" in qf
    assert "Sforged@example.com\n" in qf
    warning = f"mail.example.com: {USER} set sender to forged@example.com using -f"
    assert f"X-Authentication-Warning: {warning}" in qf
    # -C and -oQ were the user's own wish: not honoured, not even mentioned.
    assert "-C" not in qf and "Processed from queue" not in qf
    assert f"H?P?Return-Path: <{MACRO_CHAR}g>" in qf
    assert (queue_dir / f"df{made[0]}").read_bytes() == b"body\n"
    assert list(Path(submission_dir(str(queue_dir))).iterdir()) == []


def test_submission_dir_is_sticky_and_unreadable_to_users(user, queue_dir):
    path = ensure_submission_dir(str(queue_dir))
    assert os.stat(path).st_mode & 0o7777 == 0o1733
    assert as_user(user, lambda: 0 if not os.access(path, os.R_OK) else 1) == 0


def test_nothing_left_and_75_when_hand_over_is_impossible(user, queue_dir):
    # No submission directory: nothing can be queued, and the user is told to retry.
    assert user_submits(user, queue_dir, ["alice"], b"Subject: x\n\nbody\n") == 75
    assert not os.path.exists(submission_dir(str(queue_dir)))


def test_take_in_ignores_what_is_not_a_users_complete_submission(user, queue_dir):
    path = Path(ensure_submission_dir(str(queue_dir)))
    (path / "root-owned").write_bytes(b'PYSENDMAIL-SUBMIT 1\n{"argv": ["sendmail", "x"]}\n')
    (path / "root-owned").chmod(COMPLETE_MODE)
    (path / "link").symlink_to("/etc/passwd")
    incomplete = path / "incomplete"
    incomplete.write_bytes(b"PYSENDMAIL-SUBMIT 1\n")
    os.chown(incomplete, user.pw_uid, user.pw_gid)
    incomplete.chmod(0o200)
    assert take_in(str(queue_dir), submit_as_owner(lambda inv: context(queue_dir))) == []
    assert sorted(p.name for p in path.iterdir()) == ["incomplete", "link", "root-owned"]
    assert list(queue_dir.iterdir()) == []
