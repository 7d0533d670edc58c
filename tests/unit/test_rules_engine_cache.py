"""The compiled rules cached on disk (config/cache.cached_derivation) stay right when the
process that compiled them numbered the long macro and class names (`{Multi}`) in
another order than the process that reads them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from pysendmail.rules import tokenizer as tk
from pysendmail.rules.testmode import run_testmode
from tests.conftest import subprocess_env
from tests.unit.rules_support import world_from_text

# A class and a macro whose names are long, each used on a left-hand side (no D line:
# the macros' values are part of the cache's identity, their ids with them).
CF = """\
O OperatorChars=.:%@!^/[]+
C{CacheProbeMulti}gate.example.org
S2
R$+ @ $={CacheProbeMulti}	$@ multi $1
R$+ @ $&{CacheProbeMacro}	$@ macro $1
R$+ @ $+		$@ remote $1 $2
"""

# Another process compiles the same cf after numbering other names first, so that its
# ids for {CacheProbeMulti} and {CacheProbeMacro} come after this process's.
OTHER_PROCESS = """
import sys
from pysendmail.rules import tokenizer as tk
number = 0
while ord(tk.macro_id(f"OtherProcessName{number}")) <= int(sys.argv[1]):
    number += 1
from tests.unit.rules_support import world_from_text
world_from_text(sys.stdin.read())
print(ord(tk.macro_id("CacheProbeMulti")), ord(tk.macro_id("CacheProbeMacro")))
"""


def _answer(line: str) -> str:
    out = io.StringIO()
    run_testmode(world_from_text(CF), io.StringIO(line + "\n"), out)
    return out.getvalue().split("Enter <ruleset> <address>\n", 1)[1]


def test_rules_compiled_by_a_process_with_other_long_ids_still_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, str(ord(tk.macro_id("CacheProbeMacro")))],
        input=CF,
        capture_output=True,
        text=True,
        env=subprocess_env(XDG_CACHE_HOME=str(tmp_path)),
        cwd=repo,
        check=True,
    )
    assert list((tmp_path / "pysendmail").glob("config-rules-*.pickle"))
    theirs = [int(word) for word in done.stdout.split()]
    ours = [ord(tk.macro_id("CacheProbeMulti")), ord(tk.macro_id("CacheProbeMacro"))]
    assert all(a != b for a, b in zip(theirs, ours, strict=True))
    assert "returns: multi joe\n" in _answer("2 joe@Gate.Example.ORG")
    assert "returns: macro joe\n" in _answer(".D{CacheProbeMacro}wanted\n2 joe@wanted")
    assert "returns: remote joe nowhere\n" in _answer("2 joe@nowhere")


# ------------------------------------------------------------ prescan's kept scans

OPS = tk.TokenTables.build(".:%@!^/[]+")


def test_a_scan_with_messages_gives_them_every_time() -> None:
    for _ in range(3):
        said: list[str] = []
        found = tk.prescan("<a@b", "\0", OPS.address, report=said.append)
        assert said == ["553 Unbalanced '<'"]
        assert found.tokens == ["<", "a", "@", "b", ">"]


def test_a_kept_scan_is_handed_out_as_a_copy() -> None:
    first = tk.prescan("kept@example.com", "\0", OPS.address)
    assert first.tokens is not None
    first.tokens[0] = "changed"
    again = tk.prescan("kept@example.com", "\0", OPS.address)
    assert again.tokens == ["kept", "@", "example", ".", "com"]
    assert tk.prescan("kept@example.com", "\0", OPS.no_comments).tokens == again.tokens


def test_the_same_text_scans_by_each_tables_own_operators() -> None:
    other = tk.TokenTables.build(".@")
    assert tk.prescan("a%b@c", "\0", OPS.address).tokens == ["a", "%", "b", "@", "c"]
    assert tk.prescan("a%b@c", "\0", other.address).tokens == ["a%b", "@", "c"]
