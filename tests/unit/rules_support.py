"""Test support for the rules tests: the oracle configs and their recorded -bt cases."""

from __future__ import annotations

import json
from pathlib import Path

from pysendmail.config.cfparse import parse_cf, read_cf
from pysendmail.config.model import CfFile
from pysendmail.rules.context import RuleWorld, build_world

BT_CONFIGS = {
    "office": "configs/office/office.cf",
    "office_smarthost": "configs/office/office_smarthost.cf",
    "nullclient": "configs/nullclient/nullclient.cf",
    "debian": "configs/debian/debian.cf",
}
HOSTNAME = "mail.example.com"


def load_cf(path: str | Path) -> CfFile:
    return read_cf(path)


def world_from_text(text: str, hostname: str = HOSTNAME) -> RuleWorld:
    """A RuleWorld from cf text written in a test (a `V10` line is added if missing)."""
    if not text.startswith("V"):
        text = "V10/Berkeley\n" + text
    return build_world(parse_cf(text, "test.cf"), hostname=hostname)


def bt_cases(fixtures: Path, config: str) -> list[dict]:
    path = fixtures / "bt" / f"bt_{config}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
