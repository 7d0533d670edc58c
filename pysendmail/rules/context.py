"""What the rule engine needs of a configuration, gathered from a parsed sendmail.cf.

`RuleWorld` holds the compiled rulesets, the token tables (from `OperatorChars`),
`BlankSub`, the macros and classes keyed by sendmail's macro ids, the maps (one
object per `K` line, plus the built-in `host`, `dequote` and `aliases` maps) and
the mailers as sendmail numbers and prints them. It is built once per
configuration by `build_world()` from a `CfFile` (and, when the translator has
resolved them, the `Config`'s classes and macros); `-bt`, the SMTP policy and the
router each make their own `Rewriter` from it, with their own macros.

Nothing here parses sendmail.cf text (config/cfparse does); files named by `F`
lines and map sources are read only through the injected openers.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pysendmail.config.model import CfFile, Config, MailerSpec, MapSpec
from pysendmail.record import field, record
from pysendmail.record import replace as replace_fields
from pysendmail.rules import maps as mp
from pysendmail.rules import tokenizer as tk
from pysendmail.rules.engine import (
    CompiledRule,
    Messages,
    Rewriter,
    RuleBook,
    compile_rule,
)
from pysendmail.rules.memo import STATIC, RuleMemo
from pysendmail.rules.tokenizer import TokenTables, macro_id
from pysendmail.rules.tokenizer import ascii_digits as _ascii_digits

if TYPE_CHECKING:  # both import dnspython: only a cf whose switch lists dns needs them
    from pysendmail.dns import ResolverSettings
    from pysendmail.rules.hostnames import DnsHosts

VERSION = "8.17.1.9"
STABSIZE = 2003
ST_CLASS = 1

# Mailer flag letters the address code looks at.
M_CHECKUDB = "@"
M_CHECKPROG = "|"
M_CHECKFILE = "/"
M_CHECKINCLUDE = ":"
M_LOCALMAILER = "l"
M_HST_UPPER = "h"
M_USR_UPPER = "u"
M_NOCOMMENT = "c"


@record
class Mailer:
    """One mailer as sendmail keeps it (the fields `=M` prints and /try and /parse use)."""

    number: int
    name: str
    path: str = ""
    flags: str = ""
    se_rwset: int = 0
    sh_rwset: int = 0
    re_rwset: int = 0
    rh_rwset: int = 0
    maxsize: int = 0
    uid: int = -1
    gid: int = -1
    linelimit: int = 0
    eol: str = "\n"
    charset: str | None = None
    mtatype: str | None = None
    addrtype: str | None = None
    diagtype: str | None = None
    maxrcpt: int = 100
    argv: tuple[str, ...] = ()

    def has(self, flag: str) -> bool:
        return flag in self.flags


ERROR_MAILER = Mailer(-1, "*error*", path="[ERROR]")

_BUILTIN_MAILERS = (
    "prog, P=/bin/sh, F=lsouDq9, T=X-Unix/X-Unix/X-Unix, A=sh -c $u",
    "*file*, P=[FILE], F=lsDFMPEouq9, T=X-Unix/X-Unix/X-Unix, A=FILE $u",
    "*include*, P=/dev/null, F=su, A=INCLUDE $u",
)


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "r": "\r", "t": "\t", "f": "\f", "b": "\b"}.get(nxt, nxt))
            i += 2
            continue
        if ch != '"':
            out.append(ch)
        i += 1
    return "".join(out)


def _split_builtin(text: str) -> tuple[str, dict[str, str]]:
    name, _, rest = text.partition(",")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return name.strip(), fields


@record
class ClassTable:
    """sendmail's classes: members by class id, and the symbol-table order `$=X` prints."""

    members: dict[str, set[str]] = field(default_factory=dict)
    spelled: dict[str, str] = field(default_factory=dict)  # lower-cased word -> first spelling
    buckets: dict[int, list[str]] = field(default_factory=dict)

    def add(self, class_id: str, word: str) -> None:
        lower = word.lower()
        self.members.setdefault(class_id, set()).add(lower)
        if lower not in self.spelled:
            self.spelled[lower] = word
            self.buckets.setdefault(_stab_hash(word, ST_CLASS), []).append(lower)

    def listing(self, class_id: str) -> list[str]:
        """The members of a class in the order sendmail's stabapply() visits them."""
        wanted = self.members.get(class_id, set())
        out: list[str] = []
        for bucket in sorted(self.buckets):
            for lower in self.buckets[bucket]:
                if lower in wanted:
                    out.append(self.spelled[lower])
        return out


