"""The map classes that rulesets look things up in (`K` lines and the built-in maps).

This module owns the lookup behaviour of each map class the stock rulesets use —
`hash` (and `btree`/`dbm`, from the source the tables layer opens), `dequote`,
`host`, `macro`, `arith`, `sequence`, `switch`, `regex`, `user`, `stab`, `implicit`,
`text` — and the map flags (`-a -o -T -f -m -q -k -v -z -D -S -t -N -O -A`) that
change the key or the result. A lookup returns (result or None, sysexits status)
as sendmail's map_lookup functions do; it never raises.

Files are opened through an injected `open_source` callable (the tables layer's
compiled-map reader), the host lookup through an injected `HostResolver`, and the
user lookup through an injected callable, so the maps are testable without the
machine's own files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Protocol

from pysendmail.record import field, record
from pysendmail.rules.memo import STATIC
from pysendmail.rules.tokenizer import ascii_digits as _ascii_digits
from pysendmail.sysexits import ExitCode

EX_OK = int(ExitCode.OK)
EX_NOTFOUND = int(ExitCode.NOHOST)
EX_TEMPFAIL = int(ExitCode.TEMPFAIL)
NULL_MX = -2  # getmxrr(): the domain says it takes no mail (RFC 7505)
EX_UNAVAILABLE = int(ExitCode.UNAVAILABLE)
EX_CONFIG = int(ExitCode.CONFIG)

Result = tuple["str | None", int]


# ---------------------------------------------------------------- flags


@record
class MapFlags:
    """The parsed `-x` flags of a `K` line, and what is left (file name, class args)."""

    append: str | None = None  # -a: added to a found value
    tempfail_append: str | None = None  # -T: added to the key on a temporary failure
    optional: bool = False  # -o
    fold_case: bool = True  # -f turns it off
    match_only: bool = False  # -m
    keep_quotes: bool = False  # -q
    key_column: str | None = None  # -k
    value_column: str | None = None  # -v
    column_delim: str | None = None  # -z
    defer: bool = False  # -D
    spacesub: str | None = None  # -S
    no_defer: bool = False  # -t
    try_null: bool = False  # -N
    try_no_null: bool = False  # -O
    append_values: bool = False  # -A
    other: dict[str, str] = field(default_factory=dict)  # class-specific flags
    rest: list[str] = field(default_factory=list)  # words after the flags


_BARE = set("ofmqDtNOAn")


def parse_map_args(args: Sequence[str]) -> MapFlags:
    """Split a `K` line's arguments (after the class) into flags and the rest."""
    flags = MapFlags()
    words = list(args)
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or len(word) < 2:
            break
        letter = word[1]
        value = word[2:]
        if letter not in _BARE and value == "" and i + 1 < len(words) and letter in "akvzST":
            # sendmail reads the value glued to the flag; a separate word is the next arg
            value = ""
        i += 1
        if letter == "a":
            flags.append = value
        elif letter == "T":
            flags.tempfail_append = value
        elif letter == "o":
            flags.optional = True
        elif letter == "f":
            flags.fold_case = False
        elif letter == "m":
            flags.match_only = True
        elif letter == "q":
            flags.keep_quotes = True
        elif letter == "k":
            flags.key_column = value
        elif letter == "v":
            flags.value_column = value
        elif letter == "z":
            flags.column_delim = value
        elif letter == "D":
            flags.defer = True
        elif letter == "S":
            flags.spacesub = value[:1] or None
        elif letter == "t":
            flags.no_defer = True
        elif letter == "N":
            flags.try_null = True
        elif letter == "O":
            flags.try_no_null = True
        elif letter == "A":
            flags.append_values = True
        else:
            flags.other[letter] = value
    flags.rest = words[i:]
    return flags


def map_rewrite(value: str, args: Sequence[str] | None, append: str | None) -> str:
    """sendmail's map_rewrite(): `%0`-`%9` from the lookup's args, `%%`, then the -a text."""
    out: list[str] = []
    if args is None:
        out.append(value)
    else:
        i = 0
        n = len(value)
        while i < n:
            ch = value[i]
            i += 1
            if ch != "%":
                out.append(ch)
                continue
            ch = value[i] if i < n else "%"
            i += 1
            if ch == "%":
                out.append("%")
                continue
            if not _ascii_digits(ch):
                out.append("%" + ch)
                continue
            index = int(ch)
            if index < len(args):
                out.append(args[index])
    if append:
        out.append(append)
    return "".join(out)


