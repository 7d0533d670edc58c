"""The text sources of sendmail's maps, and the one-name-a-line files.

Owns two readings of a `key value` source:

- `split_map_lines()`: the line discipline of sendmail's makemap, exactly (comment lines
  start with the comment character, the key ends at the first white space or delimiter,
  keys folded to lower case unless asked not to, `no RHS for LHS`, duplicates). This is
  what builds compiled maps and what a map reads when it has no compiled form.
- `parse_map_source()`: the same lines, and then each key and value checked against the
  grammar of the file's kind (grammars/mapsource.lark: access, virtusertable, mailertable,
  genericstable, domaintable, authinfo) with IP addresses, nets and domain names checked
  here. Every problem is a `Diagnostic` at file:line:col; nothing raises but ConfigError.

`read_name_list()` reads local-host-names, relay-domains, trusted-users (sendmail's `F`
lines without a scanf pattern: every word of every line not starting with `#`).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pysendmail.errors import ConfigError, Diagnostic, Location
from pysendmail.record import record

if TYPE_CHECKING:
    from lark import Lark, Tree

    from pysendmail.config.model import Config

GRAMMAR_PATH = Path(__file__).parent / "grammars" / "mapsource.lark"
# makemap reads into a BUFSIZ buffer: a longer line is refused.
MAX_LINE_BYTES = 8192
# The key (up to the first white space) and the separating white space after it.
_WHITESPACE_SPLIT = re.compile(r"(\S*)\s*")


class MapKind(StrEnum):
    PLAIN = "plain"  # no checks beyond makemap's
    ACCESS = "access"
    VIRTUSER = "virtuser"
    MAILERTABLE = "mailertable"
    GENERICS = "generics"
    DOMAINTABLE = "domaintable"
    AUTHINFO = "authinfo"


_KIND_BY_FILE_NAME = {
    "access": MapKind.ACCESS,
    "virtusertable": MapKind.VIRTUSER,
    "virtuser": MapKind.VIRTUSER,
    "mailertable": MapKind.MAILERTABLE,
    "genericstable": MapKind.GENERICS,
    "generics": MapKind.GENERICS,
    "domaintable": MapKind.DOMAINTABLE,
    "authinfo": MapKind.AUTHINFO,
}


def kind_for_path(path: str | os.PathLike[str]) -> MapKind:
    """The kind of a map source guessed from its file name (`/etc/mail/access` -> ACCESS)."""
    name = os.path.basename(os.fspath(path)).split(".")[0].lower()
    return _KIND_BY_FILE_NAME.get(name, MapKind.PLAIN)


@record(frozen=True)
class MapEntry:
    key: str  # folded to lower case unless the reader was told not to
    value: str
    location: Location  # the key's position; the value starts at `value_column`
    value_column: int = 0


@record(frozen=True)
class MapLineProblem:
    """A line makemap refuses, with makemap's own wording (`no RHS for LHS x`)."""

    location: Location
    message: str
    duplicate: bool = False


@record(frozen=True)
class MapSource:
    path: str
    kind: MapKind
    entries: tuple[MapEntry, ...]
    diagnostics: tuple[Diagnostic, ...]

    def as_dict(self) -> dict[str, str]:
        """Keys to values; the first of duplicate keys wins, as makemap keeps it."""
        table: dict[str, str] = {}
        for entry in self.entries:
            table.setdefault(entry.key, entry.value)
        return table


