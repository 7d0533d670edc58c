"""The genericstable's lookup order and its answers, by the tables and by the rules, as
sendmail 8.17 answers them (`/tryflags HS` + `/try esmtp ADDRESS` on the office cf with
this table, made into a hash map by sendmail's own makemap; the answers are recorded
below): `user+detail@domain`, `user+*@domain` (%1 = detail), `user@domain`, `@domain`
(%1 = the local part, qualified addresses only), then `user+detail`, `user+*`, `user`; a
qualified value is used as it is, never masqueraded."""

from __future__ import annotations

import pytest

from pysendmail.config.translate import translate
from pysendmail.rewriting import MailerAddresses
from pysendmail.routing import Router
from tests.unit.tables_office import HOSTNAME, fixture_users
from tests.unit.test_rules_rewrite_tables import stock_office

GENERICSTABLE = """\
alice\talice.smith@example.com
bob@mail.example.com\trobert@example.com
carol+*@mail.example.com\tcarol.%1@example.com
dave\tdave@mail.example.com
erin+list\terin-list
frank+*\tfrank-%1
@mail.example.com\t%1@catchall.example.net
"""

SENDMAIL_ANSWERS = {
    "alice": "alice.smith@example.com",
    "carol+news@mail.example.com": "carol.news@example.com",
    "carol": "carol@example.com",
    "dave": "dave@mail.example.com",
    "erin+list": "erin-list@example.com",
    "erin+list@mail.example.com": "erin+list@catchall.example.net",
    "frank+x": "frank-x@example.com",
    "frank+x@mail.example.com": "frank+x@catchall.example.net",
    "zed@mail.example.com": "zed@catchall.example.net",
    "zed": "zed@example.com",
    "bob@localhost": "robert@example.com",
    "Dave D <dave>": "Dave D <dave@mail.example.com>",
}


@pytest.fixture
def rewriting(oracle_dir, tmp_path):
    office = oracle_dir / "configs" / "office"
    cf = (
        stock_office(oracle_dir)
        .read_text()
        .replace(str(office / "genericstable"), str(tmp_path / "generics"))
    )
    (tmp_path / "generics").write_text(GENERICSTABLE)
    path = tmp_path / "office.cf"
    path.write_text(cf)
    config = translate(path, hostname=HOSTNAME)
    assert config.routing_rules == "stock"
    return MailerAddresses(config, Router(config, users=fixture_users().get))


@pytest.mark.parametrize("address", list(SENDMAIL_ANSWERS))
def test_the_tables_answer_as_sendmail(rewriting, address):
    assert rewriting.plan("esmtp", sender=True, header=True) is not None
    got = rewriting.rewrite(address, "esmtp", sender=True, header=True)
    assert got == SENDMAIL_ANSWERS[address]


@pytest.mark.parametrize("address", list(SENDMAIL_ANSWERS))
def test_the_rules_answer_as_sendmail(rewriting, address):
    got = rewriting.engine().rewrite(address, "esmtp", sender=True, header=True)
    assert got == SENDMAIL_ANSWERS[address]