# ---------------------------------------------------------------- base


class Map:
    """A named map with its flags; subclasses implement `_find`."""

    map_class = ""

    def __init__(self, name: str, flags: MapFlags | None = None) -> None:
        self.name = name
        self.flags = flags or MapFlags()
        self.spacesub: str | None = self.flags.spacesub
        self.keep_quotes = self.flags.keep_quotes
        self.defer_tempfail = not self.flags.no_defer
        self.is_open = True

    def _find(self, key: str, args: Sequence[str]) -> Result:
        return None, EX_NOTFOUND

    def _fold(self, key: str) -> str:
        return key.lower() if self.flags.fold_case else key

    def _found(self, key: str, value: str, args: Sequence[str]) -> str:
        if self.flags.match_only:
            return map_rewrite(key, None, self.flags.append)
        return map_rewrite(value, args, self.flags.append)

    def memo_stamp(self) -> object | None:
        """What this map's answers depend on that may change while the world lives, for
        rules/memo.py: STATIC when nothing, None when answers must not be remembered
        (the default: live data, DNS, side effects)."""
        return None

    def lookup(self, key: str, args: Sequence[str]) -> Result:
        try:
            result, status = self._find(key, args)
        except Exception:  # a broken source is a temporary failure, never a crash
            result, status = None, EX_TEMPFAIL
        if result is None and status == EX_TEMPFAIL and self.flags.tempfail_append is not None:
            return key + self.flags.tempfail_append, status
        return result, status


class KeyValueMap(Map):
    """`hash`, `btree`, `dbm`, `implicit`: a key->value table (already read from its source)."""

    def __init__(
        self,
        name: str,
        flags: MapFlags | None,
        table: Mapping[str, str] | Callable[[str], str | None] | None,
        map_class: str = "hash",
    ) -> None:
        super().__init__(name, flags)
        self.map_class = map_class
        self.table = table
        self.is_open = table is not None

    def memo_stamp(self) -> object | None:
        """A table held in memory never changes; a lookup function says what its data is
        (`data_stamp()` on it or on the object it is a method of: the files it read),
        and without that its answers are not remembered."""
        table = self.table
        if table is None or isinstance(table, Mapping):
            return STATIC
        stamp_of = getattr(table, "data_stamp", None) or getattr(
            getattr(table, "__self__", None), "data_stamp", None
        )
        if stamp_of is None:
            return None
        try:
            return stamp_of()
        except Exception:  # a map that cannot say: its answers are not remembered
            return None

    def _get(self, key: str) -> str | None:
        table = self.table
        if table is None:
            return None
        if callable(table):
            return table(key)
        return table.get(key)

    def _find(self, key: str, args: Sequence[str]) -> Result:
        if self.table is None:
            return None, EX_OK if self.flags.optional else EX_UNAVAILABLE
        folded = self._fold(key)
        value = self._get(folded)
        if value is None:
            return None, EX_OK
        return self._found(key, value, args), EX_OK


class TextMap(Map):
    """`text`: a flat file with columns (-k key column, -v value column, -z delimiter)."""

    map_class = "text"

    def __init__(self, name: str, flags: MapFlags | None, path: str | None) -> None:
        super().__init__(name, flags)
        self.path = path

    def _find(self, key: str, args: Sequence[str]) -> Result:
        if not self.path:
            return None, EX_UNAVAILABLE
        try:
            text = Path(self.path).read_text(encoding="latin-1")
        except OSError:
            return None, EX_OK if self.flags.optional else EX_UNAVAILABLE
        kcol = int(self.flags.key_column or 0)
        vcol = int(self.flags.value_column or 1)
        delim = self.flags.column_delim
        want = self._fold(key)
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            cols = line.split(delim) if delim else line.split()
            if kcol >= len(cols) or self._fold(cols[kcol]) != want:
                continue
            value = cols[vcol] if vcol < len(cols) else ""
            return self._found(key, value, args), EX_OK
        return None, EX_OK


