"""Every recorded `sendmail -bt` case of the four oracle configs gives sendmail's output.

Each case runs in-process against the config with @ORACLE@ filled in; the host name
mail.example.com is handed in (never taken from the machine). The expected stdout
is the two banner lines and the recorded output; the exit status must match too.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pysendmail.rules.context import RuleWorld, build_world
from pysendmail.rules.testmode import run_testmode
from tests.conftest import FIXTURES_SRC
from tests.unit.rules_support import BT_CONFIGS, HOSTNAME, bt_cases, load_cf

CASES = [
    pytest.param(config, case, id=case["id"])
    for config in BT_CONFIGS
    for case in bt_cases(FIXTURES_SRC, config)
]


@pytest.fixture(scope="module")
def worlds(oracle_dir: Path) -> dict[str, RuleWorld]:
    return {
        config: build_world(load_cf(oracle_dir / relative), hostname=HOSTNAME)
        for config, relative in BT_CONFIGS.items()
    }


def _expected(oracle_dir: Path, config: str, output: str) -> str:
    banner = (oracle_dir / "bt" / f"banner_{config}.txt").read_text(encoding="utf-8")
    # the banner file also holds the first prompt, which the recorded output repeats
    return "".join(banner.splitlines(keepends=True)[:2]) + output


@pytest.mark.parametrize(("config", "case"), CASES)
def test_bt_case_matches_sendmail(
    worlds: dict[str, RuleWorld], oracle_dir: Path, config: str, case: dict
) -> None:
    out = io.StringIO()
    status = run_testmode(worlds[config], io.StringIO(case["input"]), out)
    expected = _expected(oracle_dir, config, case["output"].replace("@ORACLE@", str(oracle_dir)))
    assert out.getvalue() == expected
    assert status == case["rc"]
