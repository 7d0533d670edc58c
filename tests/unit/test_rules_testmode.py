"""-bt beyond the recorded cases: the -d0.1 block, echo mode, usage lines, and arbitrary
input that must never raise."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysendmail.rules.context import RuleWorld, build_world
from pysendmail.rules.testmode import run_testmode
from tests.unit.rules_support import BT_CONFIGS, HOSTNAME, load_cf


@pytest.fixture(scope="module")
def office(oracle_dir: Path) -> RuleWorld:
    return build_world(load_cf(oracle_dir / BT_CONFIGS["office"]), hostname=HOSTNAME)


@pytest.fixture(scope="module")
def debian(oracle_dir: Path) -> RuleWorld:
    return build_world(load_cf(oracle_dir / BT_CONFIGS["debian"]), hostname=HOSTNAME)


def bt(world: RuleWorld, text: str, **kwargs: object) -> tuple[str, int]:
    out = io.StringIO()
    status = run_testmode(world, io.StringIO(text), out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue(), status


def test_d0_1_prints_the_version_block_before_the_banner(
    office: RuleWorld, oracle_dir: Path
) -> None:
    cases = [
        json.loads(line)
        for line in (oracle_dir / "cli" / "cli_cases.jsonl").read_text().splitlines()
        if line
    ]
    (case,) = [c for c in cases if "-d0.1" in c["argv"] and "-bt" in c["argv"]]
    out, status = bt(office, case["stdin"], show_version=True)
    assert out == case["stdout"]
    assert status == case["exit_code"]


def test_echo_mode_repeats_each_line_instead_of_prompting(office: RuleWorld) -> None:
    out, _ = bt(office, "$j\n", prompt=False, banner=False)
    assert out == "> $j\nmail.example.com\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/", "Usage: /[canon|map|mx|parse|try|tryflags]\n"),
        ("/try esmtp", "Usage: /try mailer address\n"),
        ("/try nosuch alice", "Unknown mailer nosuch\n"),
        ("/tryflags", "Usage: /tryflags [Hh|Ee][Ss|Rr]\n"),
        ("/map access", "No key specified\n"),
        ("/canon", "Usage: /canon address\n"),
        ("=", "Usage: =Sruleset or =M\n"),
        ("=X", 'Unknown "=" command =X\n'),
        (".", "Usage: .[DC]macro value(s)\n"),
        (".X", 'Unknown "." command .X\n'),
        ("=Snosuch", "Undefined ruleset nosuch\n"),
    ],
)
def test_usage_and_unknown_command_lines(office: RuleWorld, line: str, expected: str) -> None:
    out, _ = bt(office, line + "\n", banner=False)
    assert out == "> " + expected + "> "


def test_quit_stops_reading(office: RuleWorld) -> None:
    out, _ = bt(office, "/quit\n$j\n", banner=False)
    assert out == "> "


def test_header_and_sender_parse_as_recipient_use_the_try_flags(office: RuleWorld) -> None:
    out, _ = bt(office, "/tryflags HS\n/parse bob\n", banner=False)
    assert "Parsing header sender address\n" in out


def test_long_lines_are_read_in_sendmails_buffer_sized_pieces(office: RuleWorld) -> None:
    out, _ = bt(office, "$j" + " " * 3000 + "\n", banner=False)
    assert out.startswith("> mail.example.com\n> ")


address_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=255, blacklist_characters="\n"),
    max_size=300,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(address=address_text)
def test_arbitrary_address_text_never_raises(debian: RuleWorld, address: str) -> None:
    text = f"3,0 {address}\n/parse {address}\n/try esmtp {address}\ncheck_rcpt {address}\n"
    out, status = bt(debian, text, banner=False)
    assert out.endswith("> ")
    assert 0 <= status < 256


def test_addresses_after_an_unbalanced_one_are_still_read(office: RuleWorld) -> None:
    out, _ = bt(office, "3 <a,b\n3 a>,b\n", banner=False)
    assert out == (
        "> <a,b... Unbalanced '<'\n"
        + _canonify_trace("< a >", "a", "a")
        + _canonify_trace("b", "b", "b")
        + "> a>,b... Unbalanced '>'\n"
        + _canonify_trace("a", "a", "a")
        + _canonify_trace("b", "b", "b")
        + "> "
    )


def _canonify_trace(given: str, inner: str, result: str) -> str:
    return (
        f"canonify           input: {given}\n"
        f"Canonify2          input: {inner}\n"
        f"Canonify2        returns: {result}\n"
        f"canonify         returns: {result}\n"
    )


def test_non_ascii_digits_are_not_numbers(office: RuleWorld) -> None:
    out, _ = bt(office, "³ alice\n/parse a@b ³\n", banner=False)
    assert out.startswith("> Undefined ruleset ³\n")
