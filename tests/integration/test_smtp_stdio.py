"""`serve_stdio` (sendmail -bs) with the translated office cf against the fixture's `bs_*`
command-line cases: the same replies (the greeting's date and version masked)."""

from __future__ import annotations

import io
import json
import os
import re
import threading

import pytest

from pysendmail.config.model import Overrides
from pysendmail.config.translate import translate
from pysendmail.daemons.smtpd import serve_stdio
from tests.conftest import FIXTURES_SRC

CASES = [
    case
    for case in map(json.loads, (FIXTURES_SRC / "cli" / "cli_cases.jsonl").read_text().splitlines())
    if "-bs" in case["argv"]
]


def masked(text: str) -> str:
    """The greeting's version and date masked; EHLO's AUTH line (Debian's SASL mechanisms,
    which we do not offer in clear) and our CHUNKING/SMTPUTF8 additions left out."""
    text = re.sub(r"(?m)^(220 \S+ ESMTP Sendmail )[^;]*; [^;]*;", r"\1<v>; <date>;", text)
    return re.sub(r"(?m)^250-(AUTH .*|CHUNKING|SMTPUTF8)\r\n", "", text)


def office(oracle_dir, tmp_path):
    queue = tmp_path / "mqueue"
    queue.mkdir(exist_ok=True)
    cf = oracle_dir / "configs" / "office" / "office.cf"
    return translate(
        cf, Overrides(options={"QueueDirectory": str(queue)}), hostname="mail.example.com"
    )


@pytest.mark.parametrize(
    "case", [c for c in CASES if "transcript" not in c], ids=lambda c: c["name"]
)
def test_bs_case_written_at_once(case, oracle_dir, tmp_path):
    read_fd, write_fd = os.pipe()
    os.write(write_fd, case["stdin"].encode())
    os.close(write_fd)
    output = io.BytesIO()
    with os.fdopen(read_fd, "rb", buffering=0) as reader:
        status = serve_stdio(office(oracle_dir, tmp_path), reader, output, user=case["run_as"])
    assert status == case["exit_code"]
    assert masked(output.getvalue().decode()) == masked(case["stdout"])
    assert os.listdir(tmp_path / "mqueue") == []


@pytest.mark.parametrize("case", [c for c in CASES if "transcript" in c], ids=lambda c: c["name"])
def test_bs_case_interactive(case, oracle_dir, tmp_path):
    read_fd, write_fd = os.pipe()
    out_read, out_write = os.pipe()
    config = office(oracle_dir, tmp_path)
    with os.fdopen(read_fd, "rb", buffering=0) as reader, os.fdopen(out_write, "wb") as writer:
        server = threading.Thread(
            target=serve_stdio, args=(config, reader, writer), kwargs={"user": case["run_as"]}
        )
        server.start()
        with os.fdopen(out_read, "rb", buffering=0) as replies:
            for step in case["transcript"]:
                if step["send"] is not None:
                    os.write(write_fd, step["send"].encode())
                expected = step["reply"].encode()
                got = b""
                while got.count(b"\r\n") < expected.count(b"\r\n") - expected.count(b"AUTH "):
                    chunk = replies.read(65536)
                    if not chunk:
                        break
                    got += chunk
                assert masked(got.decode()) == masked(step["reply"])
            os.close(write_fd)
            server.join(timeout=30)
            writer.close()  # the session is over: what follows is only what it wrote last
            assert replies.read() == case["stdout_after_transcript"].encode()
