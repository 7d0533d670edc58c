"""An LMTP mailer (F=z, over TCP to tests/integration/lmtp_server.py on 127.0.0.1) is
given the rewritten sender and headers too: the office cf without its LOCAL_RULE_3, a
mailer `lmtp` with the SMTP mailers' S= and R=, the mailertable sending lmtp.test to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

import pytest

from pysendmail.config.translate import translate
from pysendmail.headers import Header
from pysendmail.record import replace
from tests.integration import lmtp_server
from tests.integration.test_delivery_rewrite_smtp import office_copy, queue_and_run


@pytest.fixture
def lmtp(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    spool = tmp_path / "lmtp-spool"
    spool.mkdir()
    server = lmtp_server.TcpLmtpServer(("127.0.0.1", 0), lmtp_server.make_handler(spool))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], spool
    finally:
        server.shutdown()
        server.server_close()


def test_an_lmtp_mailer_gets_the_rewritten_sender_and_headers(oracle_dir, tmp_path, lmtp):
    port, spool = lmtp
    config = office_copy(oracle_dir, tmp_path, 0, local_rules=False)
    office = tmp_path / "configs" / "office"
    cf = Path(config.cf_path)
    mailer = "\nMlmtp,\tP=[IPC], F=DFMnz9, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP,\n"
    cf.write_text(cf.read_text() + mailer + f"\tA=TCP $h {port}\n")
    with open(office / "mailertable", "a") as table:
        table.write("lmtp.test\tlmtp:[127.0.0.1]\n")
    fresh = translate(cf, hostname="mail.example.com")
    config = replace(fresh, options={**fresh.options, "QueueDirectory": str(tmp_path / "mqueue")})
    assert config.routing_rules == "stock"
    headers = [Header("From", "Bob <bob>"), Header("To", "ann@lmtp.test, carol")]
    _runner, _qid, outcome = queue_and_run(config, "bob", ["ann@lmtp.test"], headers)
    assert outcome.sent == ["ann@lmtp.test"]
    assert "MAIL FROM:<robert@example.com>" in (spool / "commands").read_text()
    [copy] = sorted(spool.glob("ann.*"))
    delivered = message_from_bytes(copy.read_bytes(), policy=compat32)
    assert delivered["From"] == "Bob <robert@example.com>"
    assert delivered["To"] == "ann@lmtp.test, carol@mail.example.com"