def _stab_hash(name: str, symtype: int) -> int:
    value = symtype
    for ch in name:
        code = ord(ch) & 0xFF
        if ord("A") <= code <= ord("Z"):
            code += 32
        value = ((value << 1) ^ code) % STABSIZE
    return value


class FilesResolver:
    """Host names from a hosts file, as sendmail's `files` service does (no DNS)."""

    def __init__(
        self,
        hosts_file: str | None,
        domain: Callable[[], str | None],
        services: Sequence[str] = ("files",),
    ) -> None:
        self.hosts_file = hosts_file
        self.domain = domain
        self.services = tuple(services)
        self._lines: list[list[str]] | None = None
        self.dns: DnsHosts | None = None  # set where the switch lists dns for hosts

    def memo_stamp(self) -> object | None:
        """The hosts file is read once: static, unless the switch sends names to DNS."""
        return STATIC if self.dns is None else None

    def mx_hosts(self, name: str) -> list[str] | int:
        """getmxrr() for -bt's /mx: none without DNS in the switch (as sendmail finds)."""
        if self.dns is None:
            return []
        return self.dns.mx_hosts(name)

    def _entries(self) -> list[list[str]]:
        if self._lines is None:
            lines: list[list[str]] = []
            if self.hosts_file:
                try:
                    text = Path(self.hosts_file).read_text(encoding="latin-1")
                except OSError:
                    text = ""
                for line in text.splitlines():
                    line = line.split("#", 1)[0]
                    words = line.split()
                    if len(words) >= 2:
                        lines.append(words)
            self._lines = lines
        return self._lines

    def _text_canonname(self, name: str) -> str | None:
        nbuf = name
        mydom = self.domain() or ""
        canon = False
        if nbuf.endswith("."):
            nbuf = nbuf[:-1]
            canon = True
        short: str | None = None
        dot = nbuf.find(".")
        if dot >= 0:
            rest = nbuf[dot + 1 :]
            if canon:
                same = rest.lower() == mydom.lower()
            else:
                same = mydom.lower().startswith(rest.lower())
            follow = mydom[len(rest) : len(rest) + 1]
            if same and follow in (".", ""):
                short = nbuf[:dot]
        for words in self._entries():
            cbuf = ""
            found = False
            for word in words[1:]:
                if not cbuf or ("." not in cbuf and "." in word):
                    cbuf = word
                wanted = {(short or nbuf).lower(), nbuf.lower() if short else ""}
                if word.lower() in wanted:
                    found = True
            if found:
                if "." not in cbuf and mydom:
                    cbuf = f"{cbuf}.{mydom}"
                return cbuf
        return None

    def canonical_name(self, name: str) -> tuple[str | None, int]:
        found: str | None = None
        status = mp.EX_NOTFOUND
        for service in self.services:
            if service == "files":
                found = self._text_canonname(name)
            elif service == "dns" and self.dns is not None:
                found, answer = self.dns.canonical_name(name)
                if answer == mp.EX_TEMPFAIL:
                    status = answer
            if found is not None and (self.domain() is not None or "." in found):
                break
        if found is None:
            return None, status
        dot = found.find(".")
        if dot < 0 or dot == len(found) - 1:
            mydom = self.domain()
            if not mydom:
                return None, mp.EX_NOTFOUND
            found = found + mydom if found.endswith(".") else f"{found}.{mydom}"
        return found, mp.EX_OK

    def name_of_address(self, address: str) -> tuple[str | None, int]:
        """gethostbyaddr() through the hosts file: the first name of the address's line.

        An address that is not listed is a temporary failure, as sendmail 8.17 reports
        it (`<TEMP>` from a `-T` host map); one that is not an address is not found."""
        try:
            packed = socket.inet_aton(address) if address.count(".") == 3 else None
        except OSError:
            packed = None
        if packed is None:
            return None, mp.EX_NOTFOUND
        if "files" in self.services:
            for words in self._entries():
                try:
                    if socket.inet_aton(words[0]) == packed:
                        return words[1], mp.EX_OK
                except OSError:
                    continue
        return None, mp.EX_TEMPFAIL


