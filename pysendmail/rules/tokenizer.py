"""Sendmail's tokenizer: address text and rule text into token lists.

This module owns the character-level view of sendmail's rewriting machinery:
the metasymbols (`$*`, `$+`, `$#`, `$[` ... held as sendmail's own internal
bytes 0x80-0x9f, so a token list prints and compares as sendmail's does), the
token-type tables (built from the cf's `OperatorChars` plus the always-special
`()<>,;"\\r\\n`), `prescan()` (sendmail's address scanner with its state table,
quoted strings, comments, backslash escapes, angle-bracket counting and its
limits), `translate_dollars()` and `expand()` for rule text and macros,
`cataddr()` (tokens back into a string) and `xputs()` (a token as `-bt` prints it).

Strings are Python `str` whose code points below 256 are the bytes sendmail
sees (input is decoded latin-1); long macro and class names (`${name}`,
`$={Name}`) are interned to single code points from U+0100 up, as sendmail
interns them to one byte. Nothing here raises on bad input: problems are
reported through the `report` callback with sendmail's message text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from pysendmail.record import record

# ---------------------------------------------------------------- metasymbols

MATCHZANY = "\x90"  # $*
MATCHANY = "\x91"  # $+
MATCHONE = "\x92"  # $-
MATCHCLASS = "\x93"  # $=X
MATCHNCLASS = "\x94"  # $~X
MATCHREPL = "\x95"  # $1..$9
CANONNET = "\x96"  # $#
CANONHOST = "\x97"  # $@
CANONUSER = "\x98"  # $:
CALLSUBR = "\x99"  # $>
CONDIF = "\x9a"  # $?
CONDELSE = "\x9b"  # $|
CONDFI = "\x9c"  # $.
HOSTBEGIN = "\x9d"  # $[
HOSTEND = "\x9e"  # $]
LOOKUPBEGIN = "\x85"  # $(
LOOKUPEND = "\x86"  # $)
MACROEXPAND = "\x81"  # $x
MACRODEXPAND = "\x82"  # $&x
MATCHZERO = CANONHOST  # $@ on a left-hand side

META_BY_NAME: Mapping[str, str] = {
    "*": MATCHZANY,
    "+": MATCHANY,
    "-": MATCHONE,
    "=": MATCHCLASS,
    "~": MATCHNCLASS,
    "#": CANONNET,
    "@": CANONHOST,
    ":": CANONUSER,
    ">": CALLSUBR,
    "?": CONDIF,
    "|": CONDELSE,
    ".": CONDFI,
    "[": HOSTBEGIN,
    "]": HOSTEND,
    "(": LOOKUPBEGIN,
    ")": LOOKUPEND,
    "&": MACRODEXPAND,
}
NAME_BY_META: Mapping[str, str] = {v: k for k, v in META_BY_NAME.items()}

# ---------------------------------------------------------------- limits (conf.h)

MAXNAME = 256  # longest token, and addresses (less one) in invalidaddr()
MAXATOM = 1000  # most tokens in one address (8.17 takes 254 dots)
PSBUFSIZE = MAXNAME + MAXATOM  # prescan's buffer: characters plus one NUL per token
MAXSHORTSTR = 203  # an address shortened in a message
MAXLINE = 2048  # an input line of -bt

# ---------------------------------------------------------------- long macro names

_name_lock = threading.Lock()
_id_by_name: dict[str, str] = {}
_name_by_id: dict[str, str] = {}


def macro_id(name: str) -> str:
    """The one-character id of a macro or class name: `j` -> `j`, `{VirtHost}` -> U+01xx."""
    if name.startswith("{") and name.endswith("}"):
        name = name[1:-1]
    if len(name) == 1:
        return name
    found = _id_by_name.get(name)
    if found is not None:
        return found
    with _name_lock:
        found = _id_by_name.get(name)
        if found is None:
            found = chr(0x100 + len(_id_by_name))
            _id_by_name[name] = found
            _name_by_id[found] = name
        return found


def macro_name(mid: str) -> str:
    """The written name of a macro id: `j` or `{VirtHost}`."""
    if len(mid) == 1 and ord(mid) < 0x100:
        return mid
    return "{" + _name_by_id.get(mid, "?") + "}"


def is_long_id(mid: str) -> bool:
    return len(mid) == 1 and ord(mid) >= 0x100


# ---------------------------------------------------------------- token tables

OPR, ATM, QST, SPC, ONE, ILL = range(6)
_M, _B = 0o20, 0o40
_STATE_TAB = (
    (OPR | _B, ATM | _B, QST | _B, SPC | _M | _B, ONE | _B, ILL | _M | _B),
    (OPR | _B, ATM, QST | _B, SPC | _M | _B, ONE | _B, ILL | _M | _B),
    (QST, QST, OPR, QST, QST, QST),
    (OPR, ATM, QST, SPC | _M, ONE, ILL | _M | _B),
    (OPR, OPR, OPR, OPR, OPR, OPR),
    (OPR | _B, ATM | _B, QST | _B, SPC | _M | _B, ONE | _B, ILL | _M),
)
DELIMCHARS = "()<>,;\r\n"
DEFAULT_OPERATOR_CHARS = ".:@[]"


def _base_table(comments: bool) -> list[int]:
    table = [ATM] * 256
    for c in range(0x09, 0x0E):
        table[c] = SPC
    table[ord(" ")] = SPC
    table[ord('"')] = QST
    if comments:
        table[ord("(")] = SPC
        table[ord(")")] = SPC
    for c in range(0x80, 0xA0):
        table[c] = OPR
    for meta in (MACRODEXPAND, MATCHCLASS, MATCHNCLASS, MATCHREPL):
        table[ord(meta)] = ONE
    return table


@record(frozen=True)
class TokenTables:
    """The token-type tables of one configuration (they depend on `OperatorChars`)."""

    address: tuple[int, ...]  # addresses: comments in parentheses are dropped
    no_comments: tuple[int, ...]  # rule text and -bt input at config level >= 9
    operator_chars: str

    @classmethod
    def build(cls, operator_chars: str | None = None) -> TokenTables:
        ops = (DEFAULT_OPERATOR_CHARS if operator_chars is None else operator_chars) + DELIMCHARS
        tables = []
        for comments in (True, False):
            table = _base_table(comments)
            for ch in ops:
                code = ord(ch)
                if code < 256 and table[code] == ATM:
                    table[code] = OPR
            tables.append(tuple(table))
        return cls(tables[0], tables[1], ops)

    def kind(self, ch: str) -> int:
        code = ord(ch)
        return self.address[code] if code < 256 else ATM


DEFAULT_TABLES = TokenTables.build()

Report = Callable[[str], None]


def _ignore(_message: str) -> None:
    return None


@record
class Scan:
    """What prescan() found: the tokens (None on a fatal error) and where it stopped."""

    tokens: list[str] | None
    end: int  # index in the text of the delimiter (or the end)


# prescan()'s results by text, per token table (kept alive beside its results), for the
# texts that scanned without a message; emptied when it holds SCANNED_KEPT texts.
SCANNED_KEPT = 4096
_scanned: dict[int, tuple[Sequence[int], dict[tuple[str, str, bool, int], Scan]]] = {}


def prescan(
    text: str,
    delim: str = "\0",
    table: Sequence[int] | None = None,
    *,
    ignore: bool = False,
    report: Report = _ignore,
    bufsize: int = PSBUFSIZE,
) -> Scan:
    """Split `text` into tokens as sendmail's prescan() does.

    `delim` ends the address (outside quotes, comments and angle brackets); `report`
    receives sendmail's messages ("553 Unbalanced '<'", ...). Returns tokens None when
    sendmail gives up (address too long, too many tokens, token too long). The same text
    scans the same way every time: a scan that reported nothing is kept and copied.
    """
    if table is None:
        table = DEFAULT_TABLES.address
    kept = _scanned.get(id(table))
    if kept is None or kept[0] is not table:
        if len(_scanned) >= 8:  # the tables of configurations read before a reload
            _scanned.clear()
        kept = _scanned[id(table)] = (table, {})
    results = kept[1]
    key = (text, delim, ignore, bufsize)
    found = results.get(key)
    if found is None:
        said: list[str] = []
        found = _prescan(text, delim, table, ignore=ignore, report=said.append, bufsize=bufsize)
        for message in said:
            report(message)
        if said:
            return found
        if len(results) >= SCANNED_KEPT:
            results.clear()
        results[key] = found
    return Scan(None if found.tokens is None else list(found.tokens), found.end)


def _prescan(
    text: str,
    delim: str,
    table: Sequence[int],
    *,
    ignore: bool,
    report: Report,
    bufsize: int,
) -> Scan:
    tokens: list[str] = []
    used = 0  # characters stored in sendmail's pvpbuf, NULs included
    limit = bufsize - 5
    bslash = False
    route_syntax = False
    cmntcnt = 0
    anglecnt = 0
    state = ATM
    c: str | None = None
    p = 0
    n = len(text)
    comment_paren = table[ord("(")] == SPC

    def stop_at() -> int:
        return p - 1 if p > 0 else 0

    while True:
        tok: list[str] = []
        while True:
            if c is not None and not bslash:
                if used >= limit:
                    report("553 5.1.1 Address too long")
                    return Scan(None, stop_at())
                if c == "\xff":
                    c = "\x7f"
                tok.append(c)
                used += 1
            c = text[p] if p < n else "\0"
            p += 1
            if c == "\0":
                if ignore:
                    break
                if state == QST:
                    report("553 Unbalanced '\"'")
                    c = '"'
                elif cmntcnt > 0:
                    report("553 Unbalanced '('")
                    c = ")"
                elif anglecnt > 0:
                    c = ">"
                    report("553 Unbalanced '<'")
                else:
                    break
                p -= 1
            elif c == delim and cmntcnt <= 0 and state != QST:
                if anglecnt <= 0:
                    break
                if delim == "," and not route_syntax:
                    report("553 Unbalanced '<'")
                    c = ">"
                    p -= 1
            if bslash:
                bslash = False
                if cmntcnt > 0:
                    c = None
                    continue
                if c != "!" or state == QST:
                    if used >= limit:
                        report("553 5.1.1 Address too long")
                        return Scan(None, stop_at())
                    tok.append("\\")
                    used += 1
                    continue
            if c == "\\":
                bslash = True
            elif state == QST:
                pass
            elif c == "(" and comment_paren:
                cmntcnt += 1
                c = None
            elif c == ")" and comment_paren:
                if cmntcnt <= 0:
                    report("553 Unbalanced ')'")
                    c = None
                else:
                    cmntcnt -= 1
            elif cmntcnt > 0:
                c = None
            elif c == "<":
                q = p
                while q < n and text[q] in " \t\n\r\f\v":
                    q += 1
                anglecnt += 1
                if q < n and text[q] == "@":
                    route_syntax = True
            elif c == ">":
                if anglecnt <= 0:
                    report("553 Unbalanced '>'")
                    c = None
                else:
                    anglecnt -= 1
                route_syntax = False
            elif delim == " " and c in " \t\n\r\f\v":
                c = " "
            if c is None:
                continue
            if c == delim and anglecnt <= 0 and state != QST:
                break
            code = ord(c)
            newstate = _STATE_TAB[state][table[code] if code < 256 else ATM]
            state = newstate & 0o17
            if state == ILL:
                if " " <= c <= "~":
                    report(f"553 Illegal character {c}")
                else:
                    report(f"553 Illegal character 0x{code & 0xFF:02x}")
            if newstate & _M:
                c = None
            if newstate & _B:
                break
        if tok:
            if used >= limit:
                report("553 5.1.1 Address too long")
                return Scan(None, stop_at())
            used += 1
            if len(tokens) >= MAXATOM:
                report("553 5.1.0 prescan: too many tokens")
                return Scan(None, stop_at())
            if len(tok) + 1 > MAXNAME:
                report("553 5.1.0 prescan: token too long")
                return Scan(None, stop_at())
            tokens.append("".join(tok))
        if c == "\0" or (c == delim and anglecnt <= 0):
            break
    return Scan(tokens, stop_at())


# ---------------------------------------------------------------- macros in text


def translate_dollars(text: str) -> str:
    """Turn written `$x` sequences into sendmail's internal bytes (readcf's first step)."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "{":
            end = text.find("}", i + 2)
            if end < 0:
                out.append(MACROEXPAND + macro_id(text[i + 2 :]))
                break
            out.append(MACROEXPAND + macro_id(text[i + 2 : end]))
            i = end + 1
            continue
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if ascii_digits(nxt):
            out.append(MATCHREPL + nxt)
            i += 2
            continue
        meta = META_BY_NAME.get(nxt)
        if meta is None:
            out.append(MACROEXPAND + nxt)
            i += 2
            continue
        out.append(meta)
        i += 2
        if meta in (MATCHCLASS, MATCHNCLASS, MACRODEXPAND) and i < n:
            if text[i] == "{":
                end = text.find("}", i + 1)
                end = n if end < 0 else end
                out.append(macro_id(text[i + 1 : end]))
                i = end + 1
            else:
                out.append(text[i])
                i += 1
    return "".join(out)


MacroLookup = Callable[[str], "str | None"]


def expand(text: str, lookup: MacroLookup, *, depth: int = 0) -> str:
    """sendmail's expand(): replace `\\x81x` macro references, honour `$? $| $.`."""
    out: list[str] = []
    skipping = False
    skiplev = 0
    iflev = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == CONDIF and i + 1 < n:
            iflev += 1
            mid = text[i + 1]
            i += 2
            if skipping:
                skiplev += 1
            else:
                value = lookup(mid)
                skipping = value is None or value == ""
            continue
        if ch == CONDELSE:
            if iflev == 0:
                out.append(ch)
                i += 1
                continue
            if skiplev == 0:
                skipping = not skipping
            i += 1
            continue
        if ch == CONDFI:
            if iflev == 0:
                out.append(ch)
                i += 1
                continue
            iflev -= 1
            if skiplev == 0:
                skipping = False
            if skipping:
                skiplev -= 1
            i += 1
            continue
        if ch == MACROEXPAND and i + 1 < n:
            mid = text[i + 1]
            i += 2
            if skipping:
                continue
            value = lookup(mid)
            if value:
                if depth < 20 and (MACROEXPAND in value or CONDIF in value):
                    value = expand(value, lookup, depth=depth + 1)
                out.append(value)
            continue
        if not skipping:
            out.append(ch)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------- tokens back to text


def cataddr(
    tokens: Iterable[str], spacesub: str, table: Sequence[int] = DEFAULT_TABLES.address
) -> str:
    """Join tokens as sendmail's cataddr(): `spacesub` between two adjacent atoms."""
    out: list[str] = []
    prev_atom = False
    for token in tokens:
        if not token:
            continue
        first = ord(token[0])
        now_atom = (table[first] if first < 256 else ATM) == ATM
        if prev_atom and now_atom and spacesub:
            out.append(spacesub)
        out.append(token)
        last = ord(token[-1])
        prev_atom = (table[last] if last < 256 else ATM) == ATM
    return "".join(out)


def xputs(text: str) -> str:
    """A string as sendmail's xputs() prints it: metasymbols as `$x`, controls as `^X`."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        i += 1
        code = ord(ch)
        if 0x80 <= code < 0x100:
            if ch == MATCHREPL:
                out.append("$")
                if i < n:
                    out.append(_printable(text[i]))
                    i += 1
                continue
            if ch in (MACROEXPAND, MACRODEXPAND):
                out.append("$&" if ch == MACRODEXPAND else "$")
                if i < n:
                    if text[i] in "=~&?":
                        out.append(text[i])
                        i += 1
                    if i < n:
                        out.append(macro_name(text[i]))
                        i += 1
                continue
            name = NAME_BY_META.get(ch)
            if name is not None and ch != MACRODEXPAND:
                out.append("$" + name)
                if ch in (MATCHCLASS, MATCHNCLASS) and i < n:
                    out.append(macro_name(text[i]))
                    i += 1
                continue
            out.append("M-")
            code &= 0x7F
            ch = chr(code)
        elif code >= 0x100:
            out.append(macro_name(ch))
            continue
        out.append(_printable(ch))
    return "".join(out)


def _printable(ch: str) -> str:
    code = ord(ch)
    if 0x20 <= code < 0x7F:
        return ch
    escaped = {"\n": "n", "\r": "r", "\t": "t"}.get(ch)
    if escaped is not None:
        return "\\" + escaped
    return "^" + chr((code ^ 0o100) & 0x7F)


def shortenstring(text: str, limit: int = MAXSHORTSTR) -> str:
    """sendmail's shortenstring(): keep both ends of a long string around `...`."""
    if len(text) < limit:
        return text
    half = (limit - 3) // 2
    return text[:half] + "..." + text[len(text) - half :]


def printav(tokens: Iterable[str]) -> str:
    """A token list as rewrite() traces it: each token after a space."""
    return "".join(" " + xputs(token) for token in tokens)


def ascii_digits(text: str) -> bool:
    """True for a non-empty string of ASCII digits (str.isdigit() also takes '³')."""
    return bool(text) and text.isascii() and text.isdigit()