class DequoteMap(Map):
    """`dequote`: the key with its double quotes removed, when that leaves one word."""

    map_class = "dequote"

    def __init__(self, name: str, flags: MapFlags | None) -> None:
        super().__init__(name, flags)
        self.keep_quotes = True
        # dequote_init() never sets map_spacesub: only -S/-s make a blank stand for something
        self.blank = self.flags.spacesub or self.flags.other.get("s", "")[:1]

    def memo_stamp(self) -> object | None:
        return STATIC

    def _find(self, key: str, args: Sequence[str]) -> Result:
        out: list[str] = []
        anglecnt = cmntcnt = quotecnt = spacecnt = 0
        quotemode = bslashmode = False
        for ch in key:
            if bslashmode:
                bslashmode = False
                out.append(ch)
                continue
            if ch == " " and self.blank:
                ch = self.blank
            if ch == "\\":
                bslashmode = True
            elif ch == "(":
                cmntcnt += 1
            elif ch == ")":
                cmntcnt -= 1
                if cmntcnt < 0:
                    return None, EX_OK
            elif ch in " \t":
                spacecnt += 1
            if cmntcnt > 0:
                out.append(ch)
                continue
            if ch == '"':
                quotemode = not quotemode
                quotecnt += 1
                continue
            if ch == "<":
                anglecnt += 1
            elif ch == ">":
                anglecnt -= 1
                if anglecnt < 0:
                    return None, EX_OK
            out.append(ch)
        if anglecnt or cmntcnt or bslashmode or quotemode or quotecnt <= 0 or spacecnt:
            return None, EX_OK
        return map_rewrite("".join(out), None, self.flags.append), EX_OK


class HostResolver(Protocol):
    """The host lookups `$[ $]`, `/canon` and the `host` map need."""

    def canonical_name(self, name: str) -> tuple[str | None, int]:
        """getcanonname(): the canonical name of `name`, or None with a status."""
        ...

    def name_of_address(self, address: str) -> tuple[str | None, int]:
        """gethostbyaddr(): the primary name of an IP address (or None) and a status."""
        ...


class HostMap(Map):
    """`host`: canonify a host name (or name an `[address]`) through the resolver."""

    map_class = "host"

    def __init__(self, name: str, flags: MapFlags | None, resolver: HostResolver) -> None:
        super().__init__(name, flags)
        self.resolver = resolver
        self.cache: dict[str, Result] = {}

    def memo_stamp(self) -> object | None:
        """A resolver that asks DNS is live: only a files-only one is static."""
        stamp_of = getattr(self.resolver, "memo_stamp", None)
        return stamp_of() if stamp_of is not None else None

    def _find(self, key: str, args: Sequence[str]) -> Result:
        if key.startswith("["):
            close = key.find("]")
            if close < 0:
                return None, EX_OK
            answer, status = self.resolver.name_of_address(key[1:close])
        else:
            answer, status = self.resolver.canonical_name(key)
        if answer is None:
            return None, status
        if self.flags.match_only:
            return map_rewrite(key, None, self.flags.append), EX_OK
        return map_rewrite(answer, args, self.flags.append), EX_OK


class MacroMap(Map):
    """`macro`: `$(macro {name} $@ value $)` sets a macro (unsets with no value); returns ""."""

    map_class = "macro"
    sets_macro = True  # the rules engine notes which macro a call sets (rules/memo.py)

    def lookup_in(self, key: str, args: Sequence[str], macros: MutableMapping[str, str]) -> Result:
        """Set or clear the macro `key` in the caller's own macros."""
        from pysendmail.rules.tokenizer import macro_id

        mid = macro_id(key)
        if len(args) > 1 and args[1]:
            macros[mid] = args[1]
        else:
            macros.pop(mid, None)
        return "", EX_OK

    def _find(self, key: str, args: Sequence[str]) -> Result:
        return "", EX_OK


class ArithMap(Map):
    """`arith`: `$(arith op $@ a $@ b $)` with + - * / l (less) = (equal) | & % r (range)."""

    map_class = "arith"

    def _find(self, key: str, args: Sequence[str]) -> Result:
        if len(args) < 3:
            return None, EX_CONFIG
        try:
            left = int(args[1])
            right = int(args[2])
        except ValueError:
            return None, EX_CONFIG
        op = key[:1]
        if op == "+":
            value = left + right
        elif op == "-":
            value = left - right
        elif op == "*":
            value = left * right
        elif op == "/":
            if right == 0:
                return None, EX_CONFIG
            value = int(left / right)
        elif op == "%":
            if right == 0:
                return None, EX_CONFIG
            value = left - right * int(left / right)
        elif op == "|":
            value = left | right
        elif op == "&":
            value = left & right
        elif op == "l":
            return ("TRUE" if left < right else "FALSE"), EX_OK
        elif op == "=":
            return ("TRUE" if left == right else "FALSE"), EX_OK
        else:
            return None, EX_CONFIG
        return str(value), EX_OK


