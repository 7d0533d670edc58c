"""local.py and file.py: mailbox, Maildir and /file delivery, and the cf's local mailer
when it is a program (the office fixture's bin/deliver)."""

from __future__ import annotations

import errno
import mailbox
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysendmail import maildrop
from pysendmail.delivery.file import deliver_file
from pysendmail.delivery.local import LocalRecipient, LocalSettings, deliver_local
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.prog import ProgramSettings, RunIdentity
from pysendmail.delivery.result import Outcome
from pysendmail.envelope import ControllingUser
from tests.delivery_support import IS_ROOT, NOBODY_UID, mailers_from_cf, world_enterable_dir

HEADERS = (
    b"Received: (from root@localhost)\n\tby mail.example.com id 6AQBB1fw009523\n\tfor alice\n"
    b"From: Alice Example <alice@example.com>\n"
    b"To: bob@example.com\n"
    b"Subject: oracle test message\n"
)
BODY = b"line one\nFrom line two\n"


def message(sender: str = "<alice@example.com>") -> OutgoingMessage:
    return OutgoingMessage(sender, HEADERS, BODY, received_at=0)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    with world_enterable_dir() as path:
        yield path


def users_in(home_root: Path) -> object:
    """A user table for tests: alice and bob map to nobody's uid (root) or ours."""
    uid = NOBODY_UID if IS_ROOT else os.getuid()
    gid = NOBODY_UID if IS_ROOT else os.getgid()

    def lookup(name: str) -> RunIdentity | None:
        if name not in ("alice", "bob"):
            return None
        return RunIdentity(name, uid, gid, str(home_root / name))

    return lookup


def local_settings(spool: Path, **extra: object) -> LocalSettings:
    return LocalSettings(spool_dir=spool, user_lookup=users_in(spool), lock_timeout=1, **extra)  # type: ignore[arg-type]


def test_mbox_delivery_with_return_path(open_dir: Path) -> None:
    results = deliver_local(
        message(), [LocalRecipient("alice@example.com", "alice"), "Bob"], local_settings(open_dir)
    )
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.SENT]
    assert results[0].recipient == "alice@example.com"
    assert (results[0].status, results[0].text, results[0].relay) == ("2.0.0", "Sent", "local")
    data = (open_dir / "alice").read_bytes()
    assert data.startswith(b"From alice@example.com Thu Jan  1 ")
    assert data.split(b"\n", 1)[1] == (
        b"Return-Path: <alice@example.com>\n" + HEADERS + b"\nline one\n>From line two\n\n"
    )
    if IS_ROOT:
        assert (open_dir / "alice").stat().st_uid == NOBODY_UID
    assert [m["Subject"] for m in mailbox.mbox(open_dir / "bob")] == ["oracle test message"]


def test_existing_return_path_is_not_doubled(open_dir: Path) -> None:
    msg = OutgoingMessage("<a@b>", b"Return-Path: <a@b>\nSubject: s\n", b"x\n")
    deliver_local(msg, ["alice"], local_settings(open_dir))
    assert (open_dir / "alice").read_bytes().count(b"Return-Path") == 1


def test_unknown_user_bounces(open_dir: Path) -> None:
    [result] = deliver_local(message(), ["zed"], local_settings(open_dir))
    assert (result.outcome, result.status, result.text) == (
        Outcome.BOUNCED,
        "5.1.1",
        "User unknown",
    )
    assert not (open_dir / "zed").exists()


def test_symlinked_mailbox_bounces_and_target_is_untouched(open_dir: Path) -> None:
    victim = open_dir / "passwd-copy"
    victim.write_bytes(b"root:x:0:0\n")
    (open_dir / "alice").symlink_to(victim)
    [result] = deliver_local(message(), ["alice"], local_settings(open_dir))
    assert result.is_permanent
    assert "symbolic link" in result.text
    assert victim.read_bytes() == b"root:x:0:0\n"


