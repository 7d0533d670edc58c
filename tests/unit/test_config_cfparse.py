"""sendmail.cf parsing: every line type, continuation lines, locations and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysendmail.config.cfparse import munch, parse_cf, read_cf
from pysendmail.errors import ConfigError

FIXTURE_CFS = [
    "office/office.cf",
    "office/office_smarthost.cf",
    "nullclient/nullclient.cf",
    "debian/debian.cf",
]


def parse(text: str):
    return parse_cf(text, "test.cf")


def messages(cf) -> list[str]:
    return [str(d) for d in cf.diagnostics]


@pytest.mark.parametrize("name", FIXTURE_CFS)
def test_fixture_cf_parses_without_diagnostics(oracle_dir: Path, name: str) -> None:
    cf = read_cf(oracle_dir / "configs" / name)
    assert cf.diagnostics == ()
    assert cf.version == ("10", "Berkeley")
    assert {"local", "prog", "smtp", "esmtp", "relay"} <= {m.name for m in cf.mailers}


def test_office_cf_counts_every_rule_and_ruleset(oracle_dir: Path) -> None:
    path = oracle_dir / "configs/office/office.cf"
    cf = read_cf(path)
    r_lines = sum(1 for line in path.read_text().splitlines() if line.startswith("R"))
    s_lines = sum(1 for line in path.read_text().splitlines() if line.startswith("S"))
    assert sum(len(rs.rules) for rs in cf.rulesets) == r_lines
    assert len(cf.rulesets) == s_lines
    names = [rs.name for rs in cf.rulesets]
    assert names.count("Local_check_rcpt") == 2  # LOCAL_RULESETS adds a second definition
    last = [rs for rs in cf.rulesets if rs.name == "Local_check_rcpt"][-1]
    assert last.rules[0].lhs == "$* spamtrap $*"
    assert last.rules[0].rhs.startswith("$#error $@ 5.7.1")


def test_office_cf_keeps_mailer_fields_and_map_files(oracle_dir: Path) -> None:
    cf = read_cf(oracle_dir / "configs/office/office.cf")
    local = next(m for m in cf.mailers if m.name == "local")
    assert local.path == str(oracle_dir / "configs/office/bin/deliver")
    assert local.argv == ("deliver", "-d", "$u")
    assert {"l", "s", "w", "5", ":", "/", "|", "@"} <= local.flags
    maps = {m.name: m for m in cf.maps}
    assert maps["access"].flags == {"-T": "<TMPF>"}
    assert maps["access"].file == str(oracle_dir / "configs/office/access")
    assert maps["virtuser"].map_class == "hash"
    assert maps["resolve"].file is None


def test_version_and_macros() -> None:
    cf = parse('V10/Berkeley\nDjmail.example.com\nD{daemon_flags}CC f\nDS\nD{x}"a b\\"c"\n')
    assert cf.version == ("10", "Berkeley")
    assert [(n, v) for n, v, _ in cf.macros] == [
        ("j", "mail.example.com"),
        ("daemon_flags", "CC f"),
        ("S", ""),
        ("x", 'a b"c'),
    ]
    assert cf.macros[1][2].line == 3


def test_one_letter_name_in_braces_is_the_letter() -> None:
    cf = parse("C{G}localhost\nD{j}host.example\n")
    assert cf.class_sources[0].class_name == "G"
    assert cf.macros[0][0] == "j"


def test_class_words_and_file_classes() -> None:
    cf = parse(
        "CO @ % !\nC{Accept}OK RELAY\nFw/etc/mail/local-host-names\n"
        "FR-o /etc/mail/relay-domains %[^\\#]\nF{prog}|/usr/bin/list-hosts --all\n"
    )
    words, accept, fw, fr, prog = cf.class_sources
    assert words.words == ("@", "%", "!")
    assert accept.class_name == "Accept" and accept.words == ("OK", "RELAY")
    assert (fw.file, fw.optional, fw.scanf) == ("/etc/mail/local-host-names", False, None)
    assert (fr.file, fr.optional, fr.scanf) == ("/etc/mail/relay-domains", True, "%[^\\#]")
    assert prog.file == "|/usr/bin/list-hosts --all"


def test_long_and_short_options() -> None:
    cf = parse(
        "O MaxMessageSize=100000\nO  SmtpGreetingMessage = $j ready\nO MeToo\n"
        "OQ/var/spool/mqueue\nOT5d/4h\nOMxvalue\n"
    )
    assert [(n, v) for n, v, _ in cf.options] == [
        ("MaxMessageSize", "100000"),
        ("SmtpGreetingMessage", "$j ready"),
        ("MeToo", ""),
        ("QueueDirectory", "/var/spool/mqueue"),
        ("QueueTimeout", "5d/4h"),
    ]
    assert [(n, v) for n, v, _ in cf.macros] == [("x", "value")]
    assert cf.options[0][2].column == 3


def test_mailer_fields_with_continuation_lines() -> None:
    cf = parse(
        "Mesmtp,\t\tP=[IPC], F=mDFMuXa, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, L=990,\n"
        "\t\tT=DNS/RFC822/SMTP,\n"
        '\t\tA=TCP $h, Path=/ignored, D="a,b"\n'
    )
    (mailer,) = cf.mailers
    assert mailer.name == "esmtp"
    assert mailer.fields["P"] == "/ignored"  # `Path=` is the P field, the later one wins
    assert mailer.fields["S"] == "EnvFromSMTP/HdrFromSMTP"
    assert mailer.fields["T"] == "DNS/RFC822/SMTP"
    assert mailer.fields["A"] == "TCP $h"
    assert mailer.fields["D"] == '"a,b"'
    assert mailer.fields["E"] == "\\r\\n"
    assert munch(mailer.fields["E"])[0] == "\r\n"


def test_mailer_field_without_equals_is_an_error_with_its_column() -> None:
    cf = parse("Mlocal, P=/bin/deliver, Fxyz, A=deliver $u\n")
    assert [m.name for m in cf.mailers] == ["local"]
    assert messages(cf) == ["test.cf:1:25: error: mailer local: `=' expected in 'Fxyz'"]


def test_maps_with_flags_and_files() -> None:
    cf = parse(
        "Kaccess hash -T<TMPF> -o /etc/mail/access\nKresolve host -a<OKR> -T<TEMP>\n"
        "Kseq sequence a b\nKlocal text -k0 -v1 -z: /etc/passwd\n"
    )
    access, resolve, seq, local = cf.maps
    assert access.flags == {"-T": "<TMPF>", "-o": ""}
    assert access.file == "/etc/mail/access"
    assert resolve.map_class == "host" and resolve.file is None
    assert seq.args == ("a", "b") and seq.file is None
    assert local.flags == {"-k": "0", "-v": "1", "-z": ":"} and local.file == "/etc/passwd"


def test_map_without_class_is_an_error() -> None:
    cf = parse("Kbroken\n")
    assert cf.maps == ()
    assert messages(cf) == ["test.cf:1:1: error: bad map line: map broken: class expected"]


def test_rulesets_by_number_name_and_both() -> None:
    cf = parse("S3\nR$*\t$@ $1\nScanonify=96\nSParse0\nS 5\nR$+\t$: x\tcomment here\n")
    assert [(rs.name, rs.number, len(rs.rules)) for rs in cf.rulesets] == [
        ("", 3, 1),
        ("canonify", 96, 0),
        ("Parse0", None, 0),
        ("", 5, 1),
    ]
    assert cf.rulesets[3].rules[0].comment == "comment here"


def test_rules_before_any_ruleset_go_to_ruleset_zero() -> None:
    cf = parse("R$*\t$#local $: $1\n")
    assert (cf.rulesets[0].number, cf.rulesets[0].rules[0].rhs) == (0, "$#local $: $1")


def test_rule_split_at_tabs_across_a_continuation_line() -> None:
    cf = parse("S1\nR$* $=O $* < @ *LOCAL* >\n\t\t\t$@ $>Parse0 $1 $2\t...@*LOCAL* -> ...\n")
    (rule,) = cf.rulesets[0].rules
    assert rule.lhs == "$* $=O $* < @ *LOCAL* >"
    assert rule.rhs == "$@ $>Parse0 $1 $2"
    assert rule.comment == "...@*LOCAL* -> ..."
    assert rule.location.line == 2


def test_rule_without_a_tab_is_an_error() -> None:
    cf = parse("S1\nR$* no tab here\nR$*\t$@ ok\n")
    assert len(cf.rulesets[0].rules) == 1
    assert messages(cf) == [
        "test.cf:2:1: error: bad rewriting rule: tab expected between left and right side"
    ]


def test_headers_with_flags_macro_conditions_and_continuations() -> None:
    cf = parse(
        "H?P?Return-Path: <$g>\nH?${client_name}?X-Client: ${client_name}\n"
        "H?$x?X-One: $x\nHReceived: from $s\n\tby $j\n"
    )
    path, client, one, received = cf.headers
    assert (path.name, path.value, path.flags, path.macro_condition) == (
        "Return-Path",
        "<$g>",
        "P",
        None,
    )
    assert (client.flags, client.macro_condition) == ("", "client_name")
    assert one.macro_condition == "x"
    assert received.value == "from $s\n\tby $j"


def test_priorities_trusted_users_environment_queue_groups_and_milters() -> None:
    cf = parse(
        "Pfirst-class=0\nPjunk = -100\nTroot daemon\nTuucp\nEPATH=/bin\n"
        "Qslow, Path=/var/spool/slow, Runners=2\nXfilter, S=local:/run/f.sock, F=T\n"
    )
    assert [(n, v) for n, v, _ in cf.priorities] == [("first-class", 0), ("junk", -100)]
    assert [u for u, _ in cf.trusted_users] == ["root", "daemon", "uucp"]
    kinds = [(kind, text) for kind, text, _ in cf.other]
    assert kinds == [
        ("E", "PATH=/bin"),
        ("Q", "slow, Path=/var/spool/slow, Runners=2"),
        ("X", "filter, S=local:/run/f.sock, F=T"),
    ]


def test_bad_priority_value_names_its_column() -> None:
    cf = parse("Pbulk=lots\n")
    assert messages(cf) == ["test.cf:1:7: error: bad priority value 'lots'"]


def test_comments_blank_lines_and_continued_comments_are_skipped() -> None:
    cf = parse("# a comment\n\tcontinued\n\n   \nDjhost\n")
    assert cf.diagnostics == ()
    assert cf.macros[0][2].line == 5


def test_unknown_line_type_is_an_error_and_parsing_goes_on() -> None:
    cf = parse("Djone\nZzz what\nDktwo\n")
    assert [n for n, _, _ in cf.macros] == ["j", "k"]
    assert messages(cf) == ["test.cf:2:1: error: unknown configuration line 'Zzz what'"]


def test_bad_line_in_the_middle_keeps_every_other_line_and_its_line_number() -> None:
    cf = parse("Djone\nD\nCwa b\n# x\nO\nDkthree\n")
    assert [n for n, _, _ in cf.macros] == ["j", "k"]
    assert cf.macros[1][2].line == 6
    assert [(d.location.line, d.severity) for d in cf.diagnostics] == [(2, "error"), (5, "error")]
    assert "bad macro definition line" in cf.diagnostics[0].message


def test_crlf_line_ends_are_read_like_lf() -> None:
    crlf = parse("V10/Berkeley\r\nDjmail.example.com\r\nR$*\t$@ $1\r\n")
    assert crlf.macros[0][1] == "mail.example.com"
    assert crlf.rulesets[0].rules[0].rhs == "$@ $1"
    assert crlf.diagnostics == ()


def test_empty_file_and_missing_final_newline() -> None:
    empty = parse("")
    assert (empty.macros, empty.rulesets, empty.diagnostics) == ((), (), ())
    assert parse("Djhost").macros[0][1] == "host"


def test_binary_garbage_gives_diagnostics_not_exceptions() -> None:
    cf = parse_cf(bytes(range(256)).decode("latin-1") * 3, "junk.cf")
    assert cf.diagnostics
    assert all(d.location.file == "junk.cf" for d in cf.diagnostics)


def test_orphan_continuation_line_is_a_warning() -> None:
    cf = parse("\n\tstray text\n")
    assert messages(cf) == [
        "test.cf:2:1: warning: continuation line with no line above to continue"
    ]


def test_read_cf_of_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        read_cf(tmp_path / "nope.cf")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.cf'}:0:0: cannot open")


def test_read_cf_keeps_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "latin.cf"
    path.write_bytes(b"Dj\xe9t\xe9.example\n")
    cf = read_cf(path)
    assert cf.macros[0][1].encode("utf-8", "surrogateescape") == b"\xe9t\xe9.example"
