"""Reading sendmail.cf into a `CfFile`: every line kept with its file:line:col, nothing expanded.

The Lark grammar (grammars/sendmail_cf.lark) splits the file into logical lines and
each line into its type letter and fields; this module gives the fields meaning (macro
names, class words, `F` files with `-o` and a scanf pattern, option names, mailer
fields, map flags, ruleset names and numbers, rule LHS/RHS/comment, header conditions).

It never raises for a bad line: like sendmail, it reports the line and goes on, so a
`CfFile` carries its `diagnostics`. It raises `ConfigError` only when the file cannot
be read at all. It does not expand macros, read the files that `F` lines or `K` lines
name, or tokenize rule text (rules/ does that with the file's OperatorChars).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from pysendmail.config.model import (
    CfFile,
    ClassSource,
    FrozenMap,
    HeaderSpec,
    MailerSpec,
    MapSpec,
    Rule,
    Ruleset,
)
from pysendmail.config.options import COMPOUND_LETTERS, MACRO_LETTER, option_by_letter
from pysendmail.errors import ConfigError, Diagnostic, Location

GRAMMAR_PATH = Path(__file__).with_name("grammars") / "sendmail_cf.lark"

# Map classes whose first non-flag argument is a database or text file.
FILE_MAP_CLASSES = frozenset({"hash", "btree", "dbm", "ndbm", "text", "implicit", "cdb", "sqlite"})

# Map flags that take no argument; every other flag letter takes the rest of its word.
_BARE_MAP_FLAGS = frozenset("ANfmoqSDl")

_LINE_KINDS = {
    "V": "version",
    "D": "macro definition",
    "C": "class",
    "F": "file class",
    "O": "option",
    "M": "mailer",
    "Q": "queue group",
    "X": "milter",
    "K": "map",
    "S": "ruleset",
    "R": "rewriting rule",
    "H": "header",
    "P": "priority",
    "T": "trusted users",
    "E": "environment",
}

_RULESET_LINE = re.compile(r"\s*(?:([0-9]{1,9})|([A-Za-z_][\w-]*)\s*(?:=\s*([0-9]{1,9}))?)\s*$")
_LOGICAL_LINE = re.compile(r"(?:[^\n]|\n(?=[ \t]))*\n")


@functools.cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        start=["start", "one"],
    )


def read_cf(path: str | Path) -> CfFile:
    """Read and parse the sendmail.cf at `path`; `ConfigError` if it cannot be read."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot open: {reason}", Location(name, 0, 0)) from exc
    return parse_cf(data.decode("utf-8", errors="surrogateescape"), name)