def split_map_lines(
    text: str,
    path: str,
    *,
    delimiter: str | None = None,
    comment: str = "#",
    fold_case: bool = True,
    allow_empty: bool = False,
    replace: bool = False,
) -> tuple[list[MapEntry], list[MapLineProblem]]:
    """makemap's reading of a source: entries in order and the lines it refuses.

    Duplicate keys are problems (makemap: `duplicate key`) unless `replace`, in which
    case the later value replaces the earlier one.
    """

    entries: list[MapEntry] = []
    problems: list[MapLineProblem] = []
    index_by_key: dict[str, int] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        line = raw.removesuffix("\r")
        # A character is at most 4 bytes: only long lines need counting.
        if len(line) * 4 >= MAX_LINE_BYTES and (
            len(line.encode("utf-8", "surrogateescape")) >= MAX_LINE_BYTES
        ):
            problems.append(
                MapLineProblem(
                    Location(path, number, 1),
                    f"line too long ({MAX_LINE_BYTES} bytes max)",
                )
            )
            continue
        if line == "" or line[0] == comment:
            continue
        if delimiter is None and line[0].isspace():
            problems.append(
                MapLineProblem(Location(path, number, 1), "syntax error (leading space)")
            )
            continue
        if delimiter is None:
            match = _WHITESPACE_SPLIT.match(line)
            assert match is not None  # the pattern matches any line
            end, start = match.end(1), match.end()
        else:
            end = line.find(delimiter)
            end = len(line) if end < 0 else end
            start = end
            while start < len(line) and line[start] == delimiter:
                start += 1
        key = line[:end].lower() if fold_case else line[:end]
        value = line[start:]
        if not allow_empty and value == "":
            problems.append(
                MapLineProblem(Location(path, number, end + 1), f"no RHS for LHS {key}")
            )
            continue
        entry = MapEntry(key, value, Location(path, number, 1), start + 1)
        if key in index_by_key:
            if replace:
                entries[index_by_key[key]] = entry
                continue
            problems.append(
                MapLineProblem(Location(path, number, 1), f"key {key}: duplicate key", True)
            )
            continue
        index_by_key[key] = len(entries)
        entries.append(entry)
    return entries, problems


def read_table(
    text: str, *, delimiter: str | None = None, comment: str = "#", fold_case: bool = True
) -> dict[str, str]:
    """Keys to values as makemap would store them (the first of duplicate keys wins), for
    a map read from its source; the lines makemap refuses are left out. The fast path of
    `split_map_lines()`, without locations."""
    table: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line or line[0] == comment or (delimiter is None and line[0].isspace()):
            continue
        if delimiter is None:
            parts = line.split(None, 1)
        else:
            key, _, rest = line.partition(delimiter)
            parts = [key, rest.lstrip(delimiter)]
        if len(parts) < 2 or parts[1] == "":
            continue
        key = parts[0].lower() if fold_case else parts[0]
        if key not in table:
            table[key] = parts[1]
    return table


# ---------------------------------------------------------------- checking by kind


@cache
def _parser() -> Lark:
    # lark is imported here, not at the top: reading and looking up maps needs none of it,
    # and its import costs a `sendmail` process tens of milliseconds.
    from lark import Lark

    return Lark(
        GRAMMAR_PATH.read_text(),
        parser="lalr",
        lexer="contextual",
        start=[f"{k}_{p}" for k in _GRAMMAR_KINDS for p in ("key", "value")],
    )


_TOO_SHORT = {
    "virtuser_key": "virtusertable key needs @domain (user@domain or @domain)",
    "mailertable_value": "mailertable value must be mailer:host, mailer: or error:...",
    "generics_key": "genericstable key is user or user@domain",
    "authinfo_key": "authinfo key must start with AuthInfo:",
    "access_key": "access key has no host, domain, address or net after its tag",
}

# Access tags whose key is a host or address, and whose bare tag is the default entry.
_HOST_TAGS = frozenset(
    {"greetpause", "clientrate", "clientconn", "authinfo", "srv_features", "clt_features"}
    | {"try_tls"}
)

_GRAMMAR_KINDS = ("access", "virtuser", "mailertable", "generics", "domaintable", "authinfo")

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*\.?$")
_PARTIAL_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){0,3}$")
_ERROR_TEXT_RE = re.compile(r'^(?:\d\.\d{1,3}\.\d{1,3}:)?(?:[45]\d\d(?: .*)?|".*")$')
_VIRTUSER_ERROR_RE = re.compile(r"^(?:\w+ )?(?:\d\.\d{1,3}\.\d{1,3}:|\d\.\d{1,3}\.\d{1,3} )?")