def read_service_switch(path: str | None) -> dict[str, list[str]]:
    """The service switch file: `hosts files dns` lines (sendmail's defaults if absent)."""
    switch = {"hosts": ["dns", "files"], "aliases": ["files"], "passwd": ["files"]}
    if not path:
        return switch
    try:
        text = Path(path).read_text(encoding="latin-1")
    except OSError:
        return switch
    for line in text.splitlines():
        words = line.split("#", 1)[0].replace(":", " ").split()
        if len(words) >= 2:
            switch[words[0]] = words[1:]
    return switch


class AliasesMap(mp.Map):
    """The built-in `aliases` map: an alias name to its right-hand side as written."""

    map_class = "switch"

    def __init__(self, lookup: Callable[[str], str | None] | None) -> None:
        super().__init__("aliases")
        self.find = lookup

    def _find(self, key: str, args: Sequence[str]) -> mp.Result:
        if self.find is None:
            return None, mp.EX_NOTFOUND
        value = self.find(key.lower())
        if value is None:
            return None, mp.EX_NOTFOUND
        return mp.map_rewrite(value, args, self.flags.append), mp.EX_OK


@record
class RuleWorld:
    """Everything the rewriting rules of one configuration need, ready to run."""

    book: RuleBook
    tables: TokenTables
    space_sub: str
    must_quote: str
    macros: dict[str, str]
    classes: ClassTable
    maps: dict[str, mp.Map]
    mailers: list[Mailer]
    resolver: FilesResolver
    config_level: int = 10
    help_file: str | None = None
    complaints: list[str] = field(default_factory=list)
    # H lines `HName: $>ruleset` / `$>+ruleset` ("*": every other header): lower-cased
    # header name -> (ruleset, strip comments first)
    header_checks: dict[str, tuple[str, bool]] = field(default_factory=dict)
    # Ruleset results remembered for this world's untraced calls (rules/memo.py); None:
    # nothing is remembered (a -bt session, whose commands change the world).
    memo: RuleMemo | None = None

    def session(self) -> RuleWorld:
        """A copy whose macros and classes one session may change (`.D`, `.C`)."""
        classes = ClassTable(
            {cid: set(words) for cid, words in self.classes.members.items()},
            dict(self.classes.spelled),
            {bucket: list(words) for bucket, words in self.classes.buckets.items()},
        )
        return replace_fields(self, macros=dict(self.macros), classes=classes, memo=None)

    def mailer(self, name: str) -> Mailer | None:
        for mailer in self.mailers:
            if mailer.name.lower() == name.lower():
                return mailer
        return None

    def rewriter(
        self,
        *,
        macros: dict[str, str] | None = None,
        messages: Messages | None = None,
        trace: Callable[[str], None] | None = None,
        private_macros: bool = False,
    ) -> Rewriter:
        """A Rewriter over this world with its own macros (a copy unless given);
        `private_macros`: see Rewriter (nothing reads them after the call)."""
        return Rewriter(
            self.book,
            tables=self.tables,
            space_sub=self.space_sub,
            classes=self.classes.members,
            maps=self.maps,
            macros=macros if macros is not None else dict(self.macros),
            messages=messages,
            trace=trace,
            memo=self.memo,
            private_macros=private_macros,
        )