def test_full_disk_defers_and_keeps_the_mailbox(
    open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver_local(message(), ["alice"], local_settings(open_dir))
    before = (open_dir / "alice").read_bytes()

    def no_space(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(maildrop, "_os_write", no_space)
    [result] = deliver_local(message(), ["alice"], local_settings(open_dir))
    assert (result.outcome, result.status) == (Outcome.DEFERRED, "4.3.1")
    assert result.text.startswith("Deferred: ")
    assert (open_dir / "alice").read_bytes() == before


def test_maildir_where_the_config_asks(open_dir: Path) -> None:
    settings = local_settings(open_dir, maildir="$z/Maildir")
    (open_dir / "alice").mkdir()
    if IS_ROOT:
        os.chown(open_dir / "alice", NOBODY_UID, NOBODY_UID)
    [result] = deliver_local(message(), ["alice"], settings)
    assert result.is_success
    [name] = os.listdir(open_dir / "alice" / "Maildir" / "new")
    content = (open_dir / "alice" / "Maildir" / "new" / name).read_bytes()
    assert content == b"Return-Path: <alice@example.com>\n" + HEADERS + b"\n" + BODY
    if IS_ROOT:
        assert (open_dir / "alice" / "Maildir").stat().st_uid == NOBODY_UID


def test_spool_directory_of_the_embedded_default_is_made(tmp_path: Path) -> None:
    spool = tmp_path / "state" / "mail"
    settings = LocalSettings(spool_dir=spool, user_lookup=users_in(tmp_path))
    if IS_ROOT:
        settings = LocalSettings(spool_dir=spool, user_lookup=lambda n: RunIdentity(n, 0, 0, "/"))
    [result] = deliver_local(message(), ["alice"], settings)
    assert result.is_success
    assert (spool / "alice").is_file()


def test_office_local_mailer_program_gets_what_sendmail_pipes(oracle_dir: Path) -> None:
    """office.cf's `Mlocal, P=.../bin/deliver, F=lsDFMAw5:/|@qPn9S, A=deliver -d $u`:
    no From line (F=n), Return-Path (F=P), one run per recipient, as the records show."""
    cf = oracle_dir / "configs" / "office" / "office.cf"
    local = mailers_from_cf(cf.read_text(), str(cf))["local"]
    boxes = oracle_dir / "configs" / "office" / "mailboxes"
    boxes.mkdir(exist_ok=True)
    settings = LocalSettings(program=ProgramSettings(timeout=30), user_lookup=users_in(boxes))
    results = deliver_local(message("root"), ["alice", "bob"], settings, mailer=local)
    assert [r.is_success for r in results] == [True, True]
    expected = (
        b"=== deliver argv: -d alice\nReturn-Path: <root>\n" + HEADERS + b"\n" + BODY + b"=== end\n"
    )
    assert (boxes / "alice").read_bytes() == expected
    assert (boxes / "bob").read_bytes() == expected.replace(b"-d alice", b"-d bob")


# ---------------------------------------------------------------- /file targets


def nobody() -> ControllingUser:
    return ControllingUser("nobody", NOBODY_UID, NOBODY_UID)


def test_file_target_appends_in_mbox_form(open_dir: Path) -> None:
    target = open_dir / "archive"
    for _ in range(2):
        result = deliver_file(message(), str(target), "/archive", nobody(), ProgramSettings())
        assert result.is_success, result
    assert result.mailer == "*file*"
    assert [m["Subject"] for m in mailbox.mbox(target)] == ["oracle test message"] * 2
    data = target.read_bytes()
    assert data.count(b"Return-Path: <alice@example.com>\n") == 2
    assert b"\n>From line two\n" in data
    if IS_ROOT:
        assert target.stat().st_uid == NOBODY_UID


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_file_target_is_written_with_the_controlling_users_rights(open_dir: Path) -> None:
    target = open_dir / "roots-file"
    target.write_bytes(b"")
    target.chmod(0o600)  # root's: nobody may not write it
    result = deliver_file(message(), target, "/roots-file", nobody(), ProgramSettings())
    assert result.is_permanent
    assert result.text.startswith("Can't create output")
    assert target.read_bytes() == b""


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_root_controlled_file_target_is_not_written_as_root(open_dir: Path) -> None:
    closed = open_dir / "closed"
    closed.mkdir(mode=0o755)
    default = RunIdentity("nobody", NOBODY_UID, NOBODY_UID, "/")
    settings = ProgramSettings(default_user=default)
    root = ControllingUser("root", 0, 0)
    result = deliver_file(message(), closed / "f", "/f", root, settings)
    assert result.is_permanent
    assert not (closed / "f").exists()


def test_file_target_refuses_symlinks_and_executables(open_dir: Path) -> None:
    victim = open_dir / "victim"
    victim.write_bytes(b"")
    (open_dir / "link").symlink_to(victim)
    script = open_dir / "script"
    script.write_bytes(b"#!/bin/sh\n")
    script.chmod(0o777)
    for path in (open_dir / "link", script):
        result = deliver_file(message(), path, str(path), nobody(), ProgramSettings())
        assert result.is_permanent, path
    assert victim.read_bytes() == b""
    assert script.read_bytes() == b"#!/bin/sh\n"


def test_dev_null_and_relative_paths() -> None:
    assert deliver_file(message(), "/dev/null", "/dev/null", nobody(), ProgramSettings()).is_success
    relative = deliver_file(message(), "mbox", "mbox", nobody(), ProgramSettings())
    assert relative.is_permanent


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_body_in_a_root_only_queue_is_read_before_switching_uid(
    open_dir: Path, tmp_path: Path
) -> None:
    """The df file lives in a 0700 root-owned queue: the user's writer cannot open it, so
    it is opened before the switch (mbox, Maildir and /file deliveries)."""
    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700)
    df = queue / "dfTEST"
    df.write_bytes(BODY)
    df.chmod(0o600)
    queued = OutgoingMessage("<alice@example.com>", HEADERS, df, received_at=0)
    [mbox] = deliver_local(queued, ["alice"], local_settings(open_dir))
    assert mbox.is_success, mbox
    assert (open_dir / "alice").read_bytes().endswith(b"\nline one\n>From line two\n\n")
    (open_dir / "bob").mkdir()
    os.chown(open_dir / "bob", NOBODY_UID, NOBODY_UID)
    [maildir] = deliver_local(queued, ["bob"], local_settings(open_dir, maildir="$z/Maildir"))
    assert maildir.is_success, maildir
    [name] = os.listdir(open_dir / "bob" / "Maildir" / "new")
    assert (open_dir / "bob" / "Maildir" / "new" / name).read_bytes().endswith(BODY)
    target = open_dir / "archive"
    filed = deliver_file(queued, target, "/archive", nobody(), ProgramSettings())
    assert filed.is_success, filed
    assert target.read_bytes().endswith(b"\nline one\n>From line two\n\n")


def test_vanished_df_defers(open_dir: Path, tmp_path: Path) -> None:
    gone = OutgoingMessage("<a@b>", HEADERS, tmp_path / "dfGONE")
    [result] = deliver_local(gone, ["alice"], local_settings(open_dir))
    assert result.is_temporary
    assert not (open_dir / "alice").exists() or (open_dir / "alice").read_bytes() == b""