def is_domain(text: str) -> bool:
    """A host or domain name (letters, digits, `-`, `_`), not a dotted number."""
    if _PARTIAL_IPV4_RE.match(text.rstrip(".")):
        return False
    return bool(_DOMAIN_RE.match(text)) and len(text) <= 255


def is_ipv4_net(text: str) -> bool:
    """A full IPv4 address or the leading octets of one (`10.1` is the net 10.1/16)."""
    return bool(_PARTIAL_IPV4_RE.match(text)) and all(int(o) <= 255 for o in text.split("."))


def is_ipv6_net(text: str) -> bool:
    """An `IPv6:` key: a full address, or leading groups of one (`IPv6:2001:db8`)."""
    if not text.lower().startswith("ipv6:"):
        return False
    import ipaddress

    body = text[5:]
    try:
        ipaddress.IPv6Address(body)
        return True
    except ValueError:
        groups = body.split(":")
        return 0 < len(groups) < 8 and all(re.fullmatch(r"[0-9A-Fa-f]{1,4}", g) for g in groups)


# Lines of the commonest shapes, certainly valid: checked by one regex instead of the
# grammar (a 100,000-line virtusertable is checked in a fraction of a second). Anything
# else goes through the grammar. A property test holds these to never accept a line the
# grammar refuses.
_PLAIN_DOMAIN = (
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?\.)*[A-Za-z][A-Za-z0-9\-]*[A-Za-z0-9]"
)
_PLAIN_LOCAL = r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*"


@functools.cache
def _plain_shapes() -> dict[MapKind, tuple[re.Pattern[str], re.Pattern[str]]]:
    """The shapes' patterns, compiled on first use: the submission path imports this module."""
    return {
        MapKind.VIRTUSER: (
            re.compile(rf"(?:{_PLAIN_LOCAL})?@{_PLAIN_DOMAIN}"),
            re.compile(rf"(?:{_PLAIN_LOCAL}|%1)(?:@{_PLAIN_DOMAIN})?"),
        ),
        MapKind.MAILERTABLE: (
            re.compile(rf"\.?{_PLAIN_DOMAIN}"),
            re.compile(rf"[A-Za-z0-9_\-]+:(?:{_PLAIN_DOMAIN}|\[{_PLAIN_DOMAIN}\])?"),
        ),
        MapKind.GENERICS: (
            re.compile(rf"{_PLAIN_LOCAL}(?:@{_PLAIN_DOMAIN})?"),
            re.compile(rf"{_PLAIN_LOCAL}(?:@{_PLAIN_DOMAIN})?"),
        ),
        MapKind.ACCESS: (
            re.compile(rf"(?:(?i:from|to):)?(?:{_PLAIN_LOCAL}@)?{_PLAIN_DOMAIN}"),
            re.compile(r"(?i:ok|relay|reject|discard|skip)"),
        ),
    }


def plainly_valid(kind: MapKind, key: str, value: str) -> bool:
    """True when a key and value have one of the commonest shapes of their kind."""
    shapes = _plain_shapes().get(kind)
    if shapes is None or len(key) > 255:
        return False
    return bool(shapes[0].fullmatch(key)) and bool(shapes[1].fullmatch(value))


