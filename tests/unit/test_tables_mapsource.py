"""Map sources: makemap's line discipline, per-kind checks with file:line:col, name lists."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.config.mapsource import (
    MapKind,
    kind_for_path,
    parse_map_source,
    parse_name_list,
    read_map_source,
    read_name_list,
    split_map_lines,
)
from pysendmail.errors import ConfigError

OFFICE_MAPS = ["access", "virtusertable", "mailertable", "genericstable"]


@pytest.mark.parametrize("name", OFFICE_MAPS)
def test_office_sources_parse_clean(oracle_dir, name):
    source = read_map_source(oracle_dir / "configs/office" / name)
    assert source.kind is kind_for_path(name)
    assert source.diagnostics == ()
    assert source.entries


def test_office_access_entries_keep_tags_and_values(oracle_dir):
    table = read_map_source(oracle_dir / "configs/office/access").as_dict()
    assert table["connect:127.0.0.4"] == "ERROR:4.3.2:421 Too busy, come back later"
    assert table["connect:10.1"] == "REJECT"
    assert table["to:relay.example.net"] == "RELAY"


def test_makemap_line_discipline():
    text = "# comment\n\nKey\tValue with  spaces\r\n novalue\nlonely\nkey dup\n"
    entries, problems = split_map_lines(text, "m")
    assert [(e.key, e.value, e.location.line, e.value_column) for e in entries] == [
        ("key", "Value with  spaces", 3, 5)
    ]
    assert [(p.location.line, p.message) for p in problems] == [
        (4, "syntax error (leading space)"),
        (5, "no RHS for LHS lonely"),
        (6, "key key: duplicate key"),
    ]


def test_makemap_options_keep_case_delimiter_empty_and_replace():
    entries, problems = split_map_lines(
        "A:x y\nB:\nA:z\n", "m", delimiter=":", fold_case=False, allow_empty=True, replace=True
    )
    assert [(e.key, e.value) for e in entries] == [("A", "z"), ("B", "")]
    assert problems == []


@pytest.mark.parametrize(
    ("line", "column", "words"),
    [
        ("Connect:999.1.1.1 REJECT", 9, "bad host name or address"),
        ("From:a@bad..domain OK", 8, "bad domain"),
        ("To:x@example.com REJECT # why", 25, "unexpected '#'"),
        ("Connect:IPv6:2001:db8::zz OK", 9, "bad IPv6 address"),
        ("Connect:10.1 ERROR:go away", 20, "needs a reply code"),
        ("To: OK", 4, "no host, domain, address or net"),
        ("Connect:\tRELAY", 9, "no host, domain, address or net"),
        ("From:x@example.com MAYBE", 20, "unexpected"),
    ],
)
def test_bad_access_lines_name_line_and_column(line, column, words):
    source = parse_map_source(f"# first\n{line}\n", "/etc/mail/access")
    (diag,) = source.diagnostics
    assert (diag.location.file, diag.location.line, diag.location.column) == (
        "/etc/mail/access",
        2,
        column,
    )
    assert words in diag.message
    assert str(diag).startswith(f"/etc/mail/access:2:{column}: error: ")


@pytest.mark.parametrize(
    "line",
    [
        "Connect:127.0.0.1 OK",
        "Connect:10 REJECT",
        "Connect:IPv6:2001:db8::1 RELAY",
        "Connect:IPv6:2001:db8 REJECT",
        "Connect:host.example.com DISCARD",
        "From:user@ SKIP",
        "To:relay.example.net RELAY",
        "Spam:abuse@ FRIEND",
        "From:bad.example.net QUARANTINE:held for review",
        "From:a@example.net ERROR:5.7.1:550 Go away",
        'From:b@example.net ERROR:"550 Go away"',
        "GreetPause:127.0.0.1 0",
        "GreetPause:\t5000",  # the default entries of Debian's stock access file
        "ClientRate:\t10",
        "ClientConn:\t10",
        'AuthInfo: "U:user" "P:secret"',
        'AuthInfo:smarthost.example.net "U:user" "P:secret" "M:PLAIN"',
        "example.com OK",
    ],
)
def test_good_access_lines(line):
    assert parse_map_source(line + "\n", "access").diagnostics == ()


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (MapKind.VIRTUSER, "nodomain bob", "needs @domain"),
        (MapKind.VIRTUSER, "a@example.org %4@x.org", "only %1, %2 and %3"),
        (MapKind.MAILERTABLE, "x.com esmtp", "mailer:host"),
        (MapKind.MAILERTABLE, "x..com smtp:h", "bad domain"),
        (MapKind.MAILERTABLE, "x.com esmtp:[1.2.3.4", "unbalanced ["),
        (MapKind.AUTHINFO, 'AuthInfo:h "X:y"', "bad authinfo item"),
        (MapKind.DOMAINTABLE, "old.example bad..name", "bad domain"),
    ],
)
def test_bad_lines_of_other_kinds(kind, text, message):
    (diag,) = parse_map_source(text + "\n", "src", kind).diagnostics
    assert message in diag.message
    assert diag.location.line == 1


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (MapKind.VIRTUSER, "@example.org %1@elsewhere.example.net"),
        (MapKind.VIRTUSER, "user+*@example.org bob"),
        (MapKind.VIRTUSER, "gone@example.org error:nouser 550 5.1.1 User has moved"),
        (MapKind.MAILERTABLE, ". relay:[smarthost.example.net]"),
        (MapKind.MAILERTABLE, ".sub.example.com esmtp:gw.example.net"),
        (MapKind.MAILERTABLE, "x.example.com local:alice"),
        (MapKind.MAILERTABLE, "x.example.com local:"),
        (MapKind.MAILERTABLE, "x.example.com error:5.1.2:550 Host unknown"),
        (MapKind.GENERICS, "bob@mail.example.com robert@example.com"),
        (MapKind.DOMAINTABLE, "old.example.com new.example.com"),
        (MapKind.AUTHINFO, 'AuthInfo: "U:root" "P=c2VjcmV0"'),
    ],
)
def test_good_lines_of_other_kinds(kind, text):
    assert parse_map_source(text + "\n", "src", kind).diagnostics == ()


def test_name_list_words_and_comments(tmp_path):
    path = tmp_path / "local-host-names"
    path.write_text("# class w\nmail.example.com\n\nexample.com other.example.com\r\n")
    assert read_name_list(path) == ["mail.example.com", "example.com", "other.example.com"]
    parsed = parse_name_list("a\nb #c\n", "f")
    assert [str(d.location) for d in parsed.diagnostics] == ["f:2:3"]


def test_missing_name_list_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot open"):
        read_name_list(tmp_path / "nope")


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(list(MapKind)))
def test_arbitrary_text_never_raises(text, kind):
    source = parse_map_source(text, "fuzz", kind)
    for diag in source.diagnostics:
        assert diag.location.line >= 1 and diag.location.column >= 1


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"])))
def test_arbitrary_name_lists_never_raise(text):
    parse_name_list(text, "fuzz")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab \t#\r\n:Xy")), max_size=80), st.booleans())
def test_read_table_agrees_with_makemaps_reading(text, fold_case):
    from pysendmail.config.mapsource import read_table

    entries, _ = split_map_lines(text, "m", fold_case=fold_case)
    expected: dict[str, str] = {}
    for entry in entries:
        expected.setdefault(entry.key, entry.value)
    assert read_table(text, fold_case=fold_case) == expected


def test_config_tables_of_the_office_config_are_clean_and_problems_are_found(oracle_dir):
    import shutil

    from pysendmail.config.mapsource import check_config_tables
    from pysendmail.config.translate import translate

    office = oracle_dir / "configs/office"
    config = translate(office / "office.cf", hostname="mail.example.com")
    diagnostics = check_config_tables(config)
    # The one finding in sendmail's own office files: loop1 and loop2 alias each other.
    assert [d.message for d in diagnostics] == [
        "alias loop: loop1 -> loop2 -> loop1 (lines 15, 16)"
    ]
    broken = oracle_dir / "configs/office_broken"
    shutil.copytree(office, broken)
    cf = (broken / "office.cf").read_text().replace(str(office), str(broken))
    (broken / "office.cf").write_text(cf)
    with (broken / "access").open("a") as access:
        access.write("Connect:IPv6:zz REJECT\n")
    with (broken / "aliases").open("a") as aliases:
        aliases.write("nocolon here\n")
    config = translate(broken / "office.cf", hostname="mail.example.com")
    found = {str(d) for d in check_config_tables(config)}
    assert f"{broken}/access:16:9: error: bad IPv6 address 'zz'" in found
    assert f"{broken}/aliases:21:13: error: missing colon" in found


_LABELS = st.sampled_from(
    ["a", "b1", "x-y", "org", "a", "b1", "ORG", "_z", "1", "-a", "a-", "9z", ""]
)
_DOMAINS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)
_LOCALS = st.sampled_from(["", "u", "u.v", "u", "a_b", "u+x", "%1", ".u", "u.", "u v"])
_KEYS = st.one_of(
    st.tuples(st.sampled_from(["", "From:", "to:", "Connect:"]), _LOCALS, _DOMAINS).map(
        lambda t: f"{t[0]}{t[1]}@{t[2]}"
    ),
    st.tuples(st.sampled_from(["", ".", "From:"]), _DOMAINS).map("".join),
)
_VALUES = st.one_of(
    _KEYS,
    st.sampled_from(["ok", "OK", "relay", "REJECT", "reject2", "%1", "%1@a.org", "u"]),
    st.tuples(st.sampled_from(["smtp:", "esmtp:", "local:", "x y:"]), _DOMAINS).map(
        lambda t: t[0] + t[1]
    ),
    _DOMAINS.map(lambda d: f"relay:[{d}]"),
)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([MapKind.VIRTUSER, MapKind.MAILERTABLE, MapKind.GENERICS, MapKind.ACCESS]),
    _KEYS,
    _VALUES,
)
def test_the_fast_shapes_never_accept_what_the_grammar_refuses(kind, key, value):
    from pysendmail.config.mapsource import _Checker, plainly_valid

    if " " in key or not plainly_valid(kind, key, value):
        return
    checker = _Checker("src", kind)
    (entry,) = parse_map_source(f"{key} {value}\n", "src", MapKind.PLAIN).entries
    # Run the grammar path on its own, as if the fast path did not exist.
    name = kind.value
    key_tree = checker.parse(entry.key, f"{name}_key", 1, 1, "key")
    value_tree = checker.parse(entry.value, f"{name}_value", 1, 1, "value")
    assert key_tree is not None and value_tree is not None
    getattr(checker, f"check_{name}_key")(key_tree, entry)
    getattr(checker, f"check_{name}_value")(value_tree, entry)
    assert checker.diagnostics == []