MapOpener = Callable[[MapSpec], "Callable[[str], str | None] | None"]
AliasLookup = Callable[[str], "str | None"]


def _default_map_opener(spec: MapSpec) -> Callable[[str], str | None] | None:
    try:
        from pysendmail.config import compiled  # the tables layer's reader
    except ImportError:  # pragma: no cover - only before the tables layer exists
        return None
    try:
        opened = compiled.open_map(spec)
    except Exception:
        return None
    return opened.get


def _default_alias_lookup(paths: Sequence[str]) -> AliasLookup | None:
    """Alias lookups over `paths`, read on the first lookup: routing by the rules builds a
    world for every submission and never asks it (routing.py expands aliases itself)."""
    tables: list = []
    loaded = False

    def lookup(name: str) -> str | None:
        nonlocal loaded
        if not loaded:
            from pysendmail.config import aliases as alias_source

            for path in paths:
                try:
                    tables.append(alias_source.read_aliases(path))
                except Exception:
                    continue
            loaded = True
        for table in tables:
            entry = table.entries.get(name)
            if entry is not None:
                return entry.rhs
        return None

    return lookup


def _option(cf: CfFile, name: str) -> str | None:
    found = None
    for key, value, _loc in cf.options:
        if key.lower() == name.lower():
            found = value
    return found


def _ruleset_ref(book: RuleBook, text: str) -> int:
    text = text.strip()
    if not text:
        return 0
    if _ascii_digits(text[0]):
        digits = "".join(ch for ch in text if _ascii_digits(ch))
        return int(digits) if digits else 0
    return book.enter(text, None)


def _make_mailer(
    number: int, name: str, fields: Mapping[str, str], book: RuleBook, world_macros: dict
) -> Mailer:
    mailer = Mailer(number, name)
    for key, raw in fields.items():
        letter = key[:1]
        value = raw.strip()
        if letter == "P":
            mailer.path = value
        elif letter == "F":
            mailer.flags = "".join(sorted(set(value), key=ord))
        elif letter in "SR":
            env, _, hdr = value.partition("/")
            first = _ruleset_ref(book, env)
            second = _ruleset_ref(book, hdr) if hdr else first
            if letter == "S":
                mailer.se_rwset, mailer.sh_rwset = first, second
            else:
                mailer.re_rwset, mailer.rh_rwset = first, second
        elif letter == "E":
            mailer.eol = _unescape(value)
        elif letter == "A":
            mailer.argv = tuple(tk.translate_dollars(word) for word in value.split())
        elif letter == "M":
            mailer.maxsize = int(value) if _ascii_digits(value) else 0
        elif letter == "L":
            mailer.linelimit = int(value) if _ascii_digits(value) else 0
        elif letter == "T":
            parts = value.split("/")
            mailer.mtatype = parts[0] if parts else None
            mailer.addrtype = parts[1] if len(parts) > 1 else None
            mailer.diagtype = parts[2] if len(parts) > 2 else None
        elif letter == "C":
            mailer.charset = value
        elif key == "r":
            mailer.maxrcpt = int(value) if _ascii_digits(value) else 100
        elif letter == "U":
            user, _, group = value.partition(":")
            if _ascii_digits(user.lstrip("-")):
                mailer.uid = int(user)
            if _ascii_digits(group.lstrip("-")):
                mailer.gid = int(group)
    return mailer


def _class_file_words(path: str, optional: bool) -> list[str]:
    try:
        text = Path(path).read_text(encoding="latin-1")
    except OSError:
        return []
    words: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        words.extend(line.split())
    return words


def host_identity(hostname: str) -> tuple[str, str, str | None]:
    """($j, $w, $m) for a fully qualified host name."""
    short, dot, domain = hostname.partition(".")
    return hostname, short, (domain if dot and domain else None)