class _Checker:
    def __init__(self, path: str, kind: MapKind) -> None:
        self.path = path
        self.kind = kind
        self.diagnostics: list[Diagnostic] = []

    def error(self, line: int, column: int, message: str, severity: str = "error") -> None:
        self.diagnostics.append(Diagnostic(Location(self.path, line, column), message, severity))

    def parse(self, text: str, rule: str, line: int, column: int, what: str) -> Tree | None:
        parser = _parser()
        from lark import Token
        from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

        try:
            return parser.parse(text, start=rule)
        except UnexpectedCharacters as exc:
            at = column + exc.column - 1
            self.error(line, at, f"unexpected {text[exc.pos_in_stream :][:20]!r} in {what}")
        except UnexpectedEOF:
            self.error(line, column + len(text), _TOO_SHORT.get(rule, f"{what} ends too early"))
        except UnexpectedInput as exc:
            token = getattr(exc, "token", None)
            at = column + (token.column - 1 if isinstance(token, Token) and token.column else 0)
            shown = str(token) if token is not None else ""
            if shown == "" or getattr(token, "type", "") == "$END":
                message = _TOO_SHORT.get(rule, f"{what} ends too early")
                self.error(line, column + len(text), message)
            else:
                self.error(line, at, f"unexpected {shown!r} in {what}")
        return None

    def check(self, entry: MapEntry) -> None:
        line, key_column, value_column = (
            entry.location.line,
            entry.location.column,
            entry.value_column,
        )
        kind = self.kind.value
        if plainly_valid(self.kind, entry.key, entry.value):
            return
        key_tree = self.parse(entry.key, f"{kind}_key", line, key_column, f"{kind} key")
        value_tree = self.parse(entry.value, f"{kind}_value", line, value_column, f"{kind} value")
        if key_tree is not None:
            getattr(self, f"check_{kind}_key")(key_tree, entry)
        if value_tree is not None:
            getattr(self, f"check_{kind}_value")(value_tree, entry)

    # ---- access (a lark Token is a str, a Tree is not: `isinstance(t, str)` picks tokens)
    def check_access_key(self, tree: Tree, entry: MapEntry) -> None:
        tokens = {t.type: t for t in tree.children if isinstance(t, str)}
        tag = tokens["TAG"].lower().rstrip(":") if "TAG" in tokens else ""
        host_tag = tag in _HOST_TAGS or tag.startswith("tls_")
        if "WORD" not in tokens:
            # A bare tag is the default entry of the tags that have one (`GreetPause: 5000`).
            if not host_tag:
                column = entry.location.column + tokens["TAG"].end_pos
                self.error(entry.location.line, column, _TOO_SHORT["access_key"])
            return
        target = tokens["WORD"]
        column = entry.location.column + target.start_pos
        word = str(target)
        if host_tag:
            if word.startswith("[") or is_ipv4_net(word) or is_ipv6_net(word) or is_domain(word):
                return
            self.error(entry.location.line, column, f"{tag}: expects a host or address")
            return
        if is_ipv4_net(word) or is_ipv6_net(word):
            return
        if word.lower().startswith("ipv6:"):
            self.error(entry.location.line, column, f"bad IPv6 address {word[5:]!r}")
            return
        if tag == "connect":
            if not is_domain(word):
                self.error(entry.location.line, column, f"bad host name or address {word!r}")
            return
        if word.endswith("@"):
            local = word[:-1]
            if not local or "@" in local:
                self.error(entry.location.line, column, f"bad user@ key {word!r}")
            return
        if "@" in word:
            local, _, domain = word.rpartition("@")
            if not local or not is_domain(domain):
                at = column + len(local) + 1
                self.error(entry.location.line, at, f"bad domain {domain!r} in address")
            return
        if not is_domain(word):
            self.error(entry.location.line, column, f"bad domain {word!r}")

    def check_access_value(self, tree: Tree, entry: MapEntry) -> None:
        if tree.data == "error":
            text = str(tree.children[1]).strip()
            if not _ERROR_TEXT_RE.match(text):
                self.error(
                    entry.location.line,
                    entry.value_column + len("ERROR:"),
                    "ERROR: needs a reply code (4xx or 5xx), optionally after a status code "
                    "(ERROR:5.7.1:550 text)",
                )

    # ---- virtusertable
    def check_virtuser_key(self, tree: Tree, entry: MapEntry) -> None:
        tokens = {t.type: t for t in tree.children if isinstance(t, str)}
        domain = tokens["DOMAIN"]
        if not is_domain(str(domain)) and not str(domain).startswith("["):
            self.error(
                entry.location.line,
                entry.location.column + domain.start_pos,
                f"bad domain {str(domain)!r}",
            )
        local = str(tokens.get("LOCAL", ""))
        if "+" in local and local.count("+") == 1 and local.endswith("+"):
            self.error(
                entry.location.line,
                entry.location.column,
                f"'{local}' matches nothing: write {local}*@domain for any detail",
                "warning",
            )

    def check_virtuser_value(self, tree: Tree, entry: MapEntry) -> None:
        if tree.data == "error":
            return
        target = str(tree.children[0])
        bad = re.search(r"%[^123]", target + " ")
        if bad and "%" in target:
            self.error(
                entry.location.line,
                entry.value_column + bad.start(),
                "only %1, %2 and %3 are replaced in a virtusertable value",
            )
        if "@" in target:
            domain = target.rpartition("@")[2]
            if domain and not is_domain(domain) and "%" not in domain:
                self.error(
                    entry.location.line,
                    entry.value_column + target.rindex("@") + 1,
                    f"bad domain {domain!r}",
                )

    # ---- mailertable
    def check_mailertable_key(self, tree: Tree, entry: MapEntry) -> None:
        word = str(tree.children[0])
        if word == ".":
            return
        name = word[1:] if word.startswith(".") else word
        if not is_domain(name) and not name.startswith("["):
            self.error(entry.location.line, entry.location.column, f"bad domain {word!r}")

    def check_mailertable_value(self, tree: Tree, entry: MapEntry) -> None:
        if tree.data == "error":
            return
        tokens = [t for t in tree.children if isinstance(t, str)]
        mailer = str(tokens[0])
        host = str(tokens[1]) if len(tokens) > 1 else ""
        column = entry.value_column + len(mailer) + 1
        if mailer == "local" or not host or host.startswith("/"):
            return
        name = host.split(":")[-1] if ":" in host and not host.startswith("[") else host
        if name.startswith("["):
            if not name.endswith("]"):
                self.error(entry.location.line, column, f"unbalanced [ in host {host!r}")
            return
        if not is_domain(name):
            self.error(entry.location.line, column, f"bad host name {host!r}")

    # ---- genericstable, domaintable, authinfo
    def check_generics_key(self, tree: Tree, entry: MapEntry) -> None:
        for token in tree.children:
            if isinstance(token, str) and token.type == "DOMAIN" and not is_domain(token):
                self.error(
                    entry.location.line,
                    entry.location.column + token.start_pos,
                    f"bad domain {str(token)!r}",
                )

    def check_generics_value(self, tree: Tree, entry: MapEntry) -> None:
        target = str(tree.children[0])
        if "@" in target and not is_domain(target.rpartition("@")[2]):
            self.error(entry.location.line, entry.value_column, f"bad address {target!r}")

    def check_domaintable_key(self, tree: Tree, entry: MapEntry) -> None:
        if not is_domain(str(tree.children[0])):
            self.error(entry.location.line, entry.location.column, "bad domain")

    def check_domaintable_value(self, tree: Tree, entry: MapEntry) -> None:
        if not is_domain(str(tree.children[0])):
            self.error(entry.location.line, entry.value_column, "bad domain")

    def check_authinfo_key(self, tree: Tree, entry: MapEntry) -> None:
        return

    def check_authinfo_value(self, tree: Tree, entry: MapEntry) -> None:
        seen = set()
        for token in tree.children:
            word = str(token)[1:-1]
            if len(word) < 2 or word[1] not in ":=" or word[0] not in "UIPMR":
                seen.add("bad")
                self.error(
                    entry.location.line,
                    entry.value_column + token.start_pos,
                    f'bad authinfo item {token!s}: want "U:user", "I:id", "P:pass", '
                    '"M:mechanisms" or "R:realm"',
                )
            seen.add(word[:1])
        if not seen & {"P", "U", "I", "bad"}:
            self.error(entry.location.line, entry.value_column, "authinfo without U:, I: or P:")


