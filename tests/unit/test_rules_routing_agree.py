"""Table routing and rule routing give the same mailer triple.

For every address of sendmail 8.17's recorded -bt cases (`bt/bt_<config>.jsonl`: the
/parse, /try and sender cases), on each stock config (debian, nullclient): routing's
tables (`Router.table_route`) and the cf's rulesets 3 and 0 through the rules engine
(`RuleRouter`) agree, triple or error, for every address the tables take apart
themselves; the others (`needs_rules`) the router hands to the rules. And on every
config, office's hand-written LOCAL_RULE_3 included, `Router.resolve` gives the triple
sendmail printed for /parse, or refuses with the message sendmail printed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysendmail.config.translate import translate
from pysendmail.errors import MailError
from pysendmail.routing import Router
from pysendmail.rules.routes import RuleRouter, needs_rules, rule_router_for
from tests.conftest import FIXTURES_SRC
from tests.unit.smtp_office import HOSTNAME

CONFIGS = {
    "office": "office/office.cf",
    "office_smarthost": "office/office_smarthost.cf",
    "nullclient": "nullclient/nullclient.cf",
    "debian": "debian/debian.cf",
}
STOCK = ("debian", "nullclient")
# office.cf's mailers: a route names one of them or is refused with a MailError
MAILERS = {"local", "prog", "*file*", "*include*", "smtp", "esmtp", "smtp8", "dsmtp", "relay"}
MAILERS |= {"procmail"}


def cases(config: str) -> list[dict]:
    lines = (FIXTURES_SRC / "bt" / f"bt_{config}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def addresses(config: str) -> list[str]:
    return sorted({c["address"] for c in cases(config) if c.get("address") is not None})


@cache
def routers(oracle_dir: Path, config: str) -> tuple[Router, RuleRouter]:
    translated = translate(oracle_dir / "configs" / CONFIGS[config], hostname=HOSTNAME)
    return Router(translated), rule_router_for(translated)


def outcome(route, address: str) -> tuple[str, ...]:
    try:
        found = route(address)
    except MailError as error:
        return ("error", str(error.reply_code), error.status, error.text)
    return (found.mailer, found.host, found.user)


@pytest.mark.parametrize("config", STOCK)
def test_stock_configs_route_by_tables_and_say_so(oracle_dir, config):
    _router, rules = routers(oracle_dir, config)
    assert rules.stock


@pytest.mark.parametrize("config", STOCK)
def test_table_and_rule_routing_agree_on_every_recorded_address(oracle_dir, config):
    router, rules = routers(oracle_dir, config)
    compared = 0
    for address in addresses(config):
        if needs_rules(address):
            assert outcome(router.resolve, address) == outcome(rules.resolve, address), address
            continue
        compared += 1
        by_tables = outcome(router.table_route, address)
        by_rules = outcome(rules.resolve, address)
        assert by_tables == by_rules, address
    assert compared > 100


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_router_gives_the_triple_sendmail_printed(oracle_dir, config):
    router, rules = routers(oracle_dir, config)
    assert rules.stock == (config in STOCK)  # office has a LOCAL_RULE_3
    for case in cases(config):
        if case["kind"] != "parse" or not case["address"]:
            continue
        address = case["address"]
        resolved = (case.get("summary") or {}).get("resolved")
        got = outcome(router.resolve, address)
        if got[0] == "error":
            # refused: sendmail printed that complaint, or (<>) had no user to give
            assert got[3] in case["output"] or (resolved and resolved["user"] == ""), address
            continue
        assert resolved is not None, address
        expected = (resolved["mailer"], resolved["host"] or "", resolved["user"])
        assert got == expected, address


address_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\n"),
    max_size=300,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(address=address_text)
def test_arbitrary_address_text_routes_or_is_refused(oracle_dir, address: str) -> None:
    # office routes by its rules (LOCAL_RULE_3): a triple or a MailError, never a crash
    router, rules = routers(oracle_dir, "office")
    for route in (router.resolve, rules.resolve):
        got = outcome(route, address)
        assert got[0] == "error" or got[0] in MAILERS, got
