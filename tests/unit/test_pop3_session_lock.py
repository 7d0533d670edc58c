"""The POP3 session lock (daemons/pop3_maildrops.py) on real files: one holder at a time,
even within one process; given back on release and when its holder dies; never blocks
local delivery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pysendmail import maildrop
from pysendmail.daemons.pop3_maildrops import SessionLock, local_maildrops, session_lock_path
from pysendmail.protocol.pop3 import MaildropInUse


def test_lock_paths_sit_beside_the_mbox_and_inside_the_maildir(tmp_path):
    assert session_lock_path(tmp_path / "alice", False) == tmp_path / ".alice.pop3.lock"
    assert session_lock_path(tmp_path / "Maildir", True) == (
        tmp_path / "Maildir" / "pysendmail-pop3.lock"
    )


def test_second_holder_in_the_same_process_is_told_in_use_until_release(tmp_path):
    first, second = SessionLock(tmp_path / "l"), SessionLock(tmp_path / "l")
    first.acquire()
    with pytest.raises(MaildropInUse):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_a_lock_held_by_another_process_excludes_and_dies_with_it(tmp_path):
    path = tmp_path / "l"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import fcntl,sys; f=open({str(path)!r},'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(MaildropInUse):
            SessionLock(path).acquire()
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
        holder.stdout.close()
    lock = SessionLock(path)
    lock.acquire()  # the holder is gone; the file left behind holds nothing
    lock.release()


def test_a_symlinked_lock_file_is_refused(tmp_path):
    os.symlink(tmp_path / "elsewhere", tmp_path / "l")
    with pytest.raises(maildrop.MailboxRefused):
        SessionLock(tmp_path / "l").acquire()
    assert not (tmp_path / "elsewhere").exists()


def test_session_holds_the_maildrop_while_deliveries_go_in(tmp_path: Path):
    maildrop.append_mbox(tmp_path / "alice", "s@example.com", [b"Subject: 1\n\none\n"])
    opener = local_maildrops(tmp_path, "mbox", lock_timeout=0.5)
    session = opener("alice")
    try:
        with pytest.raises(MaildropInUse):
            opener("alice")
        second = [b"Subject: 2\n\n"]
        maildrop.append_mbox(tmp_path / "alice", "s@example.com", second, lock_timeout=0.5)
        session.commit([1])
    finally:
        session.close()
    again = opener("alice")
    try:
        assert len(again.messages) == 1
        assert b"".join(again.iter_bytes(1)) == b"Subject: 2\n\n"
    finally:
        again.close()
