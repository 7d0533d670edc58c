"""`pysendmail-cf translate` says which rulesets are sendmail's stock m4 output, which
hold hand-written rules (with file:line) and which pysendmail runs through its rules
engine, as text and as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env

HOST = "mail.example.com"


def translate(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pysendmail.cli.cftool", "translate", "--hostname", HOST, *argv],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    )
    return done.stdout


def test_office_cf_lists_its_local_rules_and_what_runs(oracle_dir: Path) -> None:
    cf = oracle_dir / "configs/office/office.cf"
    out = translate("-C", str(cf))
    assert f"  hand-written rules:   Canonify2 ({cf}:753:1)" in out
    assert f"  hand-written rules:   Local_check_rcpt ({cf}:1772:1)" in out
    assert "  run by rules engine:  check_relay check_mail check_rcpt canonify parse" in out
    stock_line = next(line for line in out.splitlines() if "stock m4 rulesets:" in line)
    assert " Basic_check_rcpt " in stock_line and "Canonify2" not in stock_line


def test_stock_debian_cf_runs_nothing_by_the_engine_json(oracle_dir: Path) -> None:
    data = json.loads(translate("-C", str(oracle_dir / "configs/debian/debian.cf"), "--json"))
    engine = data["rule_engine"]
    assert engine["local"] == {}
    assert engine["run"] == []
    assert {"canonify", "parse", "Basic_check_relay", "greet_pause"} <= set(engine["stock"])


def test_a_local_rule_0_makes_routing_run_by_the_engine(oracle_dir: Path, tmp_path) -> None:
    text = (oracle_dir / "configs/debian/debian.cf").read_text()
    # LOCAL_RULE_0 lands in ParseLocal, which ruleset 0 calls
    text = text.replace("SParseLocal=98\n", "SParseLocal=98\nR$* < @ fax >\t$#error $: fax\n")
    cf = tmp_path / "debian_rule0.cf"
    cf.write_text(text)
    data = json.loads(translate("-C", str(cf), "--json"))
    assert list(data["rule_engine"]["local"]) == ["ParseLocal"]
    assert data["rule_engine"]["run"] == ["canonify", "parse"]
