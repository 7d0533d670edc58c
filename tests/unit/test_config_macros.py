"""Macro expansion as sendmail does it for the greeting, Received:, From_ lines."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.config.macros import _read_name, expand, macro_references

MACROS = {
    "j": "mail.example.com",
    "v": "8.17.1.9",
    "Z": "8.17.1.9",
    "b": "Thu, 26 Nov 2026 11:00:00 +0000",
    "w": "mail",
    "m": "example.com",
    "x": "",
    "client_addr": "127.0.0.1",
    "client_name": "localhost",
    "client_resolve": "OK",
    "_": "root@localhost",
    "self": "$j",
}


def test_one_letter_and_long_names() -> None:
    assert expand("$j Sendmail $v/$Z; $b", MACROS) == (
        "mail.example.com Sendmail 8.17.1.9/8.17.1.9; Thu, 26 Nov 2026 11:00:00 +0000"
    )
    assert expand("[${client_addr}]", MACROS) == "[127.0.0.1]"


def test_unset_macros_expand_to_nothing() -> None:
    assert expand("a$qb${nope}c", MACROS) == "abc"


def test_values_are_expanded_in_turn_but_deferred_ones_are_not() -> None:
    assert expand("${self}", MACROS) == "mail.example.com"
    assert expand("$&{self}", MACROS) == "$j"


def test_a_macro_naming_itself_does_not_loop() -> None:
    result = expand("$l", {"l": "<$l>"})
    assert result.startswith("<<<") and result.endswith(">>>")


def test_conditionals_with_and_without_else() -> None:
    assert expand("$?{client_addr}from ${client_addr}$.!", MACROS) == "from 127.0.0.1!"
    assert expand("$?xname $x$|no name$.", MACROS) == "no name"
    assert expand("$?qyes$.end", MACROS) == "end"


def test_nested_conditionals() -> None:
    text = "$?j[$?xX$|noX$.]$|nothing$."
    assert expand(text, MACROS) == "[noX]"
    assert expand(text, {}) == "nothing"


def test_debian_greeting_message() -> None:
    greeting = (
        "$j Sendmail $v/$Z; $b; (No UCE/UBE) $?{client_addr}logging access from: "
        "${client_name}(${client_resolve})-$_$."
    )
    assert expand(greeting, MACROS) == (
        "mail.example.com Sendmail 8.17.1.9/8.17.1.9; Thu, 26 Nov 2026 11:00:00 +0000; "
        "(No UCE/UBE) logging access from: localhost(OK)-root@localhost"
    )


def test_received_header_template() -> None:
    received = "$?sfrom $s $.$?_($?s$|from $.$_)\n\t$.by $j ($v/$Z)$?r with $r$. id $i"
    macros = dict(MACROS, s="client.example", r="ESMTP", i="5AQB1RV009525")
    assert expand(received, macros) == (
        "from client.example (root@localhost)\n\tby mail.example.com "
        "(8.17.1.9/8.17.1.9) with ESMTP id 5AQB1RV009525"
    )


def test_rule_operators_and_lone_dollars_stay() -> None:
    assert expand("$* $+ $1 $#local $@ $: $> $[x$] cost $", MACROS) == (
        "$* $+ $1 $#local $@ $: $> $[x$] cost $"
    )


def test_unterminated_conditional_and_brace_do_not_fail() -> None:
    assert expand("$?jyes", MACROS) == "yes"
    assert expand("${open", MACROS) == "${open"


def test_macro_references() -> None:
    assert macro_references("$j ${client_addr} $&x $?{auth_type}y$. $* $1") == {
        "j",
        "client_addr",
        "x",
        "auth_type",
    }


def _reference(text: str, macros: dict[str, str], depth: int = 0) -> str:
    """The test's own reading of the syntax, a character at a time (the module parses a
    text once and evaluates its parts): the oracle of the property test below."""
    return _read(text, 0, macros, depth, "")[0]


def _read(
    text: str, at: int, macros: dict[str, str], depth: int, stops: str
) -> tuple[str, int, str | None]:
    out = ""
    while at < len(text):
        if text[at] != "$":
            out += text[at]
            at += 1
            continue
        marker = text[at + 1 : at + 2]
        if marker and marker in stops:
            return out, at + 2, marker
        if marker == "?":
            name, after = _read_name(text, at + 2)
            if name is None:
                out += "$?"
                at += 2
                continue
            chosen, at, stop = _read(text, after, macros, depth, "|.")
            if stop == "|":
                otherwise, at, _ = _read(text, at, macros, depth, ".")
            else:
                otherwise = ""
            out += chosen if macros.get(name, "") else otherwise
            continue
        deferred = marker == "&"
        name, after = _read_name(text, at + (2 if deferred else 1))
        if name is None:
            out += "$"
            at += 1
            continue
        value = macros.get(name, "")
        if not deferred and "$" in value and depth < 10:
            value = _reference(value, macros, depth + 1)
        out += value
        at = after
    return out, at, None


_TEXT = st.lists(
    st.sampled_from(["$", "?", "|", ".", "&", "{", "}", "x", "y", "{name}", " ", "a", "$$"]),
    max_size=30,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(
    text=_TEXT,
    values=st.dictionaries(st.sampled_from(["x", "y", "name", "a"]), _TEXT, max_size=4),
)
def test_parsed_expansion_reads_text_as_the_character_reading_does(text, values) -> None:
    # Values refer to macros in turn (themselves too): both stop at the same depth.
    assert expand(text, values) == _reference(text, values)
    # Asked again, the parsed form kept from the first time gives the same text.
    assert expand(text, values) == _reference(text, values)
