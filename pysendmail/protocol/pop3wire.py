"""The wire form of a message in POP3: CRLF line ends, byte-stuffing, sizes, TOP's cut.

Two forms of the same rules. The whole-message functions (`crlf_message`, `dot_stuff`,
`top_of`, `multiline`) work on bytes held in memory: they serve short replies (CAPA,
LIST) and state what the streaming ones must give. The streaming generators
(`crlf_chunks`, `top_chunks`, `stuffed_chunks`) take a stored message in blocks of any
size and give the same bytes block by block, holding at most a block and two bytes, so
RETR and TOP of a large message never hold it whole. A block may end anywhere: inside a
CRLF, just before a line's leading `.`, inside the blank line that ends the header.

Nothing here reads a file or a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

# ---------------------------------------------------------------- whole messages


def crlf_message(raw: bytes) -> bytes:
    """`raw` with every line ended by CRLF (bare LF becomes CRLF; a last line gets one)."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text


def crlf_size(raw: bytes) -> int:
    """`len(crlf_message(raw))`, counted without building it (what LIST and STAT report)."""
    if not raw:
        return 0
    bare_lf = raw.count(b"\n") - raw.count(b"\r\n")
    return len(raw) + bare_lf + (0 if raw.endswith(b"\n") else 2)


def dot_stuff(text: bytes) -> bytes:
    """Double the `.` that begins a line of CRLF-ended `text` (RFC 1939 section 3)."""
    stuffed = text.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed


def multiline(first: str, body: bytes) -> bytes:
    """A multi-line response: `+OK first`, the CRLF-ended, byte-stuffed body, the `.` line."""
    return b"+OK " + first.encode() + b"\r\n" + dot_stuff(body) + b".\r\n"


def top_of(text: bytes, body_lines: int) -> bytes:
    """The header block, the blank line and the first `body_lines` lines of a CRLF message."""
    if text.startswith(b"\r\n"):
        head_end = 2
    else:
        cut = text.find(b"\r\n\r\n")
        if cut < 0:
            return text
        head_end = cut + 4
    end = head_end
    for _ in range(body_lines):
        next_end = text.find(b"\r\n", end)
        if next_end < 0:
            return text
        end = next_end + 2
    return text[:end]


# ---------------------------------------------------------------- the same, block by block


def crlf_chunks(stored: Iterable[bytes]) -> Iterator[bytes]:
    """`crlf_message` of the concatenated `stored` blocks, given block by block.

    A CR at the end of a block is held back until the next block says whether it
    begins a CRLF (kept) or stands alone (kept too, but a following LF is not doubled).
    """
    held_cr = b""
    ended_line = True  # nothing sent yet counts as ended: an empty message stays empty
    sent_any = False
    for block in stored:
        if not block:
            continue
        text = held_cr + bytes(block)
        held_cr = b""
        if text.endswith(b"\r"):
            text, held_cr = text[:-1], b"\r"
        out = text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if out:
            sent_any = True
            ended_line = out.endswith(b"\r\n")
            yield out
    if held_cr:
        yield held_cr + b"\r\n"
    elif sent_any and not ended_line:
        yield b"\r\n"


def top_chunks(crlf: Iterable[bytes], body_lines: int) -> Iterator[bytes]:
    """`top_of` of the concatenated CRLF blocks: the header, the blank line that ends it,
    then `body_lines` lines; everything when the message has no blank line or fewer lines.
    Stops pulling blocks once it has what TOP sends."""
    line_length = 0  # octets of the current line seen so far
    in_header = True
    lines_left = body_lines
    for block in crlf:
        position = 0
        while True:
            if not in_header and lines_left == 0:
                if position:
                    yield block[:position]
                return
            newline = block.find(b"\n", position)
            if newline < 0:
                line_length += len(block) - position
                break
            line_length += newline + 1 - position
            if in_header:
                # In CRLF text every LF ends a CRLF: a line of two octets is empty.
                in_header = line_length != 2
            else:
                lines_left -= 1
            line_length = 0
            position = newline + 1
        if block:
            yield block


def stuffed_chunks(crlf: Iterable[bytes]) -> Iterator[bytes]:
    """`dot_stuff` of the concatenated CRLF blocks, block by block.

    Each block is stuffed with the last two octets before it in front (a CRLF at the
    very start), so a line start that falls on a block edge is seen; the prefix itself
    is never changed by the replacement, and is cut off again.
    """
    before = b"\r\n"
    for block in crlf:
        if not block:
            continue
        joined = before + block
        yield joined.replace(b"\r\n.", b"\r\n..")[len(before) :]
        before = joined[-2:]


def message_chunks(first_line: bytes, stored: Iterable[bytes], top: int | None) -> Iterator[bytes]:
    """A whole multi-line response for a stored message: `first_line` (CRLF-ended), the
    message's CRLF, byte-stuffed blocks (only TOP's part when `top` is a line count),
    and the final `.` line."""
    yield first_line
    crlf = crlf_chunks(stored)
    if top is not None:
        crlf = top_chunks(crlf, top)
    yield from stuffed_chunks(crlf)
    yield b".\r\n"
