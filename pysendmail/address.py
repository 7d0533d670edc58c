"""RFC 5321/5322 address syntax, in one place.

What this module owns: splitting a recipient list (a header value or a command-line
argument) into its items the way sendmail does (commas outside quotes, comments and
angle brackets; spaces too for an old-style list; RFC 5322 groups), taking the address
out of an item (`Name <addr>`, `addr (comment)`, source routes), the local and domain
parts, quoting a local part, qualifying an unqualified address.

What it must never do: look anything up (aliases, DNS, users) or rewrite an address by
the configuration's rules; that is routing's and the rules engine's work. It imports only
the standard library and errors.py, so every floor may use it.
"""

from __future__ import annotations

from pysendmail.errors import AddressSyntaxError
from pysendmail.record import record

# RFC 5322 `specials`: a local part holding one of these (or a space) must be quoted.
_SPECIALS = frozenset('()<>[]:;@\\,."')
# Characters that make a list "new style" (comma-separated) in sendmail's heuristic.
_NEW_STYLE_MARKS = frozenset(",;<(")

EMPTY_GROUP_ERROR = "List:; syntax illegal for recipient addresses"


@record(frozen=True)
class Address:
    """One item of a recipient list.

    `text` is the item as written, trimmed (what sendmail keeps as the recipient, e.g.
    `Carol <carol@partner.example.org>`); `addr_spec` is the bare address inside it
    (`carol@partner.example.org`, or "" for the null address `<>`).
    """

    text: str
    addr_spec: str
    display_name: str = ""
    group: str | None = None  # the group it was listed in, if any
    empty_group: bool = False  # `undisclosed-recipients:;`: a group with no members

    @property
    def local_part(self) -> str:
        return split_addr_spec(self.addr_spec)[0]

    @property
    def domain(self) -> str | None:
        return split_addr_spec(self.addr_spec)[1]


def has_line_break(text: str) -> bool:
    """True if the text holds a CR or LF: such a value can forge a header or a command."""
    return "\r" in text or "\n" in text


class _Scanner:
    """Walks a string keeping track of quotes, comments, angle brackets and escapes."""

    def __init__(self, text: str) -> None:
        self.text = text

    def top_level_positions(self, stops: frozenset[str]) -> list[int]:
        """Indexes of chars in `stops` that stand outside quotes, comments and <...>."""
        found: list[int] = []
        in_quote = False
        comment = 0
        angle = 0
        i = 0
        text = self.text
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            if in_quote:
                if ch == '"':
                    in_quote = False
            elif comment:
                if ch == "(":
                    comment += 1
                elif ch == ")":
                    comment -= 1
            else:
                if angle == 0 and ch in stops:
                    found.append(i)
                if ch == '"':
                    in_quote = True
                elif ch == "(":
                    comment = 1
                elif ch == "<":
                    angle += 1
                elif ch == ">" and angle:
                    angle -= 1
            i += 1
        return found


def check_balance(text: str) -> None:
    """Raise AddressSyntaxError with sendmail's words for unbalanced quotes, () or <>."""
    in_quote = False
    comment = 0
    angle = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if in_quote:
            in_quote = ch != '"'
        elif comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
        elif ch == '"':
            in_quote = True
        elif ch == "(":
            comment = 1
        elif ch == ")":
            raise AddressSyntaxError("Unbalanced ')'")
        elif ch == "<":
            angle += 1
        elif ch == ">":
            if not angle:
                raise AddressSyntaxError("Unbalanced '>'")
            angle -= 1
        i += 1
    if in_quote:
        raise AddressSyntaxError("Unbalanced '\"'")
    if comment:
        raise AddressSyntaxError("Unbalanced '('")
    if angle:
        raise AddressSyntaxError("Unbalanced '<'")


def _split_at(text: str, positions: list[int]) -> list[str]:
    pieces: list[str] = []
    start = 0
    for pos in positions:
        pieces.append(text[start:pos])
        start = pos + 1
    pieces.append(text[start:])
    return pieces


def split_commas(text: str) -> list[str]:
    """The items of a list split at the commas outside quotes, comments and angle
    brackets (route addresses keep theirs), trimmed, empty ones dropped; no groups and
    no old-style blanks: an alias's right-hand side, an address header's items."""
    pieces = _split_at(text, _Scanner(text).top_level_positions(frozenset(",")))
    return [item for piece in pieces if (item := piece.strip())]


def is_old_style(text: str) -> bool:
    """sendmail's heuristic: a list with no `,;<(` may be separated by spaces."""
    return not any(ch in _NEW_STYLE_MARKS for ch in text)


def split_list(text: str, *, old_style: bool = False) -> list[str]:
    """The items of a recipient list, trimmed, empty ones dropped, groups left whole.

    With `old_style` (sendmail's OldStyleHeaders, on in stock configs) a list with no
    `,;<(` is separated by spaces too: `To: alice bob` names two recipients.
    """
    stops = frozenset(",")
    if old_style and is_old_style(text):
        stops = frozenset(", \t\r\n")
    scanner = _Scanner(text)
    items: list[str] = []
    pending = ""
    for piece in _split_at(text, scanner.top_level_positions(stops)):
        # A group (`name: a, b;`) spans commas: keep its pieces together until the `;`.
        candidate = f"{pending},{piece}" if pending else piece
        if _open_group(candidate):
            pending = candidate
            continue
        pending = ""
        if candidate.strip():
            items.append(candidate.strip())
    if pending.strip():
        items.append(pending.strip())
    return items


def _open_group(text: str) -> bool:
    scanner = _Scanner(text)
    colons = scanner.top_level_positions(frozenset(":"))
    if not colons or _looks_like_route(text):
        return False
    return not scanner.top_level_positions(frozenset(";"))


