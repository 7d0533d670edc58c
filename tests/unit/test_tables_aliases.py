"""The aliases(5) parser: entries, targets, sendmail's statistics and messages, diagnostics."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pysendmail.config.aliases import (
    TargetKind,
    include_diagnostics,
    parse_aliases,
    parse_include_list,
    read_aliases,
)


def test_office_aliases_counts_match_sendmails_newaliases(oracle_dir):
    path = oracle_dir / "configs/office/aliases"
    aliases = read_aliases(path)
    # sendmail printed "18 aliases, longest 59 bytes, 406 bytes total" with a 21-character
    # @ORACLE@ path; the file holds two such paths.
    extra = len(str(oracle_dir)) - 21
    assert aliases.stats.aliases == 18
    assert aliases.stats.longest == 59 + extra
    assert aliases.stats.total == 406 + 2 * extra
    assert aliases.messages == ()


def test_targets_are_classified_with_their_locations(oracle_dir):
    aliases = read_aliases(oracle_dir / "configs/office/aliases")
    devnull = aliases.lookup("devnull")
    assert [(t.kind, t.value) for t in devnull.targets] == [
        (TargetKind.PROGRAM, "|/bin/cat >/dev/null")
    ]
    team = aliases.lookup("team")
    assert team.targets[0].kind is TargetKind.INCLUDE
    assert team.targets[0].value == f"{oracle_dir}/configs/office/team.list"
    archive = aliases.lookup("archive")
    assert archive.targets[0].kind is TargetKind.FILE
    multi = aliases.lookup("multi")
    assert [t.value for t in multi.targets] == ["alice", "bob"]
    assert (multi.targets[1].location.line, multi.targets[1].location.column) == (19, 2)
    assert aliases.lookup("UPPER").name == "Upper"


def test_continuation_lines_are_joined_raw_as_sendmail_stores_them():
    aliases = parse_aliases("list: a,\n\tb,\n  c\n", "aliases")
    entry = aliases.lookup("list")
    assert entry.rhs == "a,\tb,  c"
    assert [t.value for t in entry.targets] == ["a", "b", "c"]
    assert aliases.stats.total == len("list") + len("a,\tb,  c")


def test_backslash_newline_joins_lines():
    aliases = parse_aliases("list: a, \\\nb\n", "aliases")
    assert [t.value for t in aliases.lookup("list").targets] == ["a", "b"]


def test_quoted_program_with_commas_and_colons_is_one_target():
    aliases = parse_aliases('prog: "|/usr/bin/prog -a x,y -b c:d", bob\n', "aliases")
    targets = aliases.lookup("prog").targets
    assert [(t.kind, t.value) for t in targets] == [
        (TargetKind.PROGRAM, "|/usr/bin/prog -a x,y -b c:d"),
        (TargetKind.ADDRESS, "bob"),
    ]


def test_error_target_and_owner_list():
    text = "old: error:5.1.1:550 User has moved\nlist: a\nowner-list: a\n"
    aliases = parse_aliases(text, "aliases")
    target = aliases.lookup("old").targets[0]
    assert (target.kind, target.value) == (TargetKind.ERROR, "5.1.1:550 User has moved")
    assert aliases.lookup("owner-list") is not None


def test_address_with_phrase_and_comment_is_one_target():
    aliases = parse_aliases("x: Alice Smith <alice@example.com>, bob (Bob B.)\n", "aliases")
    assert [t.text for t in aliases.lookup("x").targets] == [
        "Alice Smith <alice@example.com>",
        "bob (Bob B.)",
    ]


def test_sendmail_messages_for_bad_lines():
    text = " starts with space\nno colon here\n:empty\nnovalue:   \ngood: a\n"
    aliases = parse_aliases(text, "/etc/mail/aliases")
    assert aliases.messages == (
        "/etc/mail/aliases: line 1: Non-continuation line starts with space",
        "/etc/mail/aliases: line 2: missing colon",
        "/etc/mail/aliases: line 3: :empty... illegal alias name",
        "/etc/mail/aliases: line 4: novalue:   ... missing value for alias",
    )
    assert aliases.stats.aliases == 1
    assert [str(d.location) for d in aliases.diagnostics] == [
        "/etc/mail/aliases:1:1",
        "/etc/mail/aliases:2:14",
        "/etc/mail/aliases:3:1",
        "/etc/mail/aliases:4:1",
    ]


def test_duplicate_key_is_a_warning_and_the_later_entry_wins():
    aliases = parse_aliases("a: x\nA: y,\n  z\n", "aliases")
    assert [t.value for t in aliases.lookup("a").targets] == ["y", "z"]
    assert aliases.messages == ("aliases: line 3: Warning: duplicate alias name A",)
    (warning,) = aliases.diagnostics
    assert warning.severity == "warning"
    assert str(warning.location) == "aliases:2:1"
    assert aliases.stats.aliases == 2


def test_alias_loop_is_a_warning_with_its_lines():
    aliases = parse_aliases("a: b\nb: c\nc: a\nd: d2\n", "aliases")
    loops = [d for d in aliases.diagnostics if "loop" in d.message]
    assert len(loops) == 1
    assert loops[0].message == "alias loop: a -> b -> c -> a (lines 1, 2, 3)"


def test_non_local_left_hand_side_is_refused_when_the_domains_are_known():
    def is_local(domain: str) -> bool:
        return domain == "example.com"

    aliases = parse_aliases("x@example.com: a\ny@other.net: b\n", "al", is_local_domain=is_local)
    assert aliases.lookup("x") is not None
    assert aliases.lookup("y") is None
    assert aliases.messages == ("al: line 2: y@other.net... cannot alias non-local names",)


def test_unbalanced_quote_is_an_error_with_its_column_and_the_entry_is_kept():
    aliases = parse_aliases('p: "|/bin/prog, bob\n', "aliases")
    (diag,) = aliases.diagnostics
    assert diag.severity == "error"
    assert str(diag.location) == "aliases:1:4"
    assert aliases.lookup("p") is not None


def test_crlf_empty_and_comment_only_files():
    assert parse_aliases("", "a").stats.aliases == 0
    assert parse_aliases("# nothing\n\n", "a").entries == {}
    crlf = parse_aliases("a: b\r\nc: d\r\n", "a")
    assert [t.value for t in crlf.lookup("a").targets] == ["b"]
    assert crlf.lookup("c").rhs == "d"


def test_missing_include_file_is_a_warning(tmp_path):
    present = tmp_path / "list"
    present.write_text("alice\n")
    aliases = parse_aliases(f"a: :include:{present}\nb: :include:{tmp_path}/gone\n", "al")
    (warning,) = include_diagnostics(aliases)
    assert warning.location.line == 2
    assert "gone" in warning.message


def test_include_list_targets():
    targets = parse_include_list('# team\nalice, bob\n\n"|/bin/true"\n', "team.list")
    assert [(t.value, t.location.line) for t in targets] == [
        ("alice", 2),
        ("bob", 2),
        ("|/bin/true", 4),
    ]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text):
    aliases = parse_aliases(text, "fuzz")
    assert aliases.stats.aliases == len(aliases.entries) + sum(
        1 for m in aliases.messages if "duplicate" in m
    )


@settings(max_examples=200, deadline=None)
@given(st.binary())
def test_binary_garbage_never_raises(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "aliases"
    path.write_bytes(data)
    read_aliases(path)


def test_aliases_example_parses_clean():
    from tests.conftest import REPO_ROOT

    aliases = read_aliases(REPO_ROOT / "aliases.example")
    assert aliases.diagnostics == ()
    assert aliases.messages == ()
    kinds = {t.kind for entry in aliases.entries.values() for t in entry.targets}
    assert kinds == set(TargetKind)
    for name in ("postmaster", "root", "sales", "owner-sales", "team", "devnull", "archive"):
        assert aliases.lookup(name) is not None


_RHS_PIECES = st.sampled_from(
    [
        "alice",
        "bob@example.com",
        '"|/bin/prog a,b"',
        "/var/log/x",
        ":include:/l",
        " ",
        ",",
        "Bob <b@x.org>",
        "c (Carol)",
        "\t",
        "error:5.1.1:550 gone",
        "\\root",
        '"a b"@x.org',
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_RHS_PIECES, min_size=1, max_size=8).map("".join))
def test_the_quick_split_finds_the_targets_the_grammar_finds(rhs):
    checked = parse_aliases(f"name: {rhs}\n", "a")
    quick = parse_aliases(f"name: {rhs}\n", "a", check=False)
    if checked.diagnostics or checked.lookup("name") is None:
        return
    assert [(t.text, t.kind) for t in quick.lookup("name").targets] == [
        (t.text, t.kind) for t in checked.lookup("name").targets
    ]
