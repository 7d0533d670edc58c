"""The tokenizer and the rewrite engine on hand-written rules: matching, substitution,
calls, lookups and the limits, with sendmail's messages."""

from __future__ import annotations

import io

import pytest

from pysendmail.rules import tokenizer as tk
from pysendmail.rules.engine import EX_CONFIG, EX_OK, Messages
from pysendmail.rules.testmode import run_testmode
from tests.unit.rules_support import world_from_text

OPS = tk.TokenTables.build(".:%@!^/[]+")


def scan(text: str, delim: str = "\0") -> tuple[list[str] | None, list[str]]:
    messages: list[str] = []
    found = tk.prescan(text, delim, OPS.address, report=messages.append)
    return found.tokens, messages


# ---------------------------------------------------------------- tokenizer


def test_operator_chars_split_tokens_and_spaces_only_separate() -> None:
    tokens, messages = scan("Alice Smith <alice.smith@example.com>")
    assert tokens == ["Alice", "Smith", "<", "alice", ".", "smith", "@", "example", ".", "com", ">"]
    assert messages == []


def test_quoted_string_is_one_token_and_comments_vanish() -> None:
    tokens, _ = scan('"john doe"@example.com (John) ')
    assert tokens == ['"john doe"', "@", "example", ".", "com"]


def test_backslash_keeps_the_next_character_in_the_token() -> None:
    tokens, _ = scan("a\\@b@c")
    assert tokens == ["a\\@b", "@", "c"]


def test_backslash_bang_is_a_plain_bang_for_naive_users() -> None:
    tokens, _ = scan("host\\!user")
    assert tokens == ["host", "!", "user"]


@pytest.mark.parametrize(
    ("text", "message", "tokens"),
    [
        ("<a@b", "553 Unbalanced '<'", ["<", "a", "@", "b", ">"]),
        ("a@b>", "553 Unbalanced '>'", ["a", "@", "b"]),
        ('"abc', "553 Unbalanced '\"'", ['"abc"']),
        ("a (b", "553 Unbalanced '('", ["a"]),
        ("a) b", "553 Unbalanced ')'", ["a", "b"]),
    ],
)
def test_unbalanced_input_is_repaired_with_sendmails_message(
    text: str, message: str, tokens: list[str]
) -> None:
    found, messages = scan(text)
    assert found == tokens
    assert messages == [message]


def test_254_tokens_are_not_too_many() -> None:
    found, messages = scan("." * 254)
    assert found == ["."] * 254
    assert messages == []


def test_token_too_long_gives_up() -> None:
    found, messages = scan("a" * 300 + "@example.com")
    assert found is None
    assert messages == ["553 5.1.0 prescan: token too long"]


def test_address_too_long_gives_up() -> None:
    found, messages = scan("@".join(["abcdefghij" * 2] * 80))
    assert found is None
    assert messages == ["553 5.1.1 Address too long"]


def test_comma_delimiter_stops_the_scan_outside_angle_brackets() -> None:
    found = tk.prescan("a@b, c@d", ",", OPS.address)
    assert found.tokens == ["a", "@", "b"]
    assert found.end == 3


def test_rule_text_metasymbols_print_as_written() -> None:
    text = "$* < @ $={VirtHost} . > $#local $: $1 $&{client_name} $| $(virtuser $1 $) $>Parse0"
    rule = tk.translate_dollars(text)
    tokens = tk.prescan(rule, "\t", OPS.no_comments, ignore=True).tokens
    assert tokens is not None
    assert tk.printav(tokens).strip() == (
        "$* < @ $={VirtHost} . > $# local $: $1 $&{client_name} $| $( virtuser $1 $) $> Parse0"
    )


def test_xputs_shows_control_and_eight_bit_characters() -> None:
    assert tk.xputs("a\tb\x01\xe9") == "a\\tb^AM-i"


def test_cataddr_puts_blanksub_between_atoms_only() -> None:
    assert tk.cataddr(["john", "doe", "@", "example", ".", "com"], ".", OPS.address) == (
        "john.doe@example.com"
    )


# ---------------------------------------------------------------- engine

CF = """\
O OperatorChars=.:%@!^/[]+
O BlankSub=.
CPmail.example
Cwlocalhost
C{Multi}gate.example.org
Karith arith
Kdequote dequote
S1
R$* @ $* . $*		$: <$1> <$2> <$3>
S2
R$+ @ $=w		$@ local $1
R$+ @ $={Multi}		$@ multi $1
R$- @ $~w		$@ remote-one $1 $2
R$+ @ $+		$@ remote $1 $2
S3
R$*			$: $>2 $1
S4
R$* FOO $*		$1 bar $2
S5
R$*			$1 x
S6
R$*			$@ $>6 $1
S7
R$*			$@ $2
S8
R$*			$: $(nosuch $1 $)
S9
R$*			$# local $: $1
R$*			$@ never
S10
R$*			$: $>Nowhere $1
S11
R$+			$: $(arith + $@ $1 $@ 2 $)
S12
R$+			$: $(dequote $1 $)
S13
R$*			$: $&x
SEmpty
S14
R$*			$: $>Empty $1
"""


