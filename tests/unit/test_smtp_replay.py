"""Replay sendmail 8.17's recorded SMTP sessions (office config) against our session.

Each recorded command goes into a `SmtpSession` with the office policy; the replies must
be the same codes, enhanced codes and texts. Masked: the greeting after its code and host
(dates, version strings), queue IDs, and the EHLO `AUTH` line (Debian's sendmail lists
its Cyrus SASL mechanisms, DIGEST-MD5 and CRAM-MD5, which need clear-text passwords;
we offer PLAIN and LOGIN over TLS only, so no AUTH line is shown on this plain channel).
Our additions (CHUNKING, SMTPUTF8) are switched off here: sendmail has neither.
"""

from __future__ import annotations

import json
import re

import pytest

from pysendmail.protocol.replies import Reply
from pysendmail.protocol.smtp import MessageComplete, SmtpSession
from tests.conftest import FIXTURES_SRC
from tests.unit.smtp_office import office_client, office_policy, office_settings

SESSIONS = [
    json.loads(line)
    for line in (FIXTURES_SRC / "smtp" / "sessions.jsonl").read_text().splitlines()
    if line.strip()
]
QUEUE_ID = re.compile(r"\b[0-9A-Za-z]{8}\d{6}\b")


def mask(reply: str) -> str:
    lines = []
    for line in reply.split("\r\n"):
        if line.startswith("220 ") and " ESMTP " in line:
            line = line.split(" ESMTP ", 1)[0] + " ESMTP <masked>"
        if re.match(r"250[- ]AUTH ", line):
            continue
        lines.append(QUEUE_ID.sub("<QID>", line))
    # Dropping an AUTH line may leave the last line with a '-': keep the shape comparable.
    return "\r\n".join(lines)


def play(session: SmtpSession, data: bytes | None) -> str:
    outputs = session.start() if data is None else session.feed(data)
    text = []
    while outputs:
        item = outputs.pop(0)
        if isinstance(item, Reply):
            text.append(item.to_bytes().decode())
        elif isinstance(item, MessageComplete):
            assert not item.discard
            outputs.extend(session.message_queued("6AQB90pv005874"))
    return "".join(text)


@pytest.mark.parametrize("record", SESSIONS, ids=[s["session"] for s in SESSIONS])
def test_session_replays_like_sendmail(record, oracle_dir):
    policy = office_policy(oracle_dir)
    session = SmtpSession(
        policy, office_settings(oracle_dir), office_client(oracle_dir, record["client_addr"])
    )
    transcript = record["transcript"]
    greeted = False
    for step in transcript:
        send = step["send"]
        got = ""
        if send is None:
            got = play(session, None)
            greeted = True
        else:
            if not greeted:
                got = play(session, None)
                greeted = True
            got += play(session, send.encode("utf-8", "surrogateescape"))
        assert mask(got) == mask(step["reply"]), f"after {send!r:.80}"
