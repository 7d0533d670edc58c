"""The mbox index saved between POP3 sessions (pysendmail/mbox_index.py), on real files:
whatever happened to the mbox since, an open gives exactly what a full scan gives, and it
scans only what it cannot trust (nothing when the mbox is unchanged, the appended part
when it grew)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail import maildrop, mbox_index
from pysendmail.maildrop import MboxMaildrop
from pysendmail.mbox_index import IndexedMbox, index_path

BODIES = st.lists(
    st.lists(st.sampled_from(["From a", "", ".dot", "text", "cr\r", "x" * 50]), max_size=6),
    min_size=1,
    max_size=6,
)


def deliver(box: Path, lines: list[str], sender: str = "s@example.com") -> None:
    data = ("Subject: t\n\n" + "\n".join(lines) + "\n").encode()
    maildrop.append_mbox(box, sender, [data], received_at=0)


def seen(drop: maildrop.Maildrop) -> list[tuple]:
    """Everything a POP3 session learns of the maildrop."""
    return [
        (ref.number, ref.size, ref.wire_size, ref.uid, drop.read(ref.number))
        for ref in drop.messages
    ]


def full_scan(box: Path) -> list[tuple]:
    with MboxMaildrop(box) as drop:
        return seen(drop)


def indexed(box: Path) -> list[tuple]:
    with IndexedMbox(box) as drop:
        return seen(drop)


@pytest.fixture
def scans(monkeypatch) -> list[int]:
    """The offsets the index scans from, one per scan."""
    starts: list[int] = []
    real = mbox_index._index_mbox

    def recording(mm, size, path, start=0):
        starts.append(start)
        return real(mm, size, path, start)

    monkeypatch.setattr(mbox_index, "_index_mbox", recording)
    return starts


def test_unchanged_mbox_is_not_scanned_again(tmp_path, scans):
    box = tmp_path / "alice"
    for number in range(3):
        deliver(box, [f"message {number}"])
    first = indexed(box)
    assert scans == [0] and index_path(box).exists()
    assert indexed(box) == first == full_scan(box)
    assert scans == [0]


def test_after_an_append_only_the_last_known_message_and_the_new_ones_are_scanned(tmp_path, scans):
    box = tmp_path / "alice"
    for number in range(3):
        deliver(box, [f"message {number}"])
    with IndexedMbox(box) as drop:
        last_offset = int(drop.messages[-1].location)
    deliver(box, ["message 3"])
    deliver(box, ["message 0"])  # the same text as the first: its UIDL gets a `.2`
    assert indexed(box) == full_scan(box)
    assert scans == [0, last_offset]
    assert indexed(box)[-1][3].endswith(".2")


@settings(max_examples=40, deadline=None)
@given(BODIES, BODIES, st.sampled_from(["append", "rewrite", "replace", "damage"]))
def test_whatever_happened_since_the_index_gives_what_a_full_scan_gives(before, after, change):
    with tempfile.TemporaryDirectory() as folder:
        box = Path(folder) / "alice"
        for lines in before:
            deliver(box, lines)
        indexed(box)
        if change == "append":
            for lines in after:
                deliver(box, lines)
        elif change == "rewrite":  # a reader rewrites it in place, same inode, new layout
            data = box.read_bytes()
            with open(box, "r+b") as handle:
                handle.write(data.replace(b"Subject: t", b"Subject: rewritten", 1))
        elif change == "replace":  # a POP3 commit renames a new file over it
            data = box.read_bytes()
            box.unlink()
            box.write_bytes(data[: len(data) // 2 + 1] if len(before) == 1 else data)
            box.chmod(0o600)
        else:
            index_path(box).write_bytes(b"pysendmail-mbox-index 1 1 2 3 4\n0 5 oops\n")
        try:
            expected = full_scan(box)
        except maildrop.MaildropError:
            return  # cut into something that is no mbox: the index must not hide that
        assert indexed(box) == expected
        assert indexed(box) == expected  # and again, from the index just saved


def test_an_index_owned_by_someone_else_or_linked_is_not_trusted(tmp_path, scans):
    box = tmp_path / "alice"
    deliver(box, ["one"])
    indexed(box)
    if os.geteuid() == 0:
        os.chown(index_path(box), 65534, 65534)
        indexed(box)
        assert scans == [0, 0]
    target = tmp_path / "elsewhere"
    index_path(box).unlink()
    os.symlink(target, index_path(box))
    assert indexed(box) == full_scan(box)
    assert not target.exists()  # the link was neither followed nor written through


def test_an_index_that_cannot_be_written_costs_only_a_scan(tmp_path, scans):
    box = tmp_path / "alice"
    deliver(box, ["one"])
    index_path(box).mkdir()  # in the way of the rename
    assert indexed(box) == full_scan(box)
    assert indexed(box) == full_scan(box)
    assert scans == [0, 0]


def test_a_commit_saves_the_index_of_the_rewritten_mbox(tmp_path, scans):
    box = tmp_path / "alice"
    for number in range(4):
        deliver(box, [f"message {number}"])
    with IndexedMbox(box) as drop:
        drop.commit([1, 3])
    assert scans == [0]
    assert indexed(box) == full_scan(box)
    assert scans == [0]  # the rewritten mbox was not read again
    assert [row[4] for row in indexed(box)] == [
        b"Subject: t\n\nmessage 1\n",
        b"Subject: t\n\nmessage 3\n",
    ]


def test_mail_appended_during_the_session_is_read_after_the_commit(tmp_path, scans):
    box = tmp_path / "alice"
    for number in range(3):
        deliver(box, [f"message {number}"])
    with IndexedMbox(box) as drop:
        deliver(box, ["arrived during the session"])
        drop.commit([2])
    with MboxMaildrop(box) as plain:
        last_kept = int(plain.messages[1].location)
    assert indexed(box) == full_scan(box)
    assert scans == [0, last_kept]
    assert indexed(box)[-1][4].endswith(b"arrived during the session\n")