# Bump when compile_rule's output changes for the same input.
RULES_FORMAT = 4  # 2: the long ids the rules use are stored with them; 3, 4: CompiledRule fields


def _compiled_rules(
    cf: CfFile, tables: TokenTables, operator_chars: str | None, macros: dict[str, str]
) -> tuple[RuleBook, list[str]]:
    """The cf's rulesets compiled, with readcf()'s complaints. Compiling a stock cf's 560
    rules takes most of a world's making (a tenth of a second here), and a submission on a
    cf whose own rules route makes a world each time: the result is cached beside the
    Config, under an identity holding every rule and every macro value it was made with."""
    from pysendmail.config.cache import cached_derivation

    rules_text = [
        (ruleset.name, ruleset.number, [(r.lhs, r.rhs, str(r.location)) for r in ruleset.rules])
        for ruleset in cf.rulesets
    ]
    identity = repr((RULES_FORMAT, operator_chars, sorted(macros.items()), rules_text))

    def compile_all() -> tuple[tuple, list[str]]:
        complaints: list[str] = []
        book = RuleBook()
        lookup = macros.get
        for ruleset in cf.rulesets:
            number = book.enter(ruleset.name or None, ruleset.number)
            compiled: list[CompiledRule] = list(book.rules.get(number, ()))
            for rule in ruleset.rules:

                def complain(text: str, where: str = str(rule.location)) -> None:
                    complaints.append(f"{where}: {text}")

                compiled.append(
                    compile_rule(rule.lhs, rule.rhs, tables, lookup, complain, str(rule.location))
                )
            book.rules[number] = tuple(compiled)
        made = (book.rules, book.names, book.numbers, book.next_named, _long_ids(book.rules))
        return made, complaints

    (rules, names, numbers, next_named, used), complaints = cached_derivation(
        "rules", identity, compile_all
    )
    # A long macro or class id (`$={VirtHost}`) is a character numbered in the order this
    # process first met its name, so a book compiled by another process may spell
    # `{VirtHost}` with another character: then it is compiled under an identity that
    # holds this process's ids too.
    if any(tk.macro_id(name) != mid for name, mid in used):
        current = sorted((name, tk.macro_id(name)) for name, _mid in used)
        (rules, names, numbers, next_named, used), complaints = cached_derivation(
            "rules", f"{identity} ids={current!r}", compile_all
        )
    # A fresh, mutable book each time: -bt's S and .D commands change it.
    book = RuleBook(dict(rules), dict(names), dict(numbers), next_named)
    return book, list(complaints)


_ID_HEADS = frozenset((tk.MACROEXPAND, tk.MACRODEXPAND, tk.MATCHCLASS, tk.MATCHNCLASS, tk.CONDIF))


def _long_ids(rules: Mapping[int, Sequence[CompiledRule]]) -> frozenset[tuple[str, str]]:
    """(name, id) of every long macro or class id the compiled rules hold, as this
    process numbers them."""
    found: set[tuple[str, str]] = set()
    for ruleset in rules.values():
        for rule in ruleset:
            for token in (*rule.lhs, *rule.rhs):
                if len(token) >= 2 and token[0] in _ID_HEADS and tk.is_long_id(token[1]):
                    found.add((tk.macro_name(token[1])[1:-1], token[1]))
    return frozenset(found)


