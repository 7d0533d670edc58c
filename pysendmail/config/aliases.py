"""The aliases(5) file: parsing it into an `AliasFile`, as sendmail's newaliases reads it.

Owns: the line discipline (comments, blank lines, continuation lines that start with
white space, a backslash before the newline), the split at the first colon, the targets of
each entry (addresses, `"|program"`, `/file`, `:include:/path`, `error:code text`), the
statistics newaliases prints (`N aliases, longest L bytes, T bytes total`, counted as
sendmail counts them: the bytes of the key plus the raw right-hand side) and sendmail's
messages for bad lines (`FILE: line N: missing colon`).

Warnings beyond sendmail's (a duplicate key, an alias loop, an unbalanced quote) are
`Diagnostic`s with file:line:col. Nothing here reads a file other than through
`read_aliases()`; `parse_aliases()` is a pure function of the text.
"""

from __future__ import annotations

import os

from pysendmail.address import split_commas
from pysendmail.config.aliastarget import ERROR_PREFIX as ERROR_PREFIX
from pysendmail.config.aliastarget import INCLUDE_PREFIX as INCLUDE_PREFIX
from pysendmail.config.aliastarget import TargetKind as TargetKind
from pysendmail.config.aliastarget import classify_target as classify_target
from pysendmail.errors import ConfigError, Diagnostic, Location
from pysendmail.record import record

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from lark import Lark

    from pysendmail.config.model import Config

GRAMMAR_PATH = os.path.join(os.path.dirname(__file__), "grammars", "aliases.lark")
# sendmail's readaliases() reads into a BUFSIZ buffer: a longer logical line is refused.
MAX_LINE_BYTES = 8192


@record(frozen=True)
class AliasTarget:
    """One target of an alias: `text` as written, `value` unquoted and without its prefix."""

    text: str
    kind: TargetKind
    value: str
    location: Location


@record(frozen=True)
class AliasEntry:
    name: str  # the left-hand side as written
    key: str  # the lookup key: the local part, lower-cased
    rhs: str  # the right-hand side as sendmail stores it (continuations joined)
    targets: tuple[AliasTarget, ...]
    location: Location


@record(frozen=True)
class AliasStats:
    aliases: int
    longest: int
    total: int


@record(frozen=True)
class AliasFile:
    """A parsed aliases file. `entries` maps each key to its last definition."""

    path: str
    entries: Mapping[str, AliasEntry]
    stats: AliasStats
    # What sendmail's newaliases prints for this file's bad lines, in order.
    messages: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]

    def lookup(self, name: str) -> AliasEntry | None:
        return self.entries.get(name.lower())


_PARSERS: list[Lark] = []  # the one parser, once built (functools.cache without functools)


def _parser() -> Lark:
    # lark is imported here, not at the top: a lookup in a compiled alias file needs none
    # of it, and its import costs a `sendmail` process tens of milliseconds.
    if _PARSERS:
        return _PARSERS[0]
    from lark import Lark

    with open(GRAMMAR_PATH) as grammar:
        text = grammar.read()
    _PARSERS.append(
        Lark(
            text,
            parser="lalr",
            lexer="contextual",
            propagate_positions=True,
        )
    )
    return _PARSERS[0]


@record
class _LogicalLine:
    """A line with its continuations joined, and where each joined piece started."""

    text: str
    first_line: int
    # (offset in text, physical line, column of that offset) for each joined piece
    pieces: list[tuple[int, int, int]]

    def location(self, path: str, offset: int) -> Location:
        line, column, start = self.first_line, 1, 0
        for piece_offset, piece_line, piece_column in self.pieces:
            if piece_offset > offset:
                break
            start, line, column = piece_offset, piece_line, piece_column
        return Location(path, line, column + offset - start)


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _is_continuation(line: str) -> bool:
    return line[:1] in (" ", "\t")