class SequenceMap(Map):
    """`sequence`: the first of its maps that finds the key."""

    map_class = "sequence"

    def __init__(self, name: str, flags: MapFlags | None, members: Sequence[Map]) -> None:
        super().__init__(name, flags)
        self.members = list(members)

    def _find(self, key: str, args: Sequence[str]) -> Result:
        tempfail = False
        for member in self.members:
            value, status = member.lookup(key, args)
            if value is not None:
                return value, status
            if status == EX_TEMPFAIL:
                tempfail = True
        return None, EX_TEMPFAIL if tempfail else EX_NOTFOUND


class RegexMap(Map):
    """`regex`: a POSIX extended expression; -n inverts, -s picks substrings, -d delimits."""

    map_class = "regex"

    def __init__(self, name: str, flags: MapFlags | None) -> None:
        super().__init__(name, flags)
        pattern = " ".join(self.flags.rest)
        case = 0 if "f" not in self.flags.other and not self.flags.fold_case else re.IGNORECASE
        try:
            self.regex: re.Pattern[str] | None = re.compile(pattern, case)
        except re.error:
            self.regex = None
        self.invert = "n" in self.flags.other
        self.delim = self.flags.other.get("d", " ")[:1] or " "
        picks = self.flags.other.get("s", "")
        self.picks = [int(p) for p in picks.split(",") if _ascii_digits(p)]

    def memo_stamp(self) -> object | None:
        return STATIC

    def _find(self, key: str, args: Sequence[str]) -> Result:
        if self.regex is None:
            return None, EX_CONFIG
        found = self.regex.search(key)
        if bool(found) == self.invert:
            return None, EX_OK
        if self.picks and found is not None:
            parts = [found.group(i) or "" for i in self.picks if i <= (self.regex.groups or 0)]
            return map_rewrite(self.delim.join(parts), args, self.flags.append), EX_OK
        if self.flags.match_only:
            return map_rewrite(key, None, self.flags.append), EX_OK
        return map_rewrite(key, args, self.flags.append), EX_OK


class UserMap(Map):
    """`user`: a passwd field (-v name, passwd, uid, gid, gecos, dir, shell) of a user."""

    map_class = "user"
    FIELDS = ("name", "passwd", "uid", "gid", "gecos", "dir", "shell")

    def __init__(
        self, name: str, flags: MapFlags | None, getpw: Callable[[str], Sequence[str] | None]
    ) -> None:
        super().__init__(name, flags)
        self.getpw = getpw

    def _find(self, key: str, args: Sequence[str]) -> Result:
        entry = self.getpw(key)
        if entry is None:
            return None, EX_OK
        column = self.flags.value_column
        if self.flags.match_only or column is None:
            return map_rewrite(key, None, self.flags.append), EX_OK
        if _ascii_digits(column):
            index = int(column)
        else:
            index = self.FIELDS.index(column.lower()) if column.lower() in self.FIELDS else 0
        value = str(entry[index]) if index < len(entry) else ""
        return map_rewrite(value, args, self.flags.append), EX_OK


class StabMap(Map):
    """`stab`: sendmail's own symbol table (the aliases read into memory)."""

    map_class = "stab"

    def __init__(self, name: str, flags: MapFlags | None, table: Mapping[str, str]) -> None:
        super().__init__(name, flags)
        self.table = table

    def memo_stamp(self) -> object | None:
        return STATIC

    def _find(self, key: str, args: Sequence[str]) -> Result:
        value = self.table.get(key.lower())
        if value is None:
            return None, EX_OK
        return self._found(key, value, args), EX_OK


class NullMap(Map):
    """A map whose class is unknown or could not be opened: it finds nothing."""

    def __init__(self, name: str, flags: MapFlags | None, status: int = EX_UNAVAILABLE) -> None:
        super().__init__(name, flags)
        self.status = status
        self.is_open = False

    def memo_stamp(self) -> object | None:
        return STATIC

    def _find(self, key: str, args: Sequence[str]) -> Result:
        return None, self.status


def fold_keys(table: Mapping[str, str]) -> dict[str, str]:
    """A key->value table with its keys lower-cased (what makemap stores without -f)."""
    return {key.lower(): value for key, value in table.items()}
