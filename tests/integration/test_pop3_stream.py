"""RETR and TOP of messages larger than the daemon's read block, over real sockets with
poplib: lines beginning with `.` fall exactly on block edges, and a mailbox that fails in
the middle of a transfer ends the connection without committing anything."""

from __future__ import annotations

import poplib
from collections.abc import Iterator

import pytest

from pysendmail import maildrop
from pysendmail.daemons.pop3_maildrops import local_maildrops
from pysendmail.daemons.pop3d import READ_BLOCK_SIZE
from pysendmail.protocol.pop3wire import crlf_message
from tests.integration.pop3_support import message, running_pop3

LINE = 64  # every stored line is this long with its LF, so block edges fall on line starts


def big_message(total: int) -> bytes:
    """A message of `total` octets whose every body line begins with a dot (or two)."""
    header = b"From: big@example.com\nTo: alice@example.com\nSubject: big\n"
    header += b"X-Pad: " + b"p" * (-(len(header) + 9) % LINE) + b"\n\n"
    assert len(header) % LINE == 0
    lines = [(b"." * (1 + n % 2)).ljust(LINE - 1, b"d") + b"\n" for n in range(total // LINE)]
    return header + b"".join(lines)


@pytest.mark.parametrize("mailbox_format", ["mbox", "maildir"])
@pytest.mark.parametrize("block_size", [READ_BLOCK_SIZE, 4096])
def test_retr_and_top_of_a_message_larger_than_the_block(tmp_path, mailbox_format, block_size):
    data = big_message(4 * READ_BLOCK_SIZE + 3 * LINE)
    with running_pop3(tmp_path, mailbox_format, block_size=block_size) as pop3:
        pop3.deliver("alice", message(1))
        pop3.deliver("alice", data)
        pop3.deliver("alice", message(3))
        client = pop3.login()
        wire = crlf_message(data)
        assert client.list(2) == f"+OK 2 {len(wire)}".encode()
        response, lines, octets = client.retr(2)
        assert response == f"+OK {len(wire)} octets".encode()
        # poplib takes one dot off every line that begins with two: the `..` lines come
        # back whole only if the daemon doubled their dot, at block edges too
        assert lines == wire.split(b"\r\n")[:-1]
        assert octets == len(wire)
        _, top, _ = client.top(2, 3)
        assert top == wire.split(b"\r\n")[: 4 + 3 + 1]  # 4 header lines, blank, 3 lines
        assert client.retr(3)[1][-2] == b".a line starting with a dot"
        client.quit()


def test_mailbox_failing_mid_transfer_cuts_the_connection_and_commits_nothing(tmp_path):
    opened = local_maildrops(tmp_path / "mail", "mbox")

    class FailingHalfway:
        """The real maildrop, whose reads of message 2 fail after the first block."""

        def __init__(self, user: str) -> None:
            self.real = opened(user)
            self.messages = self.real.messages
            self.commit = self.real.commit
            self.close = self.real.close

        def iter_bytes(self, number: int, chunk_size: int = 65536) -> Iterator[bytes]:
            blocks = self.real.iter_bytes(number, chunk_size)
            yield next(blocks)
            if number == 2:
                raise maildrop.MaildropTempError("read error in the middle")
            yield from blocks

    with running_pop3(tmp_path, open_maildrop=FailingHalfway, block_size=4096) as pop3:
        for number, data in enumerate((message(1), big_message(50_000), message(3)), 1):
            pop3.deliver("alice", data if number == 2 else message(number))
        before = pop3.snapshot()
        client = pop3.login()
        client.dele(1)
        with pytest.raises((poplib.error_proto, EOFError, OSError)):
            client.retr(2)
        client.close()
        assert pop3.daemon.wait_idle(10)
        assert pop3.snapshot() == before
        again = pop3.login()
        assert again.stat()[0] == 3
        again.quit()
