"""-bt's /header with the cf's header check rulesets (`HName: $>rs`, `$>+rs`, `H*:`):
the ruleset runs over the value (comments stripped for `$>`, kept for `$>+`), traced as
sendmail traces it, an `$#error` is reported, and the flags word shows H_STRIPCOMM."""

from __future__ import annotations

import io

from pysendmail.config.cfparse import parse_cf
from pysendmail.rules.context import build_world, header_checks
from pysendmail.rules.testmode import run_testmode, strip_comments

CHECKS = """
HSubject: $>+CheckSubject
HX-Spam: $>CheckSpam
H*: $>CheckAll

SCheckSubject
R$* FREE MONEY $*\t$#error $@ 5.7.0 $: "553 Subject header indicates spam"

SCheckSpam
R$*\t\t$@ OK

SCheckAll
R$* virus $*\t$#discard $: discard
"""


def world_with_checks(oracle_dir):
    path = oracle_dir / "configs/debian/debian.cf"
    cf = parse_cf(path.read_text() + CHECKS, str(path))
    return build_world(cf, hostname="mail.example.com")


def bt(world, *lines: str) -> str:
    out = io.StringIO()
    run_testmode(world, io.StringIO("".join(f"{line}\n" for line in lines)), out, banner=False)
    return out.getvalue()


def test_h_lines_name_their_check_rulesets(oracle_dir):
    world = world_with_checks(oracle_dir)
    assert world.header_checks == {
        "subject": ("CheckSubject", False),
        "x-spam": ("CheckSpam", True),
        "*": ("CheckAll", True),
    }
    path = oracle_dir / "configs/debian/debian.cf"
    assert header_checks(parse_cf(path.read_text(), str(path))) == {}


def test_subject_check_keeps_comments_and_refuses(oracle_dir):
    out = bt(world_with_checks(oracle_dir), "/header Subject: FREE MONEY now (really)")
    assert "CheckSubject       input: FREE MONEY now ( really )\n" in out
    assert "Subject header indicates spam\n" in out
    assert out.endswith("ul = 0x00048000\n> ")


def test_dollar_gt_strips_comments_and_sets_stripcomm(oracle_dir):
    out = bt(world_with_checks(oracle_dir), "/header X-Spam: yes (it is)")
    assert "CheckSpam          input: yes\n" in out
    assert "CheckSpam        returns: OK\n" in out
    assert out.endswith("ul = 0x00050000\n> ")


def test_the_default_check_runs_for_headers_without_their_own(oracle_dir):
    out = bt(world_with_checks(oracle_dir), "/header To: virus@example.com", "/header Date: x")
    assert "CheckAll           input: virus @ example . com\n" in out
    assert "CheckAll         returns: $# discard $: discard\n" in out
    assert "ul = 0x00040002\n" in out  # To's own flags: no H_STRIPCOMM of its own
    assert "CheckAll           input: x\n" in out


def test_a_stock_cf_runs_no_header_check(oracle_dir):
    path = oracle_dir / "configs/debian/debian.cf"
    world = build_world(parse_cf(path.read_text(), str(path)), hostname="mail.example.com")
    assert bt(world, "/header Subject: test") == "> ul = 0x00048000\n> "


def test_strip_comments_keeps_quoted_parens():
    assert strip_comments('a (b (c)) "d (e)" f') == 'a "d (e)" f'
