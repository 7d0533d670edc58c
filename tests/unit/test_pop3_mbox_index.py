"""The mbox index POP3 serves from (pysendmail.maildrop), checked against mboxes built here
by the rules of the format: every message comes back whole, and its listed size is the
octets the POP3 session sends for it."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.maildrop import MboxMaildrop
from pysendmail.protocol.pop3 import unique_id
from pysendmail.protocol.pop3wire import crlf_size

LINES = st.sampled_from(["From a@b", "", ".dot", "text", "cr\r", ">From q", "x" * 70])
MESSAGES = st.lists(st.lists(LINES, min_size=1, max_size=8), min_size=1, max_size=12)


def as_stored(lines: list[str]) -> bytes:
    return re.sub(rb"(?m)^From ", b">From ", ("\n".join(lines) + "\n").encode())


@settings(max_examples=60, deadline=None)
@given(MESSAGES)
def test_every_message_comes_back_whole_with_its_wire_size(messages):
    stored = [as_stored(lines) for lines in messages]
    mbox = b"".join(
        f"From s{number}@example.com Thu Nov 26 12:00:00 2026\n".encode() + data + b"\n"
        for number, data in enumerate(stored)
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "alice"
        path.write_bytes(mbox)
        maildrop = MboxMaildrop(path)
        try:
            assert len(maildrop.messages) == len(stored)
            for number, data in enumerate(stored, start=1):
                assert maildrop.read(number) == data
                assert maildrop.messages[number - 1].wire_size == crlf_size(data)
            uids = [unique_id(ref.uid) for ref in maildrop.messages]
            assert len(set(uids)) == len(uids)
        finally:
            maildrop.close()
