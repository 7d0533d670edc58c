"""The cf's hand-written rules run where sendmail runs them: office.cf's LOCAL_RULESETS
`Local_check_rcpt` refuses `spamtrap` addresses at RCPT, before the stock checks."""

from __future__ import annotations

import smtplib

from pysendmail.config.model import DaemonSpec
from pysendmail.config.translate import translate
from pysendmail.daemons.server import local_rcpt_check, service_from_config
from pysendmail.daemons.smtpd import SmtpServer
from pysendmail.queue.store import QueueStore
from tests.unit.smtp_office import HOSTNAME, office_config, office_hosts

# As sendmail words a check_rcpt $#error (cf. `<addr>... Relaying denied`).
SPAMTRAP_REPLY = (
    550,
    b"5.7.1 <spamtrap@mail.example.com>... Spamtrap address rejected by local rule",
)


def test_local_check_rcpt_rules_refuse_and_pass(oracle_dir):
    check = local_rcpt_check(office_config(oracle_dir))
    assert check is not None
    refused = check("<spamtrap@mail.example.com>")
    assert refused is not None
    assert refused.smtp_reply() == "550 5.7.1 Spamtrap address rejected by local rule"
    assert check("<alice@mail.example.com>") is None


def test_a_cf_without_local_rules_runs_none(oracle_dir):
    debian = translate(str(oracle_dir / "configs/debian/debian.cf"), hostname=HOSTNAME)
    assert local_rcpt_check(debian) is None


def test_daemon_refuses_the_spamtrap_at_rcpt(oracle_dir, tmp_path):
    service = service_from_config(
        office_config(oracle_dir),
        store=QueueStore(tmp_path / "mqueue"),
        hosts=office_hosts(oracle_dir),
    )
    (tmp_path / "mqueue").mkdir()
    server = SmtpServer(service, (DaemonSpec(name="MTA", port=0, addr="127.0.0.1"),)).start()
    try:
        with smtplib.SMTP("127.0.0.1", server.listeners[0].port, timeout=10) as client:
            client.ehlo("client.example.net")
            assert client.mail("<alice@example.com>")[0] == 250
            assert client.rcpt("<spamtrap@mail.example.com>") == SPAMTRAP_REPLY
            assert client.rcpt("<someone@remote.example.net>")[0] == 250  # from localhost
    finally:
        server.stop(timeout=5.0)
