"""The cf's hand-written rules run where sendmail runs them, over real SMTP sessions.

The cfs are the fixture cfs (stock m4 output plus their LOCAL_ parts) with more
LOCAL_RULESETS text appended: `Local_check_relay` (at connect, over
`${client_name} $| ${client_addr}`), `Local_check_mail` and `Local_check_rcpt`. The
daemon sees that these rulesets are not stock and runs the cf's check_relay, check_mail
and check_rcpt through the rules engine; `$#error`, `$#discard` and `$#OK` become the
replies sendmail gives. A stock cf (debian.cf as generated) runs none.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pysendmail.config.model import DaemonSpec
from pysendmail.config.translate import translate
from pysendmail.daemons.server import ResolverHosts, rule_checks, service_from_config
from pysendmail.daemons.smtpd import SmtpServer
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.queue.store import QueueStore
from tests.unit.smtp_office import HOSTNAME

LOCAL_RULESETS = """
LOCAL_RULESETS
SLocal_check_relay
R$* $| 127.0.0.3\t\t$#error $@ 5.7.1 $: "550 Local rule: no mail from this host"
R$* $| 127.0.0.4\t\t$#discard $: discard

SLocal_check_mail
R$* < $* @ spam . example . > $*\t$#error $@ 5.7.1 $: "550 Local rule: no spam senders"
R$* < $* @ later . example . > $*\t$#error $@ 4.7.1 $: "451 Local rule: try again later"
R$* < $* @ spam . example > $*\t$#error $@ 5.7.1 $: "550 Local rule: no spam senders"
R$* < $* @ later . example > $*\t$#error $@ 4.7.1 $: "451 Local rule: try again later"
R< $* >\t\t\t$: $>canonify $1

