"""maildrop.py: mbox and Maildir writing, locking, and the POP3 reader side (real files)."""

from __future__ import annotations

import errno
import mailbox
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail import maildrop
from pysendmail.maildrop import (
    DotLock,
    MailboxFull,
    MailboxLocked,
    MailboxOwner,
    MailboxRefused,
    MaildropChanged,
    MboxEncoder,
    append_mbox,
    deliver_maildir,
    open_maildrop,
)

NOBODY = MailboxOwner(65534, 65534)
IS_ROOT = os.geteuid() == 0

MESSAGE = (
    b"Return-Path: <alice@example.com>\r\n"
    b"From: alice@example.com\r\n"
    b"Subject: hi\r\n"
    b"\r\n"
    b"From the start of a line\r\n"
    b">From already quoted\r\n"
    b"last line without newline"
)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for pos in range(0, len(data), size):
        yield data[pos : pos + size]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any uid can enter (pytest's tmp dirs are 0700 root-only)."""
    path = Path(tempfile.mkdtemp(prefix="pysendmail-maildrop-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- mbox format


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 4096])
def test_mbox_encoder_escapes_from_and_normalises_line_ends(chunk_size: int) -> None:
    encoder = MboxEncoder()
    out = b"".join(encoder.feed(c) for c in chunks(MESSAGE, chunk_size)) + encoder.finish()
    assert out == (
        b"Return-Path: <alice@example.com>\n"
        b"From: alice@example.com\n"
        b"Subject: hi\n"
        b"\n"
        b">From the start of a line\n"
        b">From already quoted\n"  # mail.local's mboxo: only `From ` is quoted
        b"last line without newline\n"
        b"\n"
    )


def test_append_mbox_writes_from_line_and_blank_separator(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    append_mbox(box, "<alice@example.com>", [MESSAGE], received_at=0)
    append_mbox(box, "<>", [b"Subject: two\n\nbody\n"], received_at=0)
    data = box.read_bytes()
    first, second = data.split(b"\n\nFrom ")
    assert first.startswith(b"From alice@example.com Thu Jan  1 ")
    assert second.startswith(b"MAILER-DAEMON ")
    assert data.endswith(b"body\n\n")
    assert b"\r" not in data
    assert oct(box.stat().st_mode & 0o777) == "0o600"
    # the stdlib's reader, like mutt's, splits it into the same two messages
    parsed = mailbox.mbox(box)
    assert [m["Subject"] for m in parsed] == ["hi", "two"]
    assert parsed[0].get_payload().startswith(">From the start")


def test_append_mbox_repairs_a_missing_final_newline(tmp_path: Path) -> None:
    box = tmp_path / "bob"
    box.write_bytes(b"From x Thu Jan  1 00:00:00 1970\nSubject: a\n\ntruncated")
    append_mbox(box, "carol@example.com", [b"Subject: b\n\nok\n"])
    assert [m["Subject"] for m in mailbox.mbox(box)] == ["a", "b"]


def test_symlinked_mailbox_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"")
    box = tmp_path / "alice"
    box.symlink_to(target)
    with pytest.raises(MailboxRefused) as caught:
        append_mbox(box, "a@b", [b"x\n"])
    assert not caught.value.is_temporary
    assert target.read_bytes() == b""
    assert not (tmp_path / "alice.lock").exists()


def test_hard_linked_or_irregular_mailbox_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b"")
    os.link(other, tmp_path / "alice")
    with pytest.raises(MailboxRefused, match="irregular file"):
        append_mbox(tmp_path / "alice", "a@b", [b"x\n"])
    os.mkfifo(tmp_path / "bob")
    with pytest.raises(MailboxRefused, match="irregular file"):
        append_mbox(tmp_path / "bob", "a@b", [b"x\n"])
    assert other.read_bytes() == b""


