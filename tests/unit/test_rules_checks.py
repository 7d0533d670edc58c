"""check_* rulesets run as at SMTP time: verdicts and replies from the office config."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysendmail.rules.checks import error_reply, run_check
from pysendmail.rules.context import RuleWorld, build_world
from tests.unit.rules_support import BT_CONFIGS, HOSTNAME, load_cf, world_from_text


@pytest.fixture(scope="module")
def office(oracle_dir: Path) -> RuleWorld:
    return build_world(load_cf(oracle_dir / BT_CONFIGS["office"]), hostname=HOSTNAME)


def test_access_db_reject_of_a_sender(office: RuleWorld) -> None:
    verdict = run_check(office, "check_mail", "<spammer@spam.example.net>")
    assert verdict.action == "reject"
    assert verdict.reply == "550 5.7.1 Access denied"
    assert verdict.result == '$# error $@ 5 . 7 . 1 $: "550 Access denied"'


def test_access_db_temporary_error_of_a_sender_domain(office: RuleWorld) -> None:
    verdict = run_check(office, "check_mail", "<user@tempfail.example.net>")
    assert verdict.action == "tempfail"
    assert verdict.reply == "451 4.7.1 Try again later"


def test_local_check_rcpt_rule_of_the_cf_is_run(office: RuleWorld) -> None:
    verdict = run_check(office, "check_rcpt", "<spamtrap@mail.example.com>")
    assert verdict.reply == "550 5.7.1 Spamtrap address rejected by local rule"


def test_relaying_depends_on_the_client_macros(office: RuleWorld) -> None:
    local = {"client_addr": "127.0.0.1", "client_name": "localhost"}
    remote = {"client_addr": "192.0.2.99", "client_name": "dialup.example.invalid"}
    assert run_check(office, "check_rcpt", "<user@remote.example.net>", macros=local).accepted
    denied = run_check(office, "check_rcpt", "<user@remote.example.net>", macros=remote)
    assert denied.action == "reject"
    assert denied.reply is not None and denied.reply.startswith("550 5.7.1 ")
    assert run_check(office, "check_rcpt", "<alice@mail.example.com>", macros=remote).accepted


def test_a_ruleset_the_cf_lacks_accepts(office: RuleWorld) -> None:
    verdict = run_check(office, "check_nothing", "<a@b>")
    assert verdict.accepted and not verdict.defined


def test_check_relay_takes_name_and_address_joined() -> None:
    world = world_from_text(
        'Scheck_relay\nR$* $| 10.$*\t\t$#error $@ 5.7.1 $: "550 No 10/8 here"\n'
    )
    assert run_check(world, "check_relay", "evil.example", "10.1.2.3").reply == (
        "550 5.7.1 No 10/8 here"
    )
    assert run_check(world, "check_relay", "good.example", "192.0.2.1").accepted


def test_discard_triple() -> None:
    world = world_from_text("Scheck_rcpt\nR$*\t\t$#discard $: discard\n")
    assert run_check(world, "check_rcpt", "<x@y>").action == "discard"


@pytest.mark.parametrize(
    ("host", "user", "reply"),
    [
        ("5.7.1", '"550 Access denied"', "550 5.7.1 Access denied"),
        ("nouser", "550 5.1.1 User has moved", "550 5.1.1 User has moved"),
        ("4.7.1", "451 Try again later", "451 4.7.1 Try again later"),
        (None, "bad address", "553 5.3.0 bad address"),
    ],
)
def test_error_reply_composition(host: str | None, user: str, reply: str) -> None:
    assert error_reply(host, user)[0] == reply
