"""check_compat (sender $| recipient, at delivery time in sendmail) run by the rules
engine: `RuleChecks.compat()` is what a queue runner calls before each delivery."""

from __future__ import annotations

from pysendmail.config.translate import translate
from pysendmail.rules.smtpchecks import checks_for_config
from tests.unit.smtp_office import HOSTNAME

COMPAT = """
LOCAL_RULESETS
Scheck_compat
R$* $| $* @ blocked . example\t$#error $@ 5.7.1 $: "550 Local rule: no mail to blocked.example"
R$* $| $* @ later . example\t$#error $@ 4.4.5 $: "451 Local rule: later"
R$* $| $*\t\t\t$@ OK
"""


def test_check_compat_refuses_defers_and_passes(oracle_dir, tmp_path):
    cf = tmp_path / "compat.cf"
    cf.write_text((oracle_dir / "configs/debian/debian.cf").read_text() + COMPAT)
    checks = checks_for_config(translate(cf, hostname=HOSTNAME))
    assert checks is not None and checks.runs("check_compat")
    refused = checks.compat("<alice@example.com>", "bob@blocked.example")
    assert (refused.action, refused.reply) == (
        "reject",
        "550 5.7.1 Local rule: no mail to blocked.example",
    )
    deferred = checks.compat("<alice@example.com>", "bob@later.example")
    assert (deferred.action, deferred.status) == ("tempfail", "4.4.5")
    assert checks.compat("<alice@example.com>", "bob@example.org").accepted


def test_a_stock_cf_has_no_check_compat(oracle_dir):
    config = translate(oracle_dir / "configs/debian/debian.cf", hostname=HOSTNAME)
    assert checks_for_config(config) is None
