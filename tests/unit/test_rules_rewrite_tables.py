"""The table-driven rewriting of a stock cf gives what the cf's own rules give.

For the office fixture without its LOCAL_RULE_3 (so every ruleset is stock m4 output:
genericstable, MASQUERADE_AS, masquerade_envelope) and for the Debian fixture, every
address of the recorded -bt cases is rewritten for each mailer as an envelope sender, a
header sender and a header recipient, once by `MailerAddresses`' tables and once by the
rules engine running the cf's rulesets (remotename()); the two must agree.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pysendmail.config.translate import translate
from pysendmail.rewriting import MailerAddresses, tables_cover
from pysendmail.routing import Router
from tests.unit.tables_office import HOSTNAME, fixture_users
from tests.unit.test_tables_routing import TOKENIZER_CASES

# Envelope senders sendmail itself never takes (mail.c refuses them at MAIL FROM).
NOT_SENDERS = {'""', "@example.com", "undisclosed-recipients:;"}
KINDS = ((True, False), (True, True), (False, True))  # (sender?, header?)


def stock_office(oracle_dir):
    """office.cf without its hand-written LOCAL_RULE_3 line."""
    path = oracle_dir / "configs" / "office" / "office.cf"
    stock = path.with_name("office_stock.cf")
    stock.write_text(re.sub(r"(?m)^R\$\* < @ old .*\n", "", path.read_text()))
    return stock


def fixture_addresses(oracle_dir, name: str) -> list[str]:
    found = set()
    for line in (oracle_dir / f"bt/bt_{name}.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["kind"] == "try_sender":
            found.add(case["input"].rstrip("\n").split("\n")[-1].split(" ", 2)[2])
    found |= {"Alice Smith <alice@mail.example.com>", "bob@localhost (Bob)", '"C C" <carol>'}
    return sorted(found - TOKENIZER_CASES - NOT_SENDERS)


@pytest.mark.parametrize("name", ["office", "debian"])
def test_tables_and_rules_agree_for_every_mailer(oracle_dir, name):
    if name == "office":
        cf = stock_office(oracle_dir)
    else:
        cf = oracle_dir / "configs" / "debian" / "debian.cf"
    config = translate(cf, hostname=HOSTNAME)
    assert config.routing_rules == "stock"
    addresses = MailerAddresses(config, Router(config, users=fixture_users().get))
    engine = addresses.engine()
    names = ("esmtp", "smtp", "relay", "local", "prog", "procmail")
    mailers = [m for m in names if m in config.mailers]
    wrong = []
    checked = 0
    for mailer in mailers:
        for sender, header in KINDS:
            assert addresses.plan(mailer, sender=sender, header=header) is not None
            for address in fixture_addresses(oracle_dir, name):
                table = addresses.rewrite(address, mailer, sender=sender, header=header)
                rules = engine.rewrite(address, mailer, sender=sender, header=header)
                checked += 1
                if table != rules:
                    wrong.append((mailer, sender, header, address, table, rules))
    assert wrong == []
    assert checked > 1000


def test_a_stock_office_masquerades_and_uses_the_genericstable(oracle_dir):
    config = translate(stock_office(oracle_dir), hostname=HOSTNAME)
    addresses = MailerAddresses(config, Router(config, users=fixture_users().get))
    envelope = addresses.rewrite("alice", "esmtp", sender=True, header=False)
    assert envelope == "alice.smith@example.com"
    assert addresses.rewrite("Bob <bob@localhost>", "esmtp", sender=True, header=True) == (
        "Bob <robert@example.com>"
    )
    assert addresses.rewrite("mallory", "esmtp", sender=True, header=True) == "mallory@example.com"
    assert addresses.rewrite("carol", "esmtp", sender=False, header=True) == (
        "carol@mail.example.com"
    )
    # the local mailer leaves local names alone, and masquerades qualified ones
    assert addresses.rewrite("alice", "local", sender=True, header=True) == "alice"
    assert addresses.rewrite("bob@mail.example.com", "local", sender=True, header=False) == (
        "robert@example.com"
    )


def test_hand_written_rules_run_through_the_engine(oracle_dir):
    config = translate(oracle_dir / "configs" / "office" / "office.cf", hostname=HOSTNAME)
    addresses = MailerAddresses(config, Router(config, users=fixture_users().get))
    assert config.routing_rules == "cf"
    assert addresses.plan("esmtp", sender=True, header=False) is None
    # LOCAL_RULE_3 maps old.example.com to example.com, then masquerading applies
    assert addresses.rewrite("alice@old.example.com", "esmtp", sender=True, header=False) == (
        "alice@example.com"
    )


M4_CF = Path("/usr/share/sendmail/cf/m4/cf.m4")
VARIANTS = [
    "masquerade_entire_domain",
    "limited_masquerade",
    "generics_entire_domain",
    "local_no_masquerade",
    "always_add_domain",
]


def office_with_feature(oracle_dir, tmp_path, feature: str) -> Path:
    """The office .mc without its LOCAL_RULE_3, plus FEATURE(feature), through m4."""
    mc = (oracle_dir / "configs" / "office" / "office.mc").read_text()
    mc = re.sub(r"LOCAL_RULE_3\n.*?(?=LOCAL_RULESETS)", "", mc, flags=re.S)
    mc = mc.replace(
        "FEATURE(`masquerade_envelope')dnl\n",
        f"FEATURE(`masquerade_envelope')dnl\nFEATURE(`{feature}')dnl\n",
    )
    cf = tmp_path / f"{feature}.cf"
    made = subprocess.run(["m4"], input=mc, capture_output=True, text=True, check=True)
    cf.write_text(made.stdout)
    return cf


@pytest.mark.skipif(
    shutil.which("m4") is None or not M4_CF.exists(),
    reason="needs m4 and sendmail's cf macros (Debian sendmail-cf) to make the variants",
)
@pytest.mark.parametrize("feature", [*VARIANTS, "allmasquerade"])
def test_feature_variants_the_tables_do_not_do_run_the_rules(oracle_dir, tmp_path, feature):
    config = translate(office_with_feature(oracle_dir, tmp_path, feature), hostname=HOSTNAME)
    assert config.routing_rules == "stock"  # m4's own output, known to the catalogue
    addresses = MailerAddresses(config, Router(config, users=fixture_users().get))
    plans = {addresses.plan("esmtp", sender=s, header=h) for s, h in KINDS}
    assert tables_cover(config) is (feature not in VARIANTS)
    if feature in VARIANTS:
        assert plans == {None}
        return
    # allmasquerade: recipient headers go through HdrFromSMTP, which the tables do
    assert None not in plans
    engine = addresses.engine()
    for address in ("carol", "alice", "bob@localhost", "Bob <bob@mail.example.com>"):
        table = addresses.rewrite(address, "esmtp", sender=False, header=True)
        assert table == engine.rewrite(address, "esmtp", sender=False, header=True)
    assert addresses.rewrite("alice", "esmtp", sender=False, header=True) == (
        "alice.smith@example.com"
    )