SLocal_check_rcpt
R$* blackhole $*\t\t$#discard $: discard
R$*\t\t\t$: $&{rcpt_mailer} $| $1
R esmtp $| $* < $* @ forbidden . example > $*\t$#error $@ 5.7.1 $: "550 Local rule: no esmtp"
R$* $| $*\t\t$: $2
R$* < fax @ $* > $*\t$#error $@ 5.1.1 $: "550 Local rule: no faxes by mail"
R$* fax $*\t\t$: $>canonify $2
"""


def make_cf(base: Path, dest: Path, extra: str = LOCAL_RULESETS) -> Path:
    dest.write_text(base.read_text() + extra)
    return dest


def hosts_for(config) -> ResolverHosts:
    return ResolverHosts(Resolver(ResolverSettings.from_config(config)))


@contextmanager
def daemon(config, queue_dir: Path) -> Iterator[int]:
    queue_dir.mkdir(exist_ok=True)
    service = service_from_config(config, store=QueueStore(queue_dir), hosts=hosts_for(config))
    server = SmtpServer(service, (DaemonSpec(name="MTA", port=0, addr="127.0.0.1"),)).start()
    try:
        yield server.listeners[0].port
    finally:
        server.stop(timeout=5.0)


def office_with_rules(oracle_dir: Path, tmp_path: Path):
    cf = make_cf(oracle_dir / "configs/office/office.cf", tmp_path / "office_local.cf")
    return translate(cf, hostname=HOSTNAME)


def test_a_stock_cf_runs_no_rules(oracle_dir):
    debian = translate(str(oracle_dir / "configs/debian/debian.cf"), hostname=HOSTNAME)
    assert rule_checks(debian) is None


def test_office_cf_runs_its_check_rulesets(oracle_dir, tmp_path):
    checks = rule_checks(office_with_rules(oracle_dir, tmp_path))
    assert checks is not None
    assert {"check_relay", "check_mail", "check_rcpt"} <= checks.points


def test_local_check_rcpt_refuses_discards_and_passes(oracle_dir, tmp_path):
    config = office_with_rules(oracle_dir, tmp_path)
    with (
        daemon(config, tmp_path / "mqueue") as port,
        smtplib.SMTP("127.0.0.1", port, timeout=10) as client,
    ):
        client.ehlo("client.example.net")
        assert client.mail("<alice@example.com>")[0] == 250
        assert client.rcpt("<spamtrap@mail.example.com>") == (
            550,
            b"5.7.1 <spamtrap@mail.example.com>... Spamtrap address rejected by local rule",
        )
        assert client.rcpt("<fax@mail.example.com>") == (
            550,
            b"5.1.1 <fax@mail.example.com>... Local rule: no faxes by mail",
        )
        # ${rcpt_mailer} is what rulesets 3 and 0 made of the recipient
        assert client.rcpt("<x@forbidden.example>") == (
            550,
            b"5.7.1 <x@forbidden.example>... Local rule: no esmtp",
        )
        # the stock rules after Local_check_rcpt: relaying from localhost is allowed
        assert client.rcpt("<someone@remote.example.net>")[0] == 250
        # and the user must exist (routing, after check_rcpt)
        assert client.rcpt("<nosuchuser@mail.example.com>")[0] == 550
        assert client.rcpt("<alice@mail.example.com>")[0] == 250


def test_local_check_mail_refuses_and_defers(oracle_dir, tmp_path):
    config = office_with_rules(oracle_dir, tmp_path)
    with (
        daemon(config, tmp_path / "mqueue") as port,
        smtplib.SMTP("127.0.0.1", port, timeout=10) as client,
    ):
        client.ehlo("client.example.net")
        assert client.mail("<eve@spam.example>") == (
            550,
            b"5.7.1 <eve@spam.example>... Local rule: no spam senders",
        )
        assert client.mail("<eve@later.example>") == (
            451,
            b"4.7.1 <eve@later.example>... Local rule: try again later",
        )
        assert client.mail("<bob@example.com>")[0] == 250


def test_discarded_recipient_is_accepted_and_nothing_is_queued(oracle_dir, tmp_path):
    config = office_with_rules(oracle_dir, tmp_path)
    queue_dir = tmp_path / "mqueue"
    with daemon(config, queue_dir) as port, smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example.net")
        assert client.mail("<alice@example.com>")[0] == 250
        assert client.rcpt("<blackhole@mail.example.com>")[0] == 250
        assert client.data(b"Subject: gone\r\n\r\nbody\r\n")[0] == 250
    assert not list(queue_dir.glob("qf*"))


def test_local_check_relay_refuses_a_client_at_connect(oracle_dir, tmp_path):
    config = office_with_rules(oracle_dir, tmp_path)
    with (
        daemon(config, tmp_path / "mqueue") as port,
        smtplib.SMTP(timeout=10, source_address=("127.0.0.3", 0)) as client,
    ):
        assert client.connect("127.0.0.1", port)[0] == 220
        client.ehlo("client.example.net")
        assert client.mail("<alice@example.com>") == (
            550,
            b"5.7.1 Local rule: no mail from this host",
        )
        with smtplib.SMTP(timeout=10, source_address=("127.0.0.2", 0)) as client:
            assert client.connect("127.0.0.1", port)[0] == 220
            client.ehlo("client.example.net")
            assert client.mail("<alice@example.com>")[0] == 250
            # a client that is not local may not relay: the stock rules still decide
            assert client.rcpt("<someone@remote.example.net>") == (
                550,
                b"5.7.1 <someone@remote.example.net>... Relaying denied",
            )


def test_local_check_relay_discard_accepts_and_drops(oracle_dir, tmp_path):
    config = office_with_rules(oracle_dir, tmp_path)
    queue_dir = tmp_path / "mqueue"
    with (
        daemon(config, queue_dir) as port,
        smtplib.SMTP(timeout=10, source_address=("127.0.0.4", 0)) as client,
    ):
        client.connect("127.0.0.1", port)
        client.ehlo("client.example.net")
        assert client.mail("<alice@example.com>")[0] == 250
        assert client.rcpt("<alice@mail.example.com>")[0] == 250
        assert client.data(b"Subject: gone\r\n\r\nbody\r\n")[0] == 250
    assert not list(queue_dir.glob("qf*"))


def test_debian_cf_with_local_rulesets_runs_them(oracle_dir, tmp_path):
    # Debian's cf has FEATURE(delay_checks): no check_mail, the sender is checked at RCPT
    cf = make_cf(oracle_dir / "configs/debian/debian.cf", tmp_path / "debian_local.cf")
    config = translate(cf, hostname=HOSTNAME)
    with (
        daemon(config, tmp_path / "mqueue") as port,
        smtplib.SMTP("127.0.0.1", port, timeout=10) as client,
    ):
        client.ehlo("client.example.net")
        assert client.mail("<eve@spam.example>")[0] == 250
        assert client.rcpt("<root@mail.example.com>") == (
            550,
            b"5.7.1 <root@mail.example.com>... Local rule: no spam senders",
        )
        client.rset()
        assert client.mail("<root@mail.example.com>")[0] == 250
        assert client.rcpt("<fax@mail.example.com>") == (
            550,
            b"5.1.1 <fax@mail.example.com>... Local rule: no faxes by mail",
        )
        assert client.rcpt("<root@mail.example.com>")[0] == 250


HEADER_CHECKS = """
HX-Spam-Flag: $>check_spamflag
HSubject: $>check_subject
Scheck_spamflag
R$* YES $*\t\t$#error $@ 5.7.1 $: "550 Spam flagged by a header check"
Scheck_subject
R$* discard-me $*\t$#discard $: discard
R$* later $*\t\t$#error $@ 4.7.1 $: "451 Subject refused for now"
"""


def test_header_check_rulesets_judge_the_received_headers(oracle_dir, tmp_path):
    """`HName: $>rs` lines on an otherwise stock cf: the rulesets run over each received
    header at the end of DATA; `$#error` refuses the message, `$#discard` drops it."""
    cf = make_cf(oracle_dir / "configs/debian/debian.cf", tmp_path / "headers.cf", HEADER_CHECKS)
    config = translate(cf, hostname=HOSTNAME)
    checks = rule_checks(config)
    assert checks is not None and not checks.points  # the stock policy keeps the rest
    queue_dir = tmp_path / "mqueue"
    cases = [
        (b"X-Spam-Flag: YES\r\nSubject: hi\r\n", 550, b"5.7.1 Spam flagged by a header check"),
        (b"Subject: please discard-me\r\n", 250, None),
        (b"Subject: (a comment) later\r\n", 451, b"4.7.1 Subject refused for now"),
        (b"X-Spam-Flag: NO\r\nSubject: fine\r\n", 250, None),
    ]
    with daemon(config, queue_dir) as port:
        for head, code, text in cases:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("client.example.net")
                assert client.mail("<root@mail.example.com>")[0] == 250
                assert client.rcpt("<root@mail.example.com>")[0] == 250
                reply = client.data(head + b"\r\nbody\r\n")
                assert reply[0] == code, (head, reply)
                if text is not None:
                    assert reply[1] == text
    [qf] = queue_dir.glob("qf*")  # only the message with acceptable headers
    assert b"Subject: fine" in qf.read_bytes()