class _Reader:
    """Reads an aliases text as readaliases() does and collects entries and messages."""

    def __init__(
        self,
        text: str,
        path: str,
        is_local_domain: Callable[[str], bool] | None,
        check: bool = True,
    ) -> None:
        self.path = path
        self.check = check
        self.is_local_domain = is_local_domain
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.entries: dict[str, AliasEntry] = {}
        self.messages: list[str] = []
        self.diagnostics: list[Diagnostic] = []
        self.count = self.longest = self.total = 0

    def message(self, line: int, text: str, column: int = 1, severity: str = "error") -> None:
        self.messages.append(f"{self.path}: line {line}: {text}")
        self.diagnostics.append(Diagnostic(Location(self.path, line, column), text, severity))

    def warn(self, location: Location, text: str) -> None:
        self.diagnostics.append(Diagnostic(location, text, "warning"))

    def read(self) -> None:
        index, skipping = 0, False
        while index < len(self.lines):
            first = index
            text = self.lines[index]
            index += 1
            pieces: list[tuple[int, int, int]] = []
            while text.endswith("\\") and index < len(self.lines):
                pieces.append((len(text) - 1, index + 1, 1))
                text = text[:-1] + self.lines[index]
                index += 1
            if text == "" or text.startswith("#"):
                skipping = False
                continue
            if _is_continuation(text):
                if not skipping:
                    self.message(first + 1, "Non-continuation line starts with space")
                skipping = True
                continue
            skipping = False
            while index < len(self.lines) and _is_continuation(self.lines[index]):
                pieces.append((len(text), index + 1, 1))
                text += self.lines[index]
                index += 1
            logical = _LogicalLine(text, first + 1, pieces)
            if _byte_len(text) >= MAX_LINE_BYTES:
                self.message(first + 1, "alias line too long")
                continue
            self.entry(logical, last_line=index)

    def entry(self, logical: _LogicalLine, last_line: int) -> None:
        text = logical.text
        colon = text.find(":")
        if colon < 0:
            self.message(logical.first_line, "missing colon", len(text) + 1)
            return
        name = text[:colon].strip()
        if not _legal_name(name):
            self.message(logical.first_line, f"{text[:40]}... illegal alias name")
            return
        local, _, domain = name.rpartition("@") if "@" in name else (name, "", "")
        if domain and self.is_local_domain is not None and not self.is_local_domain(domain):
            self.message(logical.first_line, f"{name}... cannot alias non-local names")
            return
        rhs_start = colon + 1
        while rhs_start < len(text) and text[rhs_start] in " \t":
            rhs_start += 1
        rhs = text[rhs_start:]
        if rhs.strip() == "":
            self.message(logical.first_line, f"{text[:40]}... missing value for alias")
            return
        targets = self.targets(logical, colon) if self.check else self._split_quick(logical, colon)
        key = local.lower()
        location = Location(self.path, logical.first_line, 1)
        if key in self.entries:
            # sendmail's hash map store: "Warning: duplicate alias name", the later one wins.
            earlier = self.entries[key].location.line
            self.messages.append(
                f"{self.path}: line {last_line}: Warning: duplicate alias name {local}"
            )
            self.warn(location, f"duplicate alias name {local} (first defined on line {earlier})")
        self.entries[key] = AliasEntry(name, key, rhs, targets, location)
        self.count += 1
        size = _byte_len(rhs)
        self.total += _byte_len(local) + size
        self.longest = max(self.longest, size)

    def targets(self, logical: _LogicalLine, colon: int) -> tuple[AliasTarget, ...]:
        text = logical.text
        parser = _parser()
        from lark import Token, Tree
        from lark.exceptions import LarkError, UnexpectedInput

        try:
            tree = parser.parse(text)
        except UnexpectedInput as exc:
            location = logical.location(self.path, max(exc.pos_in_stream or colon, colon))
            self.diagnostics.append(
                Diagnostic(location, "unbalanced quote, bracket or parenthesis", "error")
            )
            return self._split_plainly(logical, colon)
        except LarkError:  # pragma: no cover - lark raises UnexpectedInput for bad text
            return self._split_plainly(logical, colon)
        rhs_tree = next(t for t in tree.children if isinstance(t, Tree) and t.data == "rhs")
        found = []
        for target in rhs_tree.children:
            if not isinstance(target, Tree):
                continue
            tokens = [t for t in target.children if isinstance(t, Token)]
            start, end = tokens[0].start_pos, tokens[-1].end_pos
            written = text[start:end]
            kind, value = classify_target(written)
            found.append(AliasTarget(written, kind, value, logical.location(self.path, start)))
        return tuple(found)

    def _split_quick(self, logical: _LogicalLine, colon: int) -> tuple[AliasTarget, ...]:
        """The targets without the grammar (no diagnostics): for lookups on the mail path."""
        found, offset = [], colon + 1
        for item in split_commas(logical.text[colon + 1 :]):
            start = logical.text.find(item, offset)
            start = offset if start < 0 else start
            kind, value = classify_target(item)
            found.append(AliasTarget(item, kind, value, logical.location(self.path, start)))
            offset = start + len(item)
        return tuple(found)

    def _split_plainly(self, logical: _LogicalLine, colon: int) -> tuple[AliasTarget, ...]:
        found, offset = [], colon + 1
        for part in logical.text[colon + 1 :].split(","):
            written = part.strip()
            if written:
                start = offset + part.index(written)
                kind, value = classify_target(written)
                found.append(AliasTarget(written, kind, value, logical.location(self.path, start)))
            offset += len(part) + 1
        return tuple(found)


def _legal_name(name: str) -> bool:
    if not name or name.startswith("@") or name.endswith("@"):
        return False
    return not any(c in name for c in ' \t"<>(),;\\') and name.count("@") <= 1