def parse_map_source(
    text: str,
    path: str,
    kind: MapKind | None = None,
    *,
    delimiter: str | None = None,
    fold_case: bool = True,
) -> MapSource:
    """Read a map source as makemap does and check each line against its kind's grammar."""
    kind = kind_for_path(path) if kind is None else kind
    entries, problems = split_map_lines(text, path, delimiter=delimiter, fold_case=fold_case)
    diagnostics = [
        Diagnostic(p.location, p.message, "warning" if p.duplicate else "error") for p in problems
    ]
    if kind is not MapKind.PLAIN:
        checker = _Checker(path, kind)
        for entry in entries:
            checker.check(entry)
        diagnostics.extend(checker.diagnostics)
    diagnostics.sort(key=lambda d: (d.location.line, d.location.column))
    return MapSource(path, kind, tuple(entries), tuple(diagnostics))


def read_map_source(path: str | os.PathLike[str], kind: MapKind | None = None) -> MapSource:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from exc
    return parse_map_source(data.decode("utf-8", "surrogateescape"), os.fspath(path), kind)


# ---------------------------------------------------------------- one name a line


@record(frozen=True)
class NameList:
    path: str
    names: tuple[tuple[str, Location], ...]
    diagnostics: tuple[Diagnostic, ...]


def _words(line: str) -> Iterator[tuple[int, str]]:
    for match in re.finditer(r"\S+", line):
        yield match.start(), match.group()


