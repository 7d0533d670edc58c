"""`-bt`'s `/header` as sendmail 8.17 answers it: the line is a message's own header
(chompheader() with CHHDR_USER), so `?flags?` is no condition there: `?P?Return-Path` is
a header name, `?P Foo: bar` a syntax error. The answers below are the real sendmail's,
on the office cf (run in its own namespaces, as bench/queue_common.py runs it)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pysendmail.rules.context import RuleWorld, build_world
from pysendmail.rules.testmode import run_testmode
from tests.unit.rules_support import BT_CONFIGS, HOSTNAME, load_cf

SENDMAIL_ANSWERS = {
    "/header ?P?Return-Path: <x>": "> ul = 0x00040000\n",
    "/header Return-Path: <x>": "> ul = 0x00060060\n",
    "/header ?x?Full-Name: Joe": "> ul = 0x00040000\n",
    "/header Full-Name: Joe": "> ul = 0x00040020\n",
    "/header From: a@b": "> ul = 0x00040100\n",
    "/header Disposition-Notification-To: a": "> ul = 0x00040100\n",
    "/header Return-Receipt-To: a": "> ul = 0x00040400\n",
    "/header Resent-Bcc: a": "> ul = 0x0004400a\n",
    "/header Foo :bar": "> ul = 0x00040000\n",
    "/header ?P Foo: bar": '> header syntax error, line "?P Foo: bar"\nul = 00000000\n',
    "/header : bar": '> header syntax error, line ": bar"\nul = 00000000\n',
    "/header Foo bar": '> header syntax error, line "Foo bar"\nul = 00000000\n',
}


@pytest.fixture(scope="module")
def office(oracle_dir: Path) -> RuleWorld:
    return build_world(load_cf(oracle_dir / BT_CONFIGS["office"]), hostname=HOSTNAME)


@pytest.mark.parametrize("line", list(SENDMAIL_ANSWERS))
def test_header_command_answers_as_sendmail(office: RuleWorld, line: str) -> None:
    out = io.StringIO()
    run_testmode(office, io.StringIO(line + "\n"), out)
    answer = out.getvalue().split("Enter <ruleset> <address>\n", 1)[1]
    assert answer == SENDMAIL_ANSWERS[line] + "> "
