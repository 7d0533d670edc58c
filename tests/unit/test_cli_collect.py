"""Reading a message from stdin as sendmail's collect() does."""

from __future__ import annotations

import io

from pysendmail.cli.collect import collect


def run(data: bytes, *, ignore_dots: bool = False):
    body = bytearray()
    result = collect(io.BytesIO(data), body.extend, ignore_dots=ignore_dots)
    return result, bytes(body)


def test_lone_dot_ends_message_without_i():
    result, body = run(b"Subject: x\n\nbefore\n.\nafter\n")
    assert body == b"before\n"
    assert result.ended_by_dot


def test_lone_dot_kept_with_i():
    result, body = run(b"Subject: x\n\nbefore\n.\n..double\n", ignore_dots=True)
    assert body == b"before\n.\n..double\n"
    assert not result.ended_by_dot


def test_double_dot_is_not_unstuffed_on_the_command_line():
    _, body = run(b"Subject: x\n\n..x\n")
    assert body == b"..x\n"


def test_dot_in_headers_ends_message_too():
    result, body = run(b"Subject: x\n.\nnot read\n")
    assert [h.name for h in result.headers] == ["Subject"]
    assert body == b""


def test_crlf_becomes_lf_and_counts_as_one_byte():
    result, body = run(b"Subject: crlf\r\nX-Test: 1\r\n\r\nbody\r\n")
    assert body == b"body\n"
    assert [h.value for h in result.headers] == ["crlf", "1"]
    assert result.size == 30


def test_lone_cr_in_body_kept():
    _, body = run(b"S: x\n\na\rb\n")
    assert body == b"a\rb\n"


def test_no_final_newline_kept():
    _, body = run(b"Subject: nonl\n\nlast line")
    assert body == b"last line"


def test_first_non_header_line_starts_the_body():
    result, body = run(b"Subject: x\nthis is not a header\nmore\n")
    assert [h.name for h in result.headers] == ["Subject"]
    assert body == b"this is not a header\nmore\n"


def test_message_without_headers():
    result, body = run(b"just a body line\n")
    assert result.headers == [] and body == b"just a body line\n"
    assert result.size == 17


def test_empty_input_is_an_empty_message():
    result, body = run(b"")
    assert result.headers == [] and body == b"" and result.size == 0


def test_long_lines_nul_and_8bit_pass_unchanged():
    line = b"y" * 2500 + b"\x00caf\xc3\xa9\n"
    result, body = run(b"Subject: long\n\n" + line)
    assert body == line
    assert result.has_8bit


def test_8bit_header_marks_message():
    result, _ = run("Subject: café\n\nplain\n".encode())
    assert result.has_8bit


def test_bare_cr_inside_a_header_is_noticed():
    result, _ = run(b"To: a@example.com\rBcc: b@example.com\nSubject: x\n\nbody\n")
    assert result.headers_have_bare_cr


def test_large_body_is_streamed_in_chunks():
    chunks: list[int] = []
    data = b"S: x\n\n" + b"0123456789abcdef\n" * 40000
    collect(io.BytesIO(data), lambda c: chunks.append(len(c)), ignore_dots=False)
    assert len(chunks) > 1
    assert sum(chunks) == len(data) - 6
