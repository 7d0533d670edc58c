"""sendmail 8.17's recorded SMTP sessions (office config) replayed with every check
(check_relay, check_mail, check_rcpt) run by the rules engine over office.cf's own
rulesets instead of the table-driven stock policy: the replies must be the same."""

from __future__ import annotations

import pytest

from pysendmail.daemons.server import RouterRecipients, policy_tables
from pysendmail.policy import StockPolicy
from pysendmail.protocol.smtp import SmtpSession
from pysendmail.routing import Router
from pysendmail.rules.context import build_world
from pysendmail.rules.smtpchecks import CHECK_POINTS, RuleChecks
from tests.unit.smtp_office import (
    USERS,
    office_client,
    office_config,
    office_hosts,
    office_settings,
)
from tests.unit.test_smtp_replay import SESSIONS, mask, play


def rules_policy(oracle_dir) -> StockPolicy:
    config = office_config(oracle_dir)
    world = build_world(config.cf, hostname=config.hostname, config=config)
    checks = RuleChecks(
        world,
        frozenset(CHECK_POINTS),
        macros={"deliveryMode": "b", "server_name": config.hostname},
    )
    router = Router(config, users=USERS.get)
    return StockPolicy(
        policy_tables(config),
        RouterRecipients(router, config.hostname),
        office_hosts(oracle_dir),
        rule_checks=checks,
    )


@pytest.mark.parametrize("record", SESSIONS, ids=[s["session"] for s in SESSIONS])
def test_session_replays_like_sendmail_with_the_rules_deciding(record, oracle_dir):
    session = SmtpSession(
        rules_policy(oracle_dir),
        office_settings(oracle_dir),
        office_client(oracle_dir, record["client_addr"]),
    )
    greeted = False
    for step in record["transcript"]:
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
