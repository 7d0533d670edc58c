"""Which rulesets are sendmail's stock m4 output: the fixture cfs are stock plus their
LOCAL_ parts, so exactly those parts are reported, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pysendmail.config.cfparse import parse_cf, read_cf
from pysendmail.rules.stock import StockReport, catalogue, fingerprint, ruleset_key
from pysendmail.rules.stockgen import DEFAULT_CF_DIR, fixture_mcs

CONFIGS = ("office/office.cf", "office/office_smarthost.cf", "nullclient/nullclient.cf")


def report_of(oracle_dir: Path, name: str, extra: str = "") -> StockReport:
    path = oracle_dir / "configs" / name
    return StockReport(parse_cf(path.read_text() + extra, str(path)).rulesets)


@pytest.mark.parametrize("name", ["debian/debian.cf", "nullclient/nullclient.cf"])
def test_generated_cfs_are_all_stock(oracle_dir, name):
    report = report_of(oracle_dir, name)
    assert report.local_rulesets() == []
    assert report.summary()["run"] == []
    assert "canonify" in report.summary()["stock"]


def test_office_local_rule_3_and_local_ruleset_are_found_by_line(oracle_dir):
    report = report_of(oracle_dir, "office/office.cf")
    local = report.summary()["local"]
    assert sorted(local) == ["Canonify2", "Local_check_rcpt"]
    lines = (oracle_dir / "configs/office/office.cf").read_text().split("\n")
    (where,) = local["Canonify2"]
    assert "oracle LR3" in lines[int(where.split(":")[-2]) - 1]
    (where,) = local["Local_check_rcpt"]
    assert "spamtrap" in lines[int(where.split(":")[-2]) - 1]
    # canonify calls Canonify2, ruleset 0 calls canonify through Recurse: both run rules
    assert report.runs_rules("canonify") and report.runs_rules("3")
    assert report.runs_rules("check_rcpt") and report.runs_rules("parse")
    assert not report.runs_rules("check_relay")


def test_a_changed_stock_rule_is_not_stock(oracle_dir):
    path = oracle_dir / "configs/debian/debian.cf"
    text = path.read_text().replace('"553 User address required"', '"553 Who?"', 1)
    report = StockReport(parse_cf(text, str(path)).rulesets)
    assert report.local_rulesets() == ["Parse0"]
    assert report.runs_rules("parse") and not report.runs_rules("check_relay")


def test_a_ruleset_m4_never_writes_is_local_and_reached(oracle_dir):
    extra = '\nSLocal_check_relay\nR$* $| 10.0.0.1\t$#error $: "550 no"\n'
    report = report_of(oracle_dir, "nullclient/nullclient.cf", extra)
    assert report.local_rulesets() == ["Local_check_relay"]
    reached = report.reachable("check_relay")
    assert reached[0] == "check_relay" and "Local_check_relay" in reached
    assert report.runs_rules("check_relay") and not report.runs_rules("check_rcpt")


def test_fingerprints_ignore_white_space_only():
    assert fingerprint("x", "$* < @ $+ >", "$1") == fingerprint("x", "$*  <  @ $+ >\t", " $1")
    assert fingerprint("x", "$* < @ $+ >", "$1") != fingerprint("y", "$* < @ $+ >", "$1")
    assert fingerprint("x", "$* < @ $+ >", "$1") != fingerprint("x", "$* < @ $- >", "$1")


@pytest.mark.skipif(
    shutil.which("m4") is None or not Path(DEFAULT_CF_DIR, "m4/cf.m4").exists(),
    reason="m4 and sendmail's cf macros (Debian's sendmail-cf) are not installed",
)
def test_catalogue_holds_what_m4_writes_for_the_fixture_mcs(oracle_dir, tmp_path):
    known = catalogue()
    for index, mc in enumerate(fixture_mcs(oracle_dir)):
        source = tmp_path / f"fixture{index}.mc"
        source.write_text(mc)
        made = subprocess.run(["m4", str(source)], capture_output=True, text=True, check=True)
        (tmp_path / "out.cf").write_text(made.stdout)
        for ruleset in read_cf(tmp_path / "out.cf").rulesets:
            key = ruleset_key(ruleset)
            for rule in ruleset.rules:
                assert fingerprint(key, rule.lhs, rule.rhs) in known.get(key, ()), rule