def build_world(
    cf: CfFile,
    *,
    hostname: str | None = None,
    config: Config | None = None,
    open_map: MapOpener | None = None,
    alias_lookup: AliasLookup | None = None,
    getpw: Callable[[str], Sequence[str] | None] | None = None,
    dns_settings: ResolverSettings | None = None,
    memo: bool = True,
) -> RuleWorld:
    """Compile a parsed cf into a RuleWorld. `hostname` stands in for the machine's name.
    `memo`: remember the results of untraced ruleset calls (rules/memo.py)."""
    complaints: list[str] = []
    macros: dict[str, str] = {}
    fqdn = hostname or socket.getfqdn()
    j, w, m = host_identity(fqdn)
    macros["w"] = w
    macros["j"] = j
    if m:
        macros["m"] = m
    macros["v"] = VERSION
    macros["k"] = fqdn  # uname(2) node name: the machine's name as given
    macros[macro_id("addr_type")] = "e r"
    for name, value, _loc in cf.macros:
        macros[macro_id(name)] = tk.translate_dollars(_unescape_macro(value))
    if config is not None:
        for name, value in config.macros.items():
            macros.setdefault(macro_id(name), tk.translate_dollars(value))

    classes = ClassTable()
    if macros.get("j"):
        classes.add("w", macros["j"])
    for source in cf.class_sources:
        cid = macro_id(source.class_name)
        if source.file is None:
            for word in source.words:
                classes.add(cid, tk.expand(tk.translate_dollars(word), macros.get))
        elif config is None and not source.file.startswith("|"):
            for word in _class_file_words(source.file, source.optional):
                classes.add(cid, word)
    if config is not None:
        for name, members in config.classes.items():
            cid = macro_id(name)
            for word in sorted(members):
                classes.add(cid, word)
    for user, _loc in cf.trusted_users:
        for word in user.split():
            classes.add("t", word)
    switch_file = _option(cf, "ServiceSwitchFile")
    switch = read_service_switch(switch_file)
    resolver = FilesResolver(
        _option(cf, "HostsFile") or "/etc/hosts",
        lambda: _plain_macro(macros, "m"),
        switch.get("hosts", ["files"]),
    )
    if dns_settings is not None or (switch_file and "dns" in resolver.services):
        # only a switch file that says so sends the rules' host lookups to DNS
        from pysendmail.rules.hostnames import DnsHosts

        resolver.dns = DnsHosts(
            dns_settings or _resolver_settings(cf, config), lambda: _plain_macro(macros, "m")
        )
    # sendmail's load_if_names(): the loopback interface's literal and its name
    classes.add("w", "[127.0.0.1]")
    loopback_name, _status = resolver.name_of_address("127.0.0.1")
    if loopback_name:
        classes.add("w", loopback_name)

    operator_chars = _option(cf, "OperatorChars")
    tables = TokenTables.build(operator_chars)
    blank = _option(cf, "BlankSub")
    space_sub = _unescape(blank)[:1] if blank else " "
    must_quote = "@,;:\\()[]" + (_option(cf, "MustQuoteChars") or "")
    level = 10
    if cf.version:
        digits = "".join(ch for ch in cf.version[0].split("/")[0] if _ascii_digits(ch))
        level = int(digits) if digits else 10

    book, rule_complaints = _compiled_rules(cf, tables, operator_chars, macros)
    complaints.extend(rule_complaints)

    mailers: list[Mailer] = []
    for number, text in enumerate(_BUILTIN_MAILERS):
        name, fields = _split_builtin(text)
        mailers.append(_make_mailer(number, name, fields, book, macros))
    for spec in cf.mailers:
        existing = next((mm for mm in mailers if mm.name.lower() == spec.name.lower()), None)
        number = existing.number if existing is not None else len(mailers)
        mailer = _make_mailer(number, spec.name, _mailer_fields(spec), book, macros)
        if existing is not None:
            mailers[existing.number] = mailer
        else:
            mailers.append(mailer)

    opener = open_map or _default_map_opener
    maps: dict[str, mp.Map] = {}
    for spec in cf.maps:
        maps[spec.name.lower()] = _make_map(spec, opener, resolver, macros, space_sub, getpw, maps)
    if "host" not in maps:
        maps["host"] = mp.HostMap("host", mp.parse_map_args(["-a.", "-D"]), resolver)
    if "dequote" not in maps:
        maps["dequote"] = mp.DequoteMap("dequote", mp.MapFlags())
    if "aliases" not in maps:
        if alias_lookup is None:
            files = [f.strip() for f in (_option(cf, "AliasFile") or "").split(",") if f.strip()]
            alias_lookup = _default_alias_lookup(files)
        maps["aliases"] = AliasesMap(alias_lookup)

    return RuleWorld(
        book=book,
        tables=tables,
        space_sub=space_sub,
        must_quote=must_quote,
        macros=macros,
        classes=classes,
        maps=maps,
        mailers=mailers,
        resolver=resolver,
        config_level=level,
        help_file=_option(cf, "HelpFile"),
        complaints=complaints,
        header_checks=header_checks(cf),
        memo=RuleMemo() if memo else None,
    )