def parse_name_list(text: str, path: str) -> NameList:
    """Words of every line that does not start with `#` (sendmail's `F` line, no pattern)."""
    names: list[tuple[str, Location]] = []
    diagnostics: list[Diagnostic] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if line.startswith("#"):
            continue
        for start, word in _words(line):
            location = Location(path, number, start + 1)
            if word.startswith("#"):
                diagnostics.append(
                    Diagnostic(
                        location,
                        "'#' starts a comment only at the start of a line: this word is a name",
                        "warning",
                    )
                )
            if any(ord(c) < 32 or ord(c) == 127 for c in word):
                diagnostics.append(Diagnostic(location, "control character in a name", "error"))
                continue
            names.append((word, location))
    return NameList(path, tuple(names), tuple(diagnostics))


def read_name_list(path: str | os.PathLike[str]) -> list[str]:
    """The names in local-host-names, relay-domains, trusted-users and the like.

    Raises ConfigError (naming the file) when it cannot be read; `F -o` callers catch it.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from exc
    parsed = parse_name_list(data.decode("utf-8", "surrogateescape"), os.fspath(path))
    return [name for name, _ in parsed.names]


# ---------------------------------------------------------------- a config's tables

_KIND_BY_MAP_NAME = {
    "access": MapKind.ACCESS,
    "virtuser": MapKind.VIRTUSER,
    "mailertable": MapKind.MAILERTABLE,
    "generics": MapKind.GENERICS,
    "domaintable": MapKind.DOMAINTABLE,
    "authinfo": MapKind.AUTHINFO,
}


def check_config_tables(config: Config) -> list[Diagnostic]:
    """Every problem of the alias files and of the text sources of the file maps that a
    Config names, as file:line:col diagnostics (for `pysendmail-cf check`)."""
    from pysendmail.config.aliases import (
        alias_files,
        include_diagnostics,
        local_domain_test,
        parse_aliases,
    )
    from pysendmail.config.compiled import FILE_MAP_CLASSES, MapFlags, _spec_file, source_path

    found: list[Diagnostic] = []
    for path in alias_files(config):
        try:
            text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            found.append(
                Diagnostic(Location(path, 1, 1), f"cannot open alias file: {exc.strerror}")
            )
            continue
        aliases = parse_aliases(text, path, is_local_domain=local_domain_test(config))
        found.extend(aliases.diagnostics)
        found.extend(include_diagnostics(aliases))
    for name, spec in config.maps.items():
        if spec.map_class.lower() not in FILE_MAP_CLASSES:
            continue
        file = _spec_file(spec)
        if file is None:
            continue
        source = source_path(file)
        try:
            text = source.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as exc:
            if not MapFlags.from_spec(spec).optional:
                found.append(
                    Diagnostic(
                        spec.location,
                        f"map {name}: cannot read its source {source}: {exc.strerror}",
                        "warning",
                    )
                )
            continue
        kind = _KIND_BY_MAP_NAME.get(name, kind_for_path(source))
        fold_case = MapFlags.from_spec(spec).fold_case
        found.extend(parse_map_source(text, str(source), kind, fold_case=fold_case).diagnostics)
    return found
