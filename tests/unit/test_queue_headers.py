"""Header blocks split and rendered as sendmail does."""

from pysendmail import headers as hd
from pysendmail.headers import MACRO_CHAR, Header, HeaderCollector, parse_header_block


def test_header_block_ends_at_empty_line_which_is_consumed():
    msg = b"From: a@b\nSubject: hi\n\nbody line\n"
    headers, offset = parse_header_block(msg)
    assert [h.name for h in headers] == ["From", "Subject"]
    assert msg[offset:] == b"body line\n"


def test_header_block_ends_at_first_line_that_is_not_a_header():
    msg = b"Subject: hi\nthis is not a header\nSecond: line\n"
    headers, offset = parse_header_block(msg)
    assert [h.name for h in headers] == ["Subject"]
    assert msg[offset:] == b"this is not a header\nSecond: line\n"


def test_message_without_headers_is_all_body():
    headers, offset = parse_header_block(b"just a body line\n")
    assert headers == [] and offset == 0


def test_continuation_lines_stay_in_the_value_and_raw_text_is_kept():
    msg = b"Received: from x\n\tby y\n  for z\nTo: bob\n\n"
    headers, _ = parse_header_block(msg)
    assert headers[0].value == "from x\n\tby y\n  for z"
    assert headers[0].raw == "Received: from x\n\tby y\n  for z\n"
    assert headers[0].unfolded() == "from x\tby y  for z"
    assert headers[1].text() == "To: bob"


def test_blanks_before_the_colon_still_make_a_header_and_crlf_is_accepted():
    headers, offset = parse_header_block(b"Subject  :crlf\r\nX-Test: 1\r\n\r\nbody\r\n")
    assert [(h.name, h.value) for h in headers] == [("Subject", "crlf"), ("X-Test", "1")]
    assert offset == len(b"Subject  :crlf\r\nX-Test: 1\r\n\r\n")


def test_collector_counts_header_bytes_as_sendmail_counts_message_size():
    collector = HeaderCollector()
    lines = [b"Subject: crlf\r\n", b"X-Test: 1\r\n", b"\r\n", b"body\r\n"]
    assert [collector.feed(line) for line in lines] == [True, True, True, False]
    assert collector.header_bytes == 25  # 14 + 10 + 1, LF-counted
    assert collector.saw_separator


def test_find_and_remove_bcc():
    headers, _ = parse_header_block(b"To: a\nBcc: secret\nResent-Bcc: x\ncc: c\n\n")
    assert hd.find(headers, "CC").value == "c"
    assert hd.find(headers, "Date") is None
    assert [h.name for h in hd.without_bcc(headers)] == ["To", "cc"]
    assert [h.name for h in hd.remove(headers, "to")] == ["Bcc", "Resent-Bcc", "cc"]


def test_render_honours_mailer_flags_and_expands_macros():
    headers = [
        Header("Return-Path", f"<{MACRO_CHAR}g>", condition="P"),
        Header("Full-Name", "root", condition="x"),
        Header("X-Daemon", "yes", macro_condition="daemon_name"),
        Header("Subject", "s"),
        Header("Bcc", "hidden"),
    ]
    local = hd.render(headers, "lsDFMAw5:/|@qPn9S", {"g": "root@example.com"}, remove_bcc=True)
    assert local == b"Return-Path: <root@example.com>\nSubject: s\n"
    smtp = hd.render(headers, "mDFMuX", {"daemon_name": "MTA"}, eol=b"\r\n")
    assert smtp == b"X-Daemon: yes\r\nSubject: s\r\nBcc:\r\n"  # putheader() empties it


def test_long_macro_reference_expands():
    assert hd.expand_macros(f"by {MACRO_CHAR}{{daemon_name}}!", {"daemon_name": "MTA"}) == "by MTA!"
