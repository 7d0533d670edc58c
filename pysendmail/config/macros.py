"""Expanding sendmail macro references in text: the SMTP greeting, Received:, From_ lines, -bt.

    $x        the value of one-letter macro x         ${name}   the value of a long-named macro
    $&x       the value of x, used as it is (its own macro references are not expanded)
    $?x yes $| no $.    `yes` when x is set and not empty, else `no` (the `$| no` part is
                        optional); conditionals nest

A value's own references are expanded in turn (to a fixed depth, so a macro that names
itself cannot loop). An unset macro expands to nothing. The rewriting-rule operators
(`$*`, `$+`, `$1`, `$#`, `$@`, `$:`, `$>`, `$[`, `$(` ...) are left as written: rules/
owns them. Nothing here reads files or the clock: callers put `$b`, `$j`, `$i` into `macros`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not importing collections at run time: start-up time
if TYPE_CHECKING:
    from collections.abc import Mapping


# Characters after `$` that are rule operators or conditional punctuation, not macro names.
_NOT_MACROS = frozenset("*+-=~#@:>|.?&{}[]()0123456789$ \t\n")
_MAX_DEPTH = 10


def expand(text: str, macros: Mapping[str, str]) -> str:
    """`text` with its macro references replaced by their values in `macros`."""
    if "$" not in text:
        return text
    return _evaluate(_compiled(text), macros, 0)


# A text's parts, parsed once: literal strings, (name, expand_it) references and
# _Conditional parts. The greeting and the Received: line are expanded for every
# connection and message; parsing them each time cost most of the work.
_PARSED: dict[str, list] = {}
_PARSED_LIMIT = 512


class _Conditional:
    __slots__ = ("else_part", "name", "then_part")

    def __init__(self, name: str, then_part: list, else_part: list) -> None:
        self.name = name
        self.then_part = then_part
        self.else_part = else_part


def _compiled(text: str) -> list:
    parts = _PARSED.get(text)
    if parts is None:
        parts, _ = _Parser(text).until(stops=())
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()  # texts from clients (HELO names...) must not grow it forever
        _PARSED[text] = parts
    return parts


def _evaluate(parts: list, macros: Mapping[str, str], depth: int) -> str:
    out: list[str] = []
    for part in parts:
        kind = type(part)
        if kind is str:
            out.append(part)
        elif kind is tuple:
            name, expand_it = part
            raw = macros.get(name, "")
            if expand_it and "$" in raw and depth < _MAX_DEPTH:
                raw = _evaluate(_compiled(raw), macros, depth + 1)
            out.append(raw)
        else:
            taken = part.then_part if macros.get(part.name, "") else part.else_part
            out.append(_evaluate(taken, macros, depth))
    return "".join(out)


def macro_references(text: str) -> set[str]:
    """The names of the macros that `text` refers to (`$x`, `${name}`, `$&x`, `$?x`)."""
    names: set[str] = set()
    index = 0
    while True:
        index = text.find("$", index)
        if index < 0 or index + 1 >= len(text):
            return names
        after = index + 1
        if text[after] in "&?":
            after += 1
        name, end = _read_name(text, after)
        if name:
            names.add(name)
        index = max(end, index + 1)


def _read_name(text: str, pos: int) -> tuple[str | None, int]:
    """The macro name at `pos` (`x` or `{name}`) and where it ends."""
    if pos >= len(text):
        return None, pos
    if text[pos] == "{":
        close = text.find("}", pos)
        if close < 0:
            return None, pos
        name = text[pos + 1 : close]
        return (name or None), close + 1
    if text[pos] in _NOT_MACROS:
        return None, pos
    return text[pos], pos + 1


class _Parser:
    """Splits a text into the parts `_evaluate` expands: literal text, references, and
    conditionals with their two branches; an operator or a lone `$` stays literal."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def until(self, stops: tuple[str, ...]) -> tuple[list, str | None]:
        text = self.text
        out: list = []
        while self.pos < len(text):
            dollar = text.find("$", self.pos)
            if dollar < 0:
                out.append(text[self.pos :])
                self.pos = len(text)
                break
            if dollar > self.pos:
                out.append(text[self.pos : dollar])
            after = dollar + 1
            marker = text[after] if after < len(text) else ""
            if marker and marker in stops:
                self.pos = after + 1
                return out, marker
            if marker == "?":
                out.append(self.conditional(after + 1))
                continue
            deferred = marker == "&"
            name, end = _read_name(text, after + 1 if deferred else after)
            if name is None:
                out.append("$")  # an operator or a lone `$`: kept as written
                self.pos = after
                continue
            out.append((name, not deferred))
            self.pos = end
        return out, None

    def conditional(self, name_at: int) -> _Conditional | str:
        name, end = _read_name(self.text, name_at)
        if name is None:
            self.pos = name_at
            return "$?"
        self.pos = end
        then_part, stop = self.until(stops=("|", "."))
        else_part: list = []
        if stop == "|":
            else_part, _ = self.until(stops=(".",))
        return _Conditional(name, then_part, else_part)
