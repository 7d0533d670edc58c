"""RFC 5322 address lists as sendmail splits them, and the parts of one address."""

from __future__ import annotations

import pytest

from pysendmail.address import (
    EMPTY_GROUP_ERROR,
    check_balance,
    has_line_break,
    parse_item,
    parse_list,
    qualify,
    quote_local_part,
    split_addr_spec,
    split_list,
    strip_comments,
    unquote_local_part,
)
from pysendmail.errors import AddressSyntaxError


def test_split_at_top_level_commas_only():
    text = '"Doe, John" <john@example.com>, bob (Bob, the builder), <c@x>'
    assert split_list(text) == [
        '"Doe, John" <john@example.com>',
        "bob (Bob, the builder)",
        "<c@x>",
    ]


def test_comma_inside_angle_brackets_route_is_not_a_separator():
    assert split_list("<@a.example,@b.example:joe@c.example>, d@e") == [
        "<@a.example,@b.example:joe@c.example>",
        "d@e",
    ]


def test_old_style_list_is_split_at_spaces():
    assert split_list("alice bob", old_style=True) == ["alice", "bob"]
    assert split_list("alice bob") == ["alice bob"]
    # a list with a comma, < or ( is new style even when old_style is allowed
    assert split_list("Joe User <joe@x>", old_style=True) == ["Joe User <joe@x>"]


def test_empty_items_dropped():
    assert split_list(" , alice,, ,bob ,") == ["alice", "bob"]


def test_name_angle_address():
    addr = parse_item("Carol <carol@partner.example.org>")
    assert addr.text == "Carol <carol@partner.example.org>"
    assert addr.addr_spec == "carol@partner.example.org"
    assert addr.display_name == "Carol"
    assert addr.local_part == "carol"
    assert addr.domain == "partner.example.org"


def test_comment_form_and_spaces_around_at():
    addr = parse_item("alice @ example.com (Alice Smith)")
    assert addr.addr_spec == "alice@example.com"
    assert addr.display_name == "Alice Smith"


def test_quoted_local_part_keeps_its_at_sign():
    addr = parse_item('"odd@local part"@example.com')
    assert addr.local_part == '"odd@local part"'
    assert addr.domain == "example.com"
    assert unquote_local_part(addr.local_part) == "odd@local part"


def test_source_route_is_dropped():
    assert parse_item("<@a.example,@b.example:joe@c.example>").addr_spec == "joe@c.example"


def test_null_address():
    assert parse_item("<>").addr_spec == ""


def test_unqualified_address_has_no_domain():
    assert split_addr_spec("bob") == ("bob", None)
    assert qualify("bob", "mail.example.com") == "bob@mail.example.com"
    assert qualify("bob@example.com", "mail.example.com") == "bob@example.com"


def test_empty_group_is_kept_for_the_callers_error():
    [addr] = parse_list("undisclosed-recipients:;")
    assert addr.empty_group
    assert addr.text == "undisclosed-recipients:;"
    assert EMPTY_GROUP_ERROR == "List:; syntax illegal for recipient addresses"


def test_group_with_members_gives_the_members():
    addrs = parse_list("Team: alice@example.com, Bob <bob@example.com>;, carol")
    assert [a.addr_spec for a in addrs] == ["alice@example.com", "bob@example.com", "carol"]
    assert [a.group for a in addrs] == ["Team", "Team", None]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<alice@example.com", "Unbalanced '<'"),
        ("alice@example.com>", "Unbalanced '>'"),
        ('"alice@example.com', "Unbalanced '\"'"),
        ("alice (x", "Unbalanced '('"),
        ("alice x)", "Unbalanced ')'"),
    ],
)
def test_unbalanced_is_a_syntax_error(text, message):
    with pytest.raises(AddressSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_balance(text)


def test_strip_comments_keeps_quoted_parentheses():
    assert strip_comments('"(not a comment)" a@b (a (nested) comment)') == '"(not a comment)" a@b '


@pytest.mark.parametrize(
    ("local", "written"),
    [
        ("alice", "alice"),
        ("first.last", "first.last"),
        ("joe user", '"joe user"'),
        ('say"hi', '"say\\"hi"'),
        (".dot", '".dot"'),
        ("a@b", '"a@b"'),
    ],
)
def test_quote_local_part(local, written):
    assert quote_local_part(local) == written
    assert unquote_local_part(written) == local


def test_line_breaks():
    assert has_line_break("a\rb") and has_line_break("a\nb") and not has_line_break("ab")
