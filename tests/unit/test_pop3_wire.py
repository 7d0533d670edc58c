"""The streaming wire form (protocol/pop3wire.py): cut a stored message into blocks at
every possible place and the bytes sent are those of the whole-message rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.protocol.pop3 import Pop3Session, SessionSettings, Stream
from pysendmail.protocol.pop3wire import (
    crlf_chunks,
    crlf_message,
    dot_stuff,
    message_chunks,
    stuffed_chunks,
    top_chunks,
    top_of,
)

DOTTY = (
    b"Subject: dots\r\nX: y\n\n.one\n..two\r\n.\r\n\r.\nend\n.\n"
    b"\r\r\nbare\rcr\n.last line without end"
)


def blocks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def every_size(data: bytes) -> Iterator[list[bytes]]:
    for size in range(1, len(data) + 1):
        yield [data[i : i + size] for i in range(0, len(data), size)]


def test_every_block_size_gives_the_whole_message_form():
    whole = crlf_message(DOTTY)
    for blocks in every_size(DOTTY):
        crlf = b"".join(crlf_chunks(blocks))
        assert crlf == whole
        assert b"".join(stuffed_chunks(crlf_chunks(blocks))) == dot_stuff(whole)
        for lines in (0, 1, 3, 50):
            assert b"".join(top_chunks(crlf_chunks(blocks), lines)) == top_of(whole, lines)


def test_a_dot_right_after_a_block_edge_is_doubled():
    # the edge falls between the CRLF and the dot, and between CR and LF
    for blocks in ([b"a\r\n", b".b\r\n"], [b"a\r", b"\n.b\r\n"], [b".", b"b\r\n"]):
        assert b"".join(stuffed_chunks(blocks)) == dot_stuff(b"".join(blocks))


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=120).map(lambda b: b.replace(b"x", b".").replace(b"y", b"\n")),
    st.lists(st.integers(min_value=0, max_value=120), max_size=10),
    st.integers(min_value=0, max_value=6),
)
def test_any_cut_of_any_message_streams_like_the_whole(raw, cuts, lines):
    blocks = blocks_of(raw, cuts)
    whole = crlf_message(raw)
    assert b"".join(crlf_chunks(blocks)) == whole
    streamed = b"".join(message_chunks(b"+OK\r\n", blocks, None))
    assert streamed == b"+OK\r\n" + dot_stuff(whole) + b".\r\n"
    topped = b"".join(message_chunks(b"+OK\r\n", blocks, lines))
    assert topped == b"+OK\r\n" + dot_stuff(top_of(whole, lines)) + b".\r\n"


def test_top_stops_reading_once_it_has_its_lines():
    pulled = []

    def stored() -> Iterator[bytes]:
        for number in range(1000):
            pulled.append(number)
            yield f"line {number}\n".encode() if number else b"Subject: x\n\n"

    assert b"".join(top_chunks(crlf_chunks(stored()), 2)).endswith(b"line 2\r\n")
    assert len(pulled) < 10


class BlockMaildrop:
    """One message, handed out in the blocks the session asks for; records their sizes."""

    def __init__(self, stored: bytes) -> None:
        self.stored = stored
        self.block_sizes: list[int] = []
        self.messages = [type("Info", (), {"uid": "u1", "wire_size": len(crlf_message(stored))})]

    def iter_bytes(self, number: int, chunk_size: int = 65536) -> Iterator[bytes]:
        for start in range(0, len(self.stored), chunk_size):
            block = self.stored[start : start + chunk_size]
            self.block_sizes.append(len(block))
            yield block

    def commit(self, deleted) -> None:
        raise AssertionError("nothing is deleted here")

    def close(self) -> None:
        pass


def test_retr_reads_in_blocks_of_the_configured_size_and_stuffs_across_their_edges():
    # lines beginning with a dot land at every offset of a 7-octet block
    stored = b"Subject: big\n\n" + b"".join(b"." * (n % 9) + b"x\n" for n in range(400))
    maildrop = BlockMaildrop(stored)
    session = Pop3Session(
        SessionSettings(allow_plaintext_auth=True, block_size=7),
        lambda user, password: True,
        lambda user: maildrop,
    )
    session.receive(b"USER a\r\nPASS b\r\n")
    (stream,) = session.receive(b"RETR 1\r\n")
    assert isinstance(stream, Stream)
    sent = b"".join(stream.blocks)
    whole = crlf_message(stored)
    assert sent == f"+OK {len(whole)} octets\r\n".encode() + dot_stuff(whole) + b".\r\n"
    assert max(maildrop.block_sizes) == 7
    assert len(maildrop.block_sizes) == -(-len(stored) // 7)