def _looks_like_route(text: str) -> bool:
    # `@a,@b:user@c` outside brackets is an old source route, not a group.
    return text.lstrip().startswith("@")


def strip_comments(text: str) -> str:
    """The text with its (comments) removed; quoted strings are kept as they are."""
    out: list[str] = []
    in_quote = False
    comment = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            if not comment:
                out.append(text[i : i + 2])
            i += 2
            continue
        if comment:
            comment += {"(": 1, ")": -1}.get(ch, 0)
        elif in_quote:
            out.append(ch)
            in_quote = ch != '"'
        elif ch == "(":
            comment = 1
        else:
            out.append(ch)
            in_quote = ch == '"'
        i += 1
    return "".join(out)


def _collapse(text: str) -> str:
    """Drop the unquoted whitespace of an addr-spec (`alice @ example.com`)."""
    out: list[str] = []
    in_quote = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            in_quote = not in_quote
        if in_quote or not ch.isspace():
            out.append(ch)
        i += 1
    return "".join(out)


def parse_item(item: str, *, group: str | None = None) -> Address:
    """The address in one list item: `Name <addr>`, `addr (Name)`, `<@route:addr>`, `addr`."""
    item = item.strip()
    check_balance(item)
    angle = _Scanner(item).top_level_positions(frozenset("<"))
    if angle:
        start = angle[0]
        end = item.rfind(">")
        inside = item[start + 1 : end].strip()
        display = strip_comments(item[:start]).strip()
        inside = _collapse(strip_comments(inside))
        if inside.startswith("@"):
            # Source route `@a,@b:user@c`: RFC 5321 says to ignore the route.
            colon = _Scanner(inside).top_level_positions(frozenset(":"))
            inside = inside[colon[0] + 1 :] if colon else inside
        return Address(text=item, addr_spec=inside, display_name=display, group=group)
    bare = strip_comments(item)
    return Address(
        text=item, addr_spec=_collapse(bare), display_name=_comment_text(item), group=group
    )


def _comment_text(item: str) -> str:
    """The first comment of an item, without its parentheses (`a@b (Joe)` -> `Joe`)."""
    start = _Scanner(item).top_level_positions(frozenset("("))
    if not start:
        return ""
    depth = 0
    for i in range(start[0], len(item)):
        if item[i] == "(":
            depth += 1
        elif item[i] == ")":
            depth -= 1
            if depth == 0:
                return item[start[0] + 1 : i].strip()
    return ""


def parse_list(text: str, *, old_style: bool = False) -> list[Address]:
    """Every address of a recipient list. A group contributes its members; an empty group
    (`undisclosed-recipients:;`) is kept as one Address with `empty_group` set, for the
    caller to report as sendmail does (EMPTY_GROUP_ERROR)."""
    addresses: list[Address] = []
    for item in split_list(text, old_style=old_style):
        scanner = _Scanner(item)
        colons = scanner.top_level_positions(frozenset(":"))
        if colons and not _looks_like_route(item):
            name = item[: colons[0]].strip()
            body = item[colons[0] + 1 :]
            semi = _Scanner(body).top_level_positions(frozenset(";"))
            if semi:
                body = body[: semi[0]]
            members = [m for m in split_list(body) if m.strip()]
            if not members:
                addresses.append(Address(text=item, addr_spec="", group=name, empty_group=True))
                continue
            addresses.extend(parse_item(m, group=name) for m in members)
            continue
        addresses.append(parse_item(item))
    return addresses


def split_addr_spec(addr_spec: str) -> tuple[str, str | None]:
    """(local part, domain) at the last `@` outside quotes; domain None if there is none."""
    ats = _Scanner(addr_spec).top_level_positions(frozenset("@"))
    if not ats:
        return addr_spec, None
    at = ats[-1]
    return addr_spec[:at], addr_spec[at + 1 :]


def domain_of(addr_spec: str) -> str | None:
    return split_addr_spec(addr_spec)[1]


def local_part_of(addr_spec: str) -> str:
    return split_addr_spec(addr_spec)[0]


def unquote_local_part(local: str) -> str:
    """`"joe user"` -> `joe user`; backslash escapes undone."""
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = local[1:-1]
    out: list[str] = []
    i = 0
    while i < len(local):
        if local[i] == "\\" and i + 1 < len(local):
            out.append(local[i + 1])
            i += 2
            continue
        out.append(local[i])
        i += 1
    return "".join(out)


def needs_quoting(local: str) -> bool:
    """True if a local part is not a dot-atom and so must be written as a quoted string."""
    if not local or local.startswith(".") or local.endswith(".") or ".." in local:
        return True
    return any((ch in _SPECIALS and ch != ".") or ch.isspace() or ord(ch) < 32 for ch in local)


def quote_local_part(local: str) -> str:
    """A local part as it must be written: unchanged if a dot-atom, else a quoted string."""
    if not needs_quoting(local):
        return local
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def qualify(addr_spec: str, domain: str) -> str:
    """`alice` -> `alice@domain`; an address that has a domain (or is empty) is unchanged."""
    if not addr_spec or domain_of(addr_spec) is not None:
        return addr_spec
    return f"{addr_spec}@{domain}"


def angle(addr_spec: str) -> str:
    """The address in angle brackets as SMTP and Return-Path write it: `<a@b>`, `<>`."""
    return f"<{addr_spec}>"


def bare(sender: str) -> str:
    """An envelope address without its angle brackets: `<a@b>` -> `a@b`, `<>` -> ``."""
    return sender.strip().removeprefix("<").removesuffix(">").strip()