def parse_cf(text: str, path: str) -> CfFile:
    """Parse the text of a sendmail.cf named `path`. Never raises for bad lines."""
    text = text.replace("\r\n", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    builder = _Builder(path)
    try:
        tree = _parser().parse(text, start="start")
    except UnexpectedInput:
        # One bad line: parse line by line, so every other line is still read.
        for line_no, logical in _logical_lines(text):
            builder.add_one(logical, line_no)
    except LarkError as exc:  # pragma: no cover - lark's internal errors
        raise ConfigError(f"cannot parse: {exc}", Location(path, 1, 1)) from exc
    else:
        for item in tree.children:
            builder.add(item, 0)
    return builder.result()


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    line_no = 1
    for match in _LOGICAL_LINE.finditer(text):
        logical = match.group()
        yield line_no, logical
        line_no += logical.count("\n")


def munch(text: str, delimiter: str | None = None) -> tuple[str, int]:
    """Unquote a cf value as sendmail does: `"` toggles quoting (and is dropped),
    a backslash makes the next character literal (`\\n` `\\r` `\\f` `\\b` are control
    characters). Stops at an unquoted `delimiter`; returns the value and where it stopped."""
    out: list[str] = []
    quoted = escaped = False
    index = 0
    for index, char in enumerate(text):
        if escaped:
            out.append({"r": "\r", "n": "\n", "f": "\f", "b": "\b"}.get(char, char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted or char != delimiter:
            out.append(char)
        else:
            return "".join(out), index
    return "".join(out), len(text)


def macro_name(raw: str) -> str:
    """`x` -> "x", `{name}` -> "name", `{x}` -> "x" (a one-letter long name is the letter)."""
    if raw.startswith("{") and raw.endswith("}"):
        return raw[1:-1]
    return raw


def split_macro_definition(text: str) -> tuple[str, str]:
    """`xvalue` -> ("x", "value"), `{name}value` -> ("name", "value")."""
    if not text.startswith("{"):
        return text[:1], text[1:]
    end = text.find("}")
    if end < 0:
        return text[1:], ""
    return macro_name(text[: end + 1]), text[end + 1 :]


def split_fields(text: str) -> list[tuple[str, int]]:
    """Split comma-separated `X=value` fields (M, Q, X lines); returns each field's
    raw text and its offset in `text`. Quotes and backslashes protect commas."""
    fields: list[tuple[str, int]] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(text + ","):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            piece = text[start:index]
            stripped = piece.lstrip()
            if stripped.strip():
                fields.append((stripped.rstrip(), start + len(piece) - len(stripped)))
            start = index + 1
    return fields


class _Builder:
    """Collects the items of one file in order, with their diagnostics."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.version: tuple[str, ...] = ()
        self.macros: list[tuple[str, str, Location]] = []
        self.class_sources: list[ClassSource] = []
        self.options: list[tuple[str, str, Location]] = []
        self.mailers: list[MailerSpec] = []
        self.maps: list[MapSpec] = []
        self.rulesets: list[Ruleset] = []
        self.current_rules: list[Rule] | None = None
        self.current_ruleset: tuple[str, int | None, Location] | None = None
        self.headers: list[HeaderSpec] = []
        self.priorities: list[tuple[str, int, Location]] = []
        self.trusted: list[tuple[str, Location]] = []
        self.other: list[tuple[str, str, Location]] = []
        self.diagnostics: list[Diagnostic] = []
        self.handlers: dict[str, Callable[[Tree, int], None]] = {
            "version": self._version,
            "define": self._define,
            "class_words": self._class_words,
            "class_file": self._class_file,
            "long_option": self._long_option,
            "short_option": self._short_option,
            "mailer": self._mailer,
            "queue_group": self._other,
            "milter": self._other,
            "map": self._map,
            "ruleset": self._ruleset,
            "rule": self._rule,
            "header": self._header,
            "priority": self._priority,
            "trusted": self._trusted,
            "environ": self._other,
            "comment": lambda item, offset: None,
            "orphan": self._orphan,
            "unknown": self._unknown,
        }

    # ------------------------------------------------------------ plumbing

    def loc(self, token: Token, offset: int, skip: int = 0) -> Location:
        """Where `token` is (plus `skip` characters into it), `offset` lines down."""
        line = (token.line or 1) + offset
        column = token.column or 1
        if skip:
            before = str(token)[:skip]
            newlines = before.count("\n")
            if newlines:
                line += newlines
                column = skip - before.rfind("\n")
            else:
                column += skip
        return Location(self.path, line, column)

    def warn(self, location: Location, message: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "warning"))

    def error(self, location: Location, message: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "error"))

    def add(self, item: Tree, offset: int) -> None:
        self.handlers[str(item.data)](item, offset)

    def add_one(self, logical: str, line_no: int) -> None:
        try:
            tree = _parser().parse(logical, start="one")
        except UnexpectedInput as exc:
            self._syntax_error(logical, line_no, exc)
            return
        for item in tree.children:
            self.add(item, line_no - 1)

    def _syntax_error(self, logical: str, line_no: int, exc: UnexpectedInput) -> None:
        line = line_no + (exc.line - 1 if exc.line and exc.line > 0 else 0)
        column = exc.column if exc.column and exc.column > 0 else 1
        kind = _LINE_KINDS.get(logical[:1], "configuration")
        if isinstance(exc, UnexpectedCharacters):
            reason = f"unexpected character {logical[exc.pos_in_stream]!r}"
        elif isinstance(exc, UnexpectedToken) and exc.token.type in ("_NL", "$END"):
            reason = "line ends too early"
        elif isinstance(exc, UnexpectedToken):
            reason = f"unexpected {str(exc.token)!r}"
        else:
            reason = "cannot be parsed"
        self.error(Location(self.path, line, column), f"bad {kind} line: {reason}")

    def result(self) -> CfFile:
        self._close_ruleset()
        return CfFile(
            path=self.path,
            version=self.version,
            macros=tuple(self.macros),
            class_sources=tuple(self.class_sources),
            options=tuple(self.options),
            mailers=tuple(self.mailers),
            maps=tuple(self.maps),
            rulesets=tuple(self.rulesets),
            headers=tuple(self.headers),
            priorities=tuple(self.priorities),
            trusted_users=tuple(self.trusted),
            other=tuple(self.other),
            diagnostics=tuple(self.diagnostics),
        )

    @staticmethod
    def fields(item: Tree) -> list[Token]:
        """The line's tokens after its type letter, white space left out."""
        return [tok for tok in item.children[1:] if not tok.type.startswith("_")]

    def tokens(self, item: Tree) -> dict[str, Token]:
        return {tok.type: tok for tok in self.fields(item)}

    def line_loc(self, item: Tree, offset: int) -> Location:
        """Where the line starts: its type letter (rules keep every token, `!` in the grammar)."""
        letter = item.children[0]
        return Location(self.path, (letter.line or 1) + offset, letter.column or 1)

    # ------------------------------------------------------------ line types

    def _version(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        rest = str(toks.get("REST", "")).strip()
        loc = self.line_loc(item, offset)
        if not rest:
            self.error(loc, "bad version line: version level expected")
            return
        self.version = tuple(rest.split("/"))
        if not self.version[0].isdigit():
            self.error(Location(self.path, loc.line, 2), f"bad version level {self.version[0]!r}")

    def _define(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        name = macro_name(str(toks["MACRO_NAME"]))
        loc = self.line_loc(item, offset)
        if not name:
            self.error(self.loc(toks["MACRO_NAME"], offset), "empty macro name")
            return
        value, _ = munch(str(toks.get("REST", "")).rstrip())
        self.macros.append((name, value, loc))

    def _class_words(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        name = macro_name(str(toks["MACRO_NAME"]))
        loc = self.line_loc(item, offset)
        if not name:
            self.error(self.loc(toks["MACRO_NAME"], offset), "empty class name")
            return
        words = tuple(str(toks.get("REST", "")).split())
        self.class_sources.append(ClassSource(name, words, None, False, None, loc))

    def _class_file(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        name = macro_name(str(toks["MACRO_NAME"]))
        loc = self.line_loc(item, offset)
        if not name:
            self.error(self.loc(toks["MACRO_NAME"], offset), "empty class name")
            return
        rest = str(toks.get("REST", "")).strip()
        optional = False
        if rest.startswith("-o"):
            optional = True
            rest = rest.split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
        if not rest:
            self.error(loc, f"bad file class line: class {name}: file name expected")
            return
        if rest.startswith("|"):
            file, scanf = rest, None
        else:
            parts = rest.split(None, 1)
            file = parts[0]
            scanf = parts[1].strip() if len(parts) > 1 else None
        self.class_sources.append(ClassSource(name, (), file, optional, scanf, loc))

    def _long_option(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        name = str(toks["OPTION_NAME"])
        value = str(toks.get("REST", "")).strip()
        self.options.append((name, value, self.loc(toks["OPTION_NAME"], offset)))

    def _short_option(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        letter = str(toks["OPTION_LETTER"])
        value = str(toks.get("REST", "")).strip()
        where = self.loc(toks["OPTION_LETTER"], offset)
        if letter == MACRO_LETTER and value:
            # `OMxvalue` is the old way of writing `Dxvalue`.
            name, value = split_macro_definition(value)
            self.macros.append((name, munch(value)[0], where))
            return
        spec = option_by_letter(letter)
        name = COMPOUND_LETTERS.get(letter) or (spec.name if spec else letter)
        self.options.append((name, value, where))

    def _named_fields(
        self, item: Tree, offset: int, what: str
    ) -> tuple[str, dict[str, str], Location] | None:
        toks = self.tokens(item)
        name_tok = toks["ITEM_NAME"]
        loc = self.line_loc(item, offset)
        rest_tok = toks.get("REST")
        fields: dict[str, str] = {}
        if rest_tok is not None:
            rest = str(rest_tok)
            if rest.strip() and not rest.lstrip(" \t\n").startswith(","):
                # `Mname P=...` without the comma: sendmail allows white space too.
                rest = "," + rest
                shift = -1
            else:
                shift = 0
            for raw, at in split_fields(rest):
                key, eq, value = raw.partition("=")
                where = self.loc(rest_tok, offset, max(at + shift, 0))
                if not eq or not key.strip():
                    self.error(where, f"{what} {name_tok}: `=' expected in {raw!r}")
                    continue
                fields[key.strip()] = value.strip()
        return str(name_tok), fields, loc

    def _mailer(self, item: Tree, offset: int) -> None:
        parsed = self._named_fields(item, offset, "mailer")
        if parsed is None:
            return
        name, raw_fields, loc = parsed
        fields: dict[str, str] = {}
        for key, value in raw_fields.items():
            # Long field names (`Path=`) mean their first letter, as in sendmail.
            fields[key[0]] = value
        self.mailers.append(MailerSpec(name, FrozenMap(fields), loc))

    def _other(self, item: Tree, offset: int) -> None:
        kind = {"queue_group": "Q", "milter": "X", "environ": "E"}[str(item.data)]
        toks = self.tokens(item)
        loc = self.line_loc(item, offset)
        if kind == "E":
            self.other.append(("E", str(toks.get("REST", "")).strip(), loc))
            return
        if self._named_fields(item, offset, "queue group" if kind == "Q" else "milter"):
            text = str(toks["ITEM_NAME"]) + str(toks.get("REST", ""))
            self.other.append((kind, " ".join(text.split()), loc))

    def _map(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        loc = self.line_loc(item, offset)
        name = str(toks["MAP_NAME"])
        if "MAP_CLASS" not in toks:
            self.error(loc, f"bad map line: map {name}: class expected")
            return
        map_class = str(toks["MAP_CLASS"])
        args = tuple(str(toks.get("REST", "")).split())
        flags: dict[str, str] = {}
        file: str | None = None
        for arg in args:
            if arg.startswith("-") and len(arg) > 1 and file is None:
                letter = arg[1]
                flags["-" + letter] = "" if letter in _BARE_MAP_FLAGS else arg[2:]
            elif file is None and map_class in FILE_MAP_CLASSES:
                file = arg
        self.maps.append(MapSpec(name, map_class, args, loc, FrozenMap(flags), file))

    def _close_ruleset(self) -> None:
        if self.current_ruleset is not None and self.current_rules is not None:
            name, number, loc = self.current_ruleset
            self.rulesets.append(Ruleset(name, number, tuple(self.current_rules), loc))
        self.current_ruleset = None
        self.current_rules = None

    def _ruleset(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        loc = self.line_loc(item, offset)
        text = str(toks.get("REST", ""))
        match = _RULESET_LINE.match(text)
        if not match:
            self.error(loc, f"bad ruleset line: invalid ruleset name {text.strip()!r}")
            # Keep collecting into a ruleset nobody can call, as sendmail does.
            self._close_ruleset()
            self.current_ruleset = ("", None, loc)
            self.current_rules = []
            return
        self._close_ruleset()
        number_text, name, named_number = match.groups()
        number = int(number_text or named_number) if (number_text or named_number) else None
        self.current_ruleset = (name or "", number, loc)
        self.current_rules = []

    def _rule(self, item: Tree, offset: int) -> None:
        parts = self.fields(item)
        loc = self.line_loc(item, offset)
        lhs = str(parts[0]).strip() if parts and parts[0].type == "RULE_PART" else None
        rest = parts[1:] if lhs is not None else parts
        if lhs is None or not lhs:
            self.error(loc, "bad rewriting rule: empty left-hand side")
            return
        if not rest:
            self.error(loc, "bad rewriting rule: tab expected between left and right side")
            return
        rhs = str(rest[0]).strip() if rest[0].type == "RULE_PART" else ""
        comment = str(rest[-1]).strip() if rest[-1].type == "REST" else ""
        if self.current_rules is None:
            # Rules before any S line belong to ruleset 0, as in sendmail.
            self.current_ruleset = ("", 0, loc)
            self.current_rules = []
        self.current_rules.append(Rule(lhs, rhs, comment, loc))

    def _header(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        loc = self.line_loc(item, offset)
        condition = str(toks.get("HEADER_CONDITION", ""))[1:-1]
        flags, macro = condition, None
        if condition.startswith("$"):
            # `?${name}?` or `?$x?`: the header is added only when the macro is set.
            flags, macro = "", macro_name(condition[1:])
            if not macro:
                self.error(loc, f"bad header line: empty macro condition ?{condition}?")
                return
        value = str(toks.get("REST", "")).strip()
        self.headers.append(HeaderSpec(str(toks["HEADER_NAME"]), value, flags, macro, loc))

    def _priority(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        value_tok = toks["PRIORITY_VALUE"]
        try:
            value = int(str(value_tok))
        except ValueError:
            self.error(self.loc(value_tok, offset), f"bad priority value {str(value_tok)!r}")
            return
        self.priorities.append((str(toks["PRIORITY_NAME"]), value, self.line_loc(item, offset)))

    def _trusted(self, item: Tree, offset: int) -> None:
        toks = self.tokens(item)
        loc = self.line_loc(item, offset)
        for user in str(toks.get("REST", "")).split():
            self.trusted.append((user, loc))

    def _orphan(self, item: Tree, offset: int) -> None:
        if str(item.children[0]).strip():
            self.warn(
                self.line_loc(item, offset), "continuation line with no line above to continue"
            )

    def _unknown(self, item: Tree, offset: int) -> None:
        text = str(item.children[0])
        self.error(
            self.line_loc(item, offset),
            f"unknown configuration line {text.splitlines()[0][:40]!r}",
        )
