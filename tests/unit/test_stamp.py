"""sendmail's header templates expanded at queueing time."""

from __future__ import annotations

import os
import time

import pytest

from pysendmail.headers import MACRO_CHAR, Header
from pysendmail.stamp import HeaderTemplate, arpadate, default_headers, expand, time_macro

RECEIVED = (
    "$?sfrom $s $.$?_($?s$|from $.$_)\n\t$.by $j ($v/$Z)$?r with $r$. id $i"
    "$?u\n\tfor $u; $|;\n\t$.$b"
)


def test_conditionals_and_else_branch():
    assert expand("$?x$x <$g>$|$g$.", {"x": "Joe", "g": "joe"}) == "Joe <joe>"
    assert expand("$?x$x <$g>$|$g$.", {"g": "joe"}) == "joe"


def test_nested_conditionals_in_received():
    macros = {
        "_": "root@localhost",
        "j": "mail.example.com",
        "v": "8",
        "Z": "9",
        "i": "Q",
        "b": "D",
    }
    assert (
        expand(RECEIVED, macros) == "(from root@localhost)\n\tby mail.example.com (8/9) id Q;\n\tD"
    )
    macros |= {"u": "alice", "s": "client", "r": "ESMTP"}
    assert expand(RECEIVED, macros) == (
        "from client (root@localhost)\n\tby mail.example.com (8/9) with ESMTP id Q\n\tfor alice; D"
    )


def test_long_macro_names_and_values_expanded_in_turn():
    assert expand(
        "${daemon_flags}|$j", {"daemon_flags": "c u", "j": "$w.example", "w": "mail"}
    ) == ("c u|mail.example")


def test_late_binding_keeps_references():
    assert expand("<$g>", {"g": "x"}, late=True) == f"<{MACRO_CHAR}g>"


@pytest.fixture
def utc():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_arpadate_utc_is_gmt_and_day_unpadded(utc):
    assert arpadate(1136214245) == "Mon, 2 Jan 2006 15:04:05 GMT"
    assert time_macro(1136214245) == "200601021504"


def test_arpadate_with_offset():
    old = os.environ.get("TZ")
    os.environ["TZ"] = "MST7"
    time.tzset()
    try:
        assert arpadate(1136214245) == "Mon, 2 Jan 2006 08:04:05 -0700 (MST)"
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


TEMPLATES = [
    HeaderTemplate("Return-Path", "<$g>", "P"),
    HeaderTemplate("Received", "by $j", ""),
    HeaderTemplate("Resent-Date", "$a", "D"),
    HeaderTemplate("Date", "$a", "D"),
    HeaderTemplate("From", "$?x$x <$g>$|$g$.", "F"),
    HeaderTemplate("Full-Name", "$x", "x"),
]
MACROS = {"g": "root", "j": "h", "a": "DATE", "x": ""}


def test_defaults_only_where_missing_and_warnings_after_trace():
    mine = [Header("Date", "given"), Header("Subject", "s")]
    out = default_headers(TEMPLATES, mine, MACROS, ["w1"])
    assert [(h.name, h.value, h.condition) for h in out] == [
        ("Return-Path", f"<{MACRO_CHAR}g>", "P"),
        ("Received", "by h", ""),
        ("X-Authentication-Warning", "h: w1", ""),
        ("From", "root", "F"),
        ("Date", "given", ""),
        ("Subject", "s", ""),
    ]


def test_resent_defaults_only_for_resent_messages():
    out = default_headers(TEMPLATES, [Header("Resent-To", "x")], MACROS)
    names = [h.name for h in out]
    assert "Resent-Date" in names and "Date" in names
    assert "Resent-Date" not in [h.name for h in default_headers(TEMPLATES, [], MACROS)]


def test_received_added_even_when_message_has_one():
    out = default_headers(TEMPLATES, [Header("Received", "from elsewhere")], MACROS)
    assert [h.value for h in out if h.name == "Received"] == ["by h", "from elsewhere"]


def test_smtp_mail_without_date_from_or_id_gets_them_with_their_flags():
    templates = [
        HeaderTemplate("Return-Path", "<$g>", "P"),
        HeaderTemplate("Received", "by $j id $i; $b"),
        HeaderTemplate("Date", "$a", "D"),
        HeaderTemplate("From", "$?x$x <$g>$|$g$.", "F"),
        HeaderTemplate("Full-Name", "$x", "x"),
        HeaderTemplate("Message-Id", "<$t.$i@$j>", "M"),
    ]
    macros = {
        "a": "Thu, 26 Nov 2026 11:11:01 GMT",
        "b": "Thu, 26 Nov 2026 11:11:01 GMT",
        "g": "alice@example.com",
        "x": "",
        "t": "202611261111",
        "i": "6AQBB1RV009525",
        "j": "mail.example.com",
    }
    subject = Header("Subject", "hi")
    out = default_headers(templates, [subject], macros)
    assert [(h.condition, h.name, h.value) for h in out] == [
        ("P", "Return-Path", f"<{MACRO_CHAR}g>"),
        ("", "Received", "by mail.example.com id 6AQBB1RV009525; Thu, 26 Nov 2026 11:11:01 GMT"),
        ("D", "Date", "Thu, 26 Nov 2026 11:11:01 GMT"),
        ("F", "From", "alice@example.com"),
        ("M", "Message-Id", "<202611261111.6AQBB1RV009525@mail.example.com>"),
        ("", "Subject", "hi"),
    ]
