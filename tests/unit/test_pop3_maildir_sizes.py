"""Maildir messages written by other programs (no `,W=` size in the name): the size POP3
lists is the octets it sends, counted across the 1 MB slices the count is made in."""

from __future__ import annotations

from pysendmail.maildrop import MaildirMaildrop
from pysendmail.protocol.pop3wire import crlf_size


def test_foreign_maildir_messages_get_their_wire_size(tmp_path):
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    # a CRLF astride the 1 MB slice edge, bare LFs, and an empty file
    big = b"Subject: big\r\n\r\n" + b"x" * (2**20 - 17) + b"\r\n" + b"y\n" * 1000
    small = b"Subject: small\n\nbare LF\r\nCRLF\n"
    (tmp_path / "new" / "1000.A.host").write_bytes(big)
    (tmp_path / "cur" / "1001.B.host:2,S").write_bytes(small)
    (tmp_path / "new" / "1002.C.host").write_bytes(b"")
    drop = MaildirMaildrop(tmp_path)
    sizes = {ref.uid: ref.wire_size for ref in drop.messages}
    assert sizes == {
        "1000.A.host": crlf_size(big),
        "1001.B.host": crlf_size(small),
        "1002.C.host": 0,
    }
