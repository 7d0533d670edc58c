"""The command-line socket's wire format (daemons.localsubmit), without sockets."""

from __future__ import annotations

import io

from pysendmail.daemons.localsubmit import chunk, parse_reply, read_request, request_head


def request(*pieces: bytes, end: bool = True) -> bytes:
    head = request_head(["sendmail", "-F", "Ada", "root"], "Ada L.")
    return head + b"".join(chunk(p) for p in pieces) + (chunk(b"") if end else b"")


def test_a_whole_request_gives_argv_name_and_the_message_bytes() -> None:
    got = bytearray()
    parsed = read_request(io.BytesIO(request(b"Subject: x\n\n", b"\x00\xff body\n")), got.extend)
    assert parsed == (["sendmail", "-F", "Ada", "root"], "Ada L.")
    assert bytes(got) == b"Subject: x\n\n\x00\xff body\n"


def test_a_request_cut_before_its_end_marker_is_refused() -> None:
    whole = request(b"Subject: x\n\nbody\n")
    for cut in range(len(whole) - 1):
        assert read_request(io.BytesIO(whole[:cut]), lambda data: None) is None
    assert read_request(io.BytesIO(request(b"body", end=False)), lambda data: None) is None


def test_garbage_and_bad_sizes_are_refused() -> None:
    assert read_request(io.BytesIO(b"EHLO me\r\n"), lambda data: None) is None
    head = request_head(["sendmail", "root"], None)
    for bad in (b"zz\nbody", b"-1\n", b"5"):
        assert read_request(io.BytesIO(head + bad), lambda data: None) is None


def test_replies_round_trip_and_junk_is_none() -> None:
    assert parse_reply(b'{"status": 67, "output": "x... User unknown\\n", "retry": false}\n') == (
        67,
        "x... User unknown\n",
        False,
    )
    assert parse_reply(b"250 ok\r\n") is None
    assert parse_reply(b"") is None