def test_mailbox_of_another_owner_is_refused(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    box.write_bytes(b"")
    with pytest.raises(MailboxRefused, match="wrong ownership"):
        append_mbox(box, "a@b", [b"x\n"], owner=MailboxOwner(os.geteuid() + 1, 0))
    assert box.read_bytes() == b""


# ---------------------------------------------------------------- locks


def test_dot_lock_held_by_another_program_defers(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    (tmp_path / "alice.lock").write_bytes(b"")
    with pytest.raises(MailboxLocked) as caught:
        append_mbox(box, "a@b", [b"x\n"], lock_timeout=0.05)
    assert caught.value.is_temporary
    assert (tmp_path / "alice.lock").exists()  # not ours to remove


def test_stale_dot_lock_is_broken(tmp_path: Path) -> None:
    lock = tmp_path / "alice.lock"
    lock.write_bytes(b"")
    os.utime(lock, (1, 1))
    append_mbox(tmp_path / "alice", "a@b", [b"x\n"], lock_timeout=1)
    assert not lock.exists()
    assert (tmp_path / "alice").read_bytes().endswith(b"x\n\n")


def test_fcntl_lock_held_by_another_process_defers(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    box.write_bytes(b"")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys; f=open(sys.argv[1],'r+'); fcntl.lockf(f, fcntl.LOCK_EX);"
            " print('locked', flush=True); sys.stdin.read()",
            str(box),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(MailboxLocked):
            append_mbox(box, "a@b", [b"x\n"], lock_timeout=0.05)
    finally:
        holder.communicate(b"")
    assert box.read_bytes() == b""
    assert not (tmp_path / "alice.lock").exists()
    append_mbox(box, "a@b", [b"x\n"], lock_timeout=0.05)
    assert box.read_bytes().endswith(b"x\n\n")


def test_dot_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    with DotLock(tmp_path / "alice", timeout=0), pytest.raises(MailboxLocked):
        DotLock(tmp_path / "alice", timeout=0).acquire()
    DotLock(tmp_path / "alice", timeout=0).acquire()


# ---------------------------------------------------------------- full disk


@pytest.mark.parametrize(("code", "status"), [(errno.ENOSPC, "4.3.1"), (errno.EDQUOT, "4.2.2")])
def test_full_disk_is_temporary_and_leaves_the_mailbox_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, status: str
) -> None:
    box = tmp_path / "alice"
    append_mbox(box, "a@b", [b"Subject: kept\n\nfirst\n"])
    before = box.read_bytes()
    written = []

    def failing_write(fd: int, data: bytes) -> int:
        if written:
            raise OSError(code, os.strerror(code))
        written.append(len(data))
        return os.write(fd, bytes(data)[:10])  # a partial write, then the disk is full

    monkeypatch.setattr(maildrop, "_os_write", failing_write)
    with pytest.raises(MailboxFull) as caught:
        append_mbox(box, "a@b", [b"Subject: lost\n\n" + b"y" * 100 + b"\n"])
    assert caught.value.is_temporary
    assert caught.value.status == status
    assert box.read_bytes() == before
    assert not (tmp_path / "alice.lock").exists()


# ---------------------------------------------------------------- as the owner


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_root_creates_and_writes_the_mailbox_as_its_owner(open_dir: Path) -> None:
    box = open_dir / "nobody"
    append_mbox(box, "a@b", [b"Subject: s\n\nbody\n"], owner=NOBODY)
    st = box.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY.uid, 0o600)
    assert box.read_bytes().endswith(b"body\n\n")
    assert not (open_dir / "nobody.lock").exists()


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_write_as_owner_really_drops_root(open_dir: Path) -> None:
    # a Maildir whose new/ belongs to root: the owner's process must not be able to link
    root = open_dir / "Maildir"
    maildrop.ensure_maildir(root, NOBODY)
    os.chown(root / "new", 0, 0)
    os.chmod(root / "new", 0o755)
    with pytest.raises(maildrop.MaildropTempError) as caught:
        deliver_maildir(root, [b"Subject: s\n\nx\n"], owner=NOBODY)
    assert caught.value.status == "4.2.1"
    assert os.listdir(root / "new") == []
    assert os.listdir(root / "tmp") == []


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_full_disk_in_the_owner_child_comes_back_typed(
    open_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(maildrop, "_os_write", full)
    with pytest.raises(MailboxFull):
        append_mbox(open_dir / "nobody", "a@b", [b"x\n"], owner=NOBODY)
    assert (open_dir / "nobody").read_bytes() == b""


# ---------------------------------------------------------------- Maildir


def test_maildir_delivery_lands_in_new_with_sizes_in_the_name(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    names = [deliver_maildir(root, chunks(MESSAGE, 5)) for _ in range(3)]
    assert len(set(names)) == 3
    assert sorted(os.listdir(root / "new")) == sorted(names)
    assert os.listdir(root / "tmp") == []
    content = (root / "new" / names[0]).read_bytes()
    assert content.startswith(b"Return-Path: <alice@example.com>\nFrom:")
    assert content.endswith(
        b"\nFrom the start of a line\n>From already quoted\nlast line without newline\n"
    )
    lines = content.count(b"\n")
    assert f",S={len(content)},W={len(content) + lines}" in names[0]
    assert [m["Subject"] for m in mailbox.Maildir(root, create=False)] == ["hi"] * 3


def test_maildir_reader_reads_and_deletes(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    for n in range(3):
        deliver_maildir(root, [f"Subject: {n}\n\nbody {n}\n".encode()])
    # a message written by another MDA (no size tags), already seen: in cur/
    (root / "cur" / "123.other.host:2,S").write_bytes(b"Subject: x\r\n\r\nz\r\n")
    with open_maildrop(root) as drop:
        assert len(drop.messages) == 4
        sizes = {drop.read(r.number): (r.size, r.wire_size) for r in drop.messages}
        assert sizes[b"Subject: 0\n\nbody 0\n"] == (19, 22)
        assert sizes[b"Subject: x\r\n\r\nz\r\n"] == (17, 17)
        doomed = [r.number for r in drop.messages if drop.read(r.number).startswith(b"Subject: 1")]
        drop.commit([*doomed, 99])
    with open_maildrop(root) as drop:
        assert sorted(drop.read(r.number)[:10] for r in drop.messages) == [
            b"Subject: 0",
            b"Subject: 2",
            b"Subject: x",
        ]


# ---------------------------------------------------------------- mbox reader


def fill_mbox(box: Path, count: int) -> None:
    for n in range(count):
        append_mbox(box, f"s{n}@example.com", [f"Subject: {n}\n\nFrom body {n}\n".encode()])


def subjects(box: Path) -> list[str]:
    return [m["Subject"] for m in mailbox.mbox(box)]


def test_mbox_reader_indexes_sizes_and_content(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    fill_mbox(box, 3)
    with open_maildrop(box) as drop:
        assert [r.number for r in drop.messages] == [1, 2, 3]
        assert drop.read(2) == b"Subject: 1\n\n>From body 1\n"
        assert drop.messages[1].size == len(b"Subject: 1\n\n>From body 1\n")
        assert drop.messages[1].wire_size == drop.messages[1].size + 3
        assert len({r.uid for r in drop.messages}) == 3
    with open_maildrop(box) as again:
        assert [r.uid for r in again.messages] == [r.uid for r in drop.messages]


def test_missing_mbox_is_an_empty_maildrop(tmp_path: Path) -> None:
    with open_maildrop(tmp_path / "nobody-yet") as drop:
        assert drop.messages == ()
        drop.commit([1])
    assert not (tmp_path / "nobody-yet").exists()


def test_commit_removes_deleted_and_keeps_mail_delivered_meanwhile(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    fill_mbox(box, 3)
    box.chmod(0o640)
    with open_maildrop(box) as drop:
        append_mbox(box, "late@example.com", [b"Subject: late\n\narrived during POP3\n"])
        drop.commit([1, 3])
    assert subjects(box) == ["1", "late"]
    assert box.stat().st_mode & 0o777 == 0o640
    assert not any(p.name.startswith(".alice") for p in tmp_path.iterdir())
    assert not (tmp_path / "alice.lock").exists()


def test_commit_deleting_everything_leaves_an_empty_mailbox(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    fill_mbox(box, 2)
    with open_maildrop(box) as drop:
        drop.commit([1, 2])
    assert box.read_bytes() == b""


def test_second_session_cannot_delete_from_a_rewritten_mailbox(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    fill_mbox(box, 3)
    first = open_maildrop(box)
    second = open_maildrop(box)
    first.commit([1])
    first.close()
    with pytest.raises(MaildropChanged):
        second.commit([2])
    second.close()
    assert subjects(box) == ["1", "2"]


def test_held_lock_defers_delivery_until_the_session_ends(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    fill_mbox(box, 1)
    with open_maildrop(box, hold_lock=True) as drop:
        with pytest.raises(MailboxLocked):
            append_mbox(box, "a@b", [b"x\n"], lock_timeout=0.05)
        drop.commit([1])
    append_mbox(box, "a@b", [b"Subject: after\n\n"], lock_timeout=0.05)
    assert subjects(box) == ["after"]


def test_deliveries_racing_pop3_commits_lose_nothing(tmp_path: Path) -> None:
    box = tmp_path / "alice"
    fill_mbox(box, 1)
    delivered = 40

    def deliver() -> None:
        for n in range(delivered):
            append_mbox(box, "r@example.com", [f"Subject: race {n}\n\nx\n".encode()])

    worker = threading.Thread(target=deliver)
    worker.start()
    removed: list[str] = []
    while worker.is_alive() or not removed:
        with open_maildrop(box) as drop:
            doomed = [r.number for r in drop.messages if r.number % 2 == 1]
            removed += [drop.read(n).split(b"\n", 1)[0].decode() for n in doomed]
            try:
                drop.commit(doomed)
            except MaildropChanged:
                removed = removed[: len(removed) - len(doomed)]
    worker.join()
    remaining = [f"Subject: {s}" for s in subjects(box)]
    assert sorted(removed + remaining) == sorted(
        ["Subject: 0"] + [f"Subject: race {n}" for n in range(delivered)]
    )


# ---------------------------------------------------------------- mailboxes of other MDAs


def mail_local_entry(
    from_line: bytes, headers: bytes, body: bytes, length: int | None = None
) -> bytes:
    size = len(body) if length is None else length
    return from_line + headers + b"Content-Length: %d\n\n" % size + body + b"\n"


MAIL_LOCAL_STYLE = (
    mail_local_entry(
        b"From sender@example.com Thu Nov 26 13:27:14 2026\n",
        b"From: a@example.com\nSubject: one\n",
        b"From the start\n\nFrom after a blank line\n\n",
    )
    + mail_local_entry(b"From <> Thu Nov 26 13:27:15 2026\n", b"Subject: two\n", b"body\n")
    + mail_local_entry(
        b"From x Thu Nov 26 13:27:16 2026\n", b"Subject: three\n", b"length is wrong\n", 999
    )
    + b"From y Thu Nov 26 2026\nSubject: four\n\nlast\n\n"
)


def test_content_length_of_debian_mail_local_is_honoured(tmp_path: Path) -> None:
    """Debian's mail.local writes Content-Length and leaves body `From ` lines unquoted;
    a length that lands on the next From line is trusted, a wrong one is ignored."""
    box = tmp_path / "alice"
    box.write_bytes(MAIL_LOCAL_STYLE)
    with open_maildrop(box) as drop:
        bodies = [drop.read(r.number) for r in drop.messages]
        assert [b.split(b"\n")[1 if i == 0 else 0] for i, b in enumerate(bodies)] == [
            b"Subject: one",
            b"Subject: two",
            b"Subject: three",
            b"Subject: four",
        ]
        assert bodies[0].endswith(b"\n\nFrom the start\n\nFrom after a blank line\n\n")
        drop.commit([2])
    with open_maildrop(box) as drop:
        assert len(drop.messages) == 3
        assert drop.read(1).endswith(b"From after a blank line\n\n")


MAIL_LOCAL = (
    Path(tempfile.gettempdir()) / "pysendmail-sendmail-bin/root/usr/libexec/sendmail/mail.local"
)
LIBLOCKFILE = Path(tempfile.gettempdir()) / "pysendmail-bench-libs/root/usr/lib/x86_64-linux-gnu"


@pytest.mark.skipif(
    not (IS_ROOT and MAIL_LOCAL.exists() and shutil.which("unshare")),
    reason="needs root, unshare and sendmail's mail.local (unpacked by the queue tests)",
)
def test_mailbox_shared_with_sendmails_mail_local(open_dir: Path) -> None:
    """mail.local (in a private mount namespace, /var/mail bind-mounted on a temp dir)
    and pysendmail append to the same mailbox; the POP3 reader sees every message."""
    message = b"Subject: %d\n\nFrom a line\n\nFrom after blank\nend\n"
    env = dict(os.environ)
    if LIBLOCKFILE.exists():
        env["LD_LIBRARY_PATH"] = str(LIBLOCKFILE)
    (open_dir / "in").write_bytes(message % 1)
    script = (
        f"mount --bind {open_dir} /var/mail && {MAIL_LOCAL} -f s@example.com nobody < {open_dir}/in"
    )
    ran = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, capture_output=True)
    if ran.returncode != 0:
        pytest.skip(f"mail.local cannot run here: {ran.stderr.decode()[-200:]}")
    box = open_dir / "nobody"
    append_mbox(box, "s@example.com", [message % 2], owner=NOBODY)
    (open_dir / "in").write_bytes(message % 3)
    subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, check=True)
    st = box.stat()
    assert (st.st_uid, st.st_gid) == (NOBODY.uid, NOBODY.gid)
    with open_maildrop(box) as drop:
        texts = [drop.read(r.number) for r in drop.messages]
    assert len(texts) == 3
    for number, text in enumerate(texts, start=1):
        assert f"Subject: {number}".encode() in text
        assert text.rstrip(b"\0\n").endswith(b"\nend")


# ---------------------------------------------------------------- writer and reader agree

BODY_LINES = st.sampled_from(
    ["From me", "", ">From", "From", "x" * 80, ".", "\r", "From  two spaces", "é ü"]
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(BODY_LINES, max_size=6), min_size=1, max_size=6), st.integers(1, 9))
def test_what_append_mbox_writes_the_reader_gives_back(
    bodies: list[list[str]], chunk_size: int
) -> None:
    """Every message comes back as written, except that `From ` at a line start reads
    `>From ` (mbox's escaping) and lines end in LF; sizes count CRLF for POP3."""
    with tempfile.TemporaryDirectory() as folder:
        box = Path(folder) / "alice"
        expected = []
        for number, lines in enumerate(bodies):
            message = f"Subject: {number}\n\n" + "".join(line + "\n" for line in lines)
            raw = message.encode()
            append_mbox(box, f"s{number}@example.com", chunks(raw, chunk_size))
            stored = raw.replace(b"\r\n", b"\n")
            expected.append(
                b"\n".join(
                    b">" + line if line.startswith(b"From ") else line
                    for line in stored.split(b"\n")
                )
            )
        with open_maildrop(box) as drop:
            assert [drop.read(r.number) for r in drop.messages] == expected
            for ref, data in zip(drop.messages, expected, strict=True):
                assert ref.wire_size == len(data) + data.count(b"\n") - data.count(b"\r\n")