def _loop_diagnostics(path: str, entries: Mapping[str, AliasEntry]) -> list[Diagnostic]:
    """Alias loops among plain local names (`a: b`, `b: a`): one warning per loop."""
    graph = {
        key: [
            t.value.lower()
            for t in entry.targets
            if t.kind is TargetKind.ADDRESS and t.value.lower() in entries and t.value[:1] != "\\"
        ]
        for key, entry in entries.items()
    }
    found: list[Diagnostic] = []
    seen_loops: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path_keys: list[str] = [root]
        state[root] = 1
        while stack:
            node, child_index = stack[-1]
            children = graph[node]
            if child_index >= len(children):
                stack.pop()
                path_keys.pop()
                state[node] = 2
                continue
            stack[-1] = (node, child_index + 1)
            child = children[child_index]
            if state.get(child) == 1:
                members = path_keys[path_keys.index(child) :]
                if frozenset(members) not in seen_loops:
                    seen_loops.add(frozenset(members))
                    chain = " -> ".join([*members, child])
                    lines = ", ".join(str(entries[m].location.line) for m in members)
                    found.append(
                        Diagnostic(
                            entries[child].location,
                            f"alias loop: {chain} (lines {lines})",
                            "warning",
                        )
                    )
            elif not state.get(child):
                state[child] = 1
                stack.append((child, 0))
                path_keys.append(child)
    return found


def parse_aliases(
    text: str,
    path: str,
    *,
    is_local_domain: Callable[[str], bool] | None = None,
    check: bool = True,
) -> AliasFile:
    """Parse an aliases file's text. Never raises for bad content: see `messages`/`diagnostics`.

    `is_local_domain`, when given, lets a left-hand side `name@domain` be checked as
    sendmail checks it (`cannot alias non-local names`). With `check` off the targets are
    split without the grammar (no diagnostics about them): the lookup path of a message,
    which should not pay for building a parser.
    """
    reader = _Reader(text, path, is_local_domain, check)
    reader.read()
    diagnostics = [*reader.diagnostics, *_loop_diagnostics(path, reader.entries)]
    return AliasFile(
        path=path,
        entries=reader.entries,
        stats=AliasStats(reader.count, reader.longest, reader.total),
        messages=tuple(reader.messages),
        diagnostics=tuple(diagnostics),
    )


def read_aliases(
    path: str | os.PathLike[str],
    *,
    is_local_domain: Callable[[str], bool] | None = None,
    check: bool = True,
) -> AliasFile:
    """Read and parse an aliases file; a file that cannot be read is a ConfigError."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from exc
    text = data.decode("utf-8", "surrogateescape")
    return parse_aliases(text, os.fspath(path), is_local_domain=is_local_domain, check=check)


def include_diagnostics(
    aliases: AliasFile, exists: Callable[[str], bool] = os.path.exists
) -> list[Diagnostic]:
    """Warnings for `:include:` targets whose file does not exist."""
    return [
        Diagnostic(target.location, f":include: file {target.value} does not exist", "warning")
        for entry in aliases.entries.values()
        for target in entry.targets
        if target.kind is TargetKind.INCLUDE and not exists(target.value)
    ]


def parse_include_list(text: str, path: str) -> tuple[AliasTarget, ...]:
    """The targets of an :include: file (or a .forward): comma/newline separated, # comments."""
    found: list[AliasTarget] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        logical = _LogicalLine("x:" + line, number, [])
        reader = _Reader("", path, None)
        for target in reader.targets(logical, 1):
            location = Location(path, number, max(1, target.location.column - 2))
            found.append(AliasTarget(target.text, target.kind, target.value, location))
    return tuple(found)


# ---------------------------------------------------------------- the config's alias files


DEFAULT_ALIAS_FILE = "/etc/mail/aliases"
# Map classes whose alias source is a file newaliases can rebuild.
_FILE_CLASSES = ("hash", "btree", "dbm", "implicit", "text")


def alias_files(config: Config) -> list[str]:
    """The alias source files named by `AliasFile` (`[class:]path`, comma-separated)."""
    raw = config.option("AliasFile", (DEFAULT_ALIAS_FILE,))
    items: Iterable[str] = raw.split(",") if isinstance(raw, str) else raw  # type: ignore[assignment]
    files = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        map_class, sep, path = text.partition(":")
        if sep and not map_class.startswith("/"):
            if map_class.lower() not in _FILE_CLASSES:
                continue  # nis:, ldap:, sequence maps ... are not files to rebuild
            text = path.strip()
        files.append(text.split()[-1] if text.split() else text)
    return files


def local_domain_test(config: Config) -> Callable[[str], bool]:
    """Whether a domain is one of ours (class w and $j), for `name@domain:` alias keys."""
    names = {name.lower().rstrip(".") for name in config.local_host_names}
    names.add(config.hostname.lower().rstrip("."))

    def is_local(domain: str) -> bool:
        return domain.lower().rstrip(".").strip("[]") in names

    return is_local