def header_checks(cf: CfFile) -> dict[str, tuple[str, bool]]:
    """The header check rulesets of the cf's H lines: `$>rs` strips (comments) from the
    value before the check, `$>+rs` keeps them; the last line for a header wins."""
    checks: dict[str, tuple[str, bool]] = {}
    for header in cf.headers:
        value = header.value.strip()
        if not value.startswith("$>"):
            continue
        keep = value[2:3] == "+"
        ruleset = value[3 if keep else 2 :].strip().strip('"')
        if ruleset:
            checks[header.name.lower()] = (ruleset, not keep)
    return checks


def _resolver_settings(cf: CfFile, config: Config | None) -> ResolverSettings:
    """The resolver as remote delivery configures it (pysendmail.dns), from the cf."""
    from pysendmail.dns import ResolverSettings

    if config is not None:
        return ResolverSettings.from_config(config)
    servers = (_option(cf, "ResolverNameServers") or "").replace(",", " ").split()
    port = _option(cf, "ResolverPort") or ""
    return ResolverSettings(nameservers=tuple(servers), port=int(port) if port.isdigit() else 53)


def _plain_macro(macros: Mapping[str, str], mid: str) -> str | None:
    value = macros.get(mid)
    if value is None:
        return None
    return tk.expand(value, macros.get)


def _unescape_macro(value: str) -> str:
    return value


def _mailer_fields(spec: MailerSpec) -> Mapping[str, str]:
    return spec.fields


def _make_map(
    spec: MapSpec,
    opener: MapOpener,
    resolver: FilesResolver,
    macros: dict[str, str],
    space_sub: str,
    getpw: Callable[[str], Sequence[str] | None] | None,
    known: Mapping[str, mp.Map],
) -> mp.Map:
    flags = mp.parse_map_args(spec.args)
    cls = spec.map_class.lower()
    name = spec.name
    made: mp.Map
    if cls in ("hash", "btree", "dbm", "implicit", "cdb"):
        made = mp.KeyValueMap(name, flags, opener(spec), cls)
    elif cls == "text":
        made = mp.TextMap(name, flags, spec.file or (flags.rest[0] if flags.rest else None))
    elif cls == "host":
        made = mp.HostMap(name, flags, resolver)
    elif cls == "dequote":
        made = mp.DequoteMap(name, flags)
    elif cls == "macro":
        made = mp.MacroMap(name, flags)
    elif cls == "arith":
        made = mp.ArithMap(name, flags)
    elif cls == "regex":
        made = mp.RegexMap(name, flags)
    elif cls in ("sequence", "switch"):
        members = [known[w.lower()] for w in flags.rest if w.lower() in known]
        made = mp.SequenceMap(name, flags, members)
    elif cls == "user":
        made = mp.UserMap(name, flags, getpw or _getpwnam)
    elif cls == "stab":
        made = mp.StabMap(name, flags, {})
    else:
        made = mp.NullMap(name, flags)
    if made.spacesub is None:
        made.spacesub = space_sub
    return made


def _getpwnam(name: str) -> Sequence[str] | None:
    try:
        import pwd

        entry = pwd.getpwnam(name)
    except (KeyError, ImportError):
        return None
    return tuple(str(x) for x in entry)


def mailers_from(world: RuleWorld) -> Iterable[Mailer]:
    return iter(world.mailers)