def run(world_text: str, line: str) -> tuple[str, int]:
    out = io.StringIO()
    status = run_testmode(world_from_text(world_text), io.StringIO(line + "\n"), out)
    text = out.getvalue()
    return text.split("Enter <ruleset> <address>\n", 1)[1], status


def test_zero_or_more_backtracks_to_the_first_possible_split() -> None:
    out, _ = run(CF, "1 a.b@c.d.e")
    assert "1                returns: < a . b > < c > < d . e >\n" in out


def test_class_members_of_several_tokens_match() -> None:
    out, _ = run(CF, "2 joe@Gate.Example.ORG")
    assert "2                returns: multi joe\n" in out


def test_class_and_negated_class() -> None:
    assert "returns: local joe\n" in run(CF, "2 joe@LocalHost")[0]
    assert "returns: remote-one joe elsewhere\n" in run(CF, "2 joe@elsewhere")[0]


def test_literals_match_without_regard_to_case() -> None:
    assert "4                returns: a bar b\n" in run(CF, "4 a foo b")[0]


def test_subroutine_call_is_traced_inside_the_caller() -> None:
    out, _ = run(CF, "3 joe@localhost")
    assert out.splitlines()[:4] == [
        "> 3                  input: joe @ localhost",
        "2                  input: joe @ localhost",
        "2                returns: local joe",
        "3                returns: local joe",
    ]


def test_a_rule_rewriting_forever_stops_after_100_rounds() -> None:
    out, status = run(CF, "5 a")
    assert "Infinite loop in ruleset 5, rule 1\n" in out
    assert "5                returns: a" + " x" * 100 + "\n" in out
    assert status == 70


def test_recursion_has_a_limit_and_a_status() -> None:
    out, _ = run(CF, "6 a")
    assert "rewrite: excessive recursion (max 50), ruleset 6\n" in out
    assert f"== Ruleset 6 (6) status {EX_CONFIG}\n" in out


def test_replacement_out_of_bounds_is_a_config_error_at_run_time() -> None:
    out, _ = run(CF, "7 a")
    assert "rewrite: ruleset 7: replacement $2 out of bounds\n" in out


def test_unknown_map_keeps_the_key() -> None:
    out, _ = run(CF, "8 a")
    assert "rewrite: map nosuch not found\n" in out
    assert "8                returns: a\n" in out


def test_a_resolved_triple_ends_the_ruleset() -> None:
    assert "9                returns: $# local $: a\n" in run(CF, "9 a")[0]


def test_unknown_ruleset_in_a_call() -> None:
    out, _ = run(CF, "10 a")
    assert "Unknown ruleset Nowhere\n" in out


def test_arith_and_dequote_maps() -> None:
    assert "11               returns: 42\n" in run(CF, "11 40")[0]
    assert "12               returns: john\n" in run(CF, '12 "john"')[0]
    assert '12               returns: "john doe"\n' in run(CF, '12 "john doe"')[0]


def test_deferred_macro_is_read_when_the_rule_runs() -> None:
    out, _ = run(CF, ".Dxfoo@bar\n13 a")
    assert "13               returns: foo @ bar\n" in out


def test_call_of_an_empty_ruleset_is_dropped() -> None:
    assert "14               returns: a\n" in run(CF, "14 a")[0]


def test_undefined_ruleset_and_missing_address() -> None:
    assert run(CF, "nosuch a")[0] == "> Undefined ruleset nosuch\n> "
    assert run(CF, "3")[0] == "> No address!\n> "


def test_several_rulesets_and_addresses_in_one_line() -> None:
    out, _ = run(CF, "4,4 a foo b, c foo d")
    assert out.count("4                returns: a bar b\n") == 2
    assert "4                returns: c bar d\n" in out


def test_macro_and_class_commands() -> None:
    out, _ = run(CF, ".Dqhello\n$q\n.Cz one two\n$=z\n$Q")
    # class members print in sendmail's symbol-table order ("one" hashes before "two")
    assert out == "> > hello\n> > one\ntwo\n> Undefined\n> "


def test_messages_carry_the_address_only_for_some_reply_codes() -> None:
    messages = Messages()
    messages.to = "joe@example.com"
    messages.usrerr("553 5.1.1 Address too long")
    messages.usrerr("501 5.1.3 Bad thing")
    messages.syserr("554 5.3.5 Broken")
    assert messages.lines == ["joe@example.com... Address too long", "Bad thing", "Broken"]
    assert messages.exit_stat == 70
    assert EX_OK == 0
