"""The configuration model: what the parsers read (raw) and what the translator makes (Config).

Raw models keep every item's Location and keep macro references unexpanded
(`$j`, `${name}`, `$&x`, `$?x ... $| ... $.`). `Config` is the immutable snapshot
every other part receives; it is built once by `config.translate.translate()` and
replaced whole on SIGHUP. Nothing here reads files or touches the network.

Owner: the config translator. Other parts read these fields; add fields freely,
but do not rename or remove one without changing every user.
"""

from __future__ import annotations

from pysendmail.location import Diagnostic, Location
from pysendmail.record import field, record

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)

if TYPE_CHECKING:  # only the embedded default's state_dir holds one: keep the import off
    from collections.abc import Mapping
    from pathlib import Path  # the cached start-up path (config.cache)


class FrozenMap(dict):
    """A read-only dict: immutable like MappingProxyType, but picklable (the config cache)."""

    __slots__ = ()

    def _readonly(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a configuration mapping cannot be changed")

    __setitem__ = __delitem__ = __ior__ = _readonly  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (FrozenMap, (dict(self),))

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({dict.__repr__(self)})"


_EMPTY: Mapping = FrozenMap()


# ---------------------------------------------------------------- raw sendmail.cf


@record(frozen=True)
class Rule:
    """One `R` line, split at tabs: left-hand side, right-hand side, comment."""

    lhs: str
    rhs: str
    comment: str
    location: Location


@record(frozen=True)
class Ruleset:
    """An `S` line and the `R` lines under it. `name` may be "" for numbered-only sets."""

    name: str
    number: int | None
    rules: tuple[Rule, ...]
    location: Location


@record(frozen=True)
class MailerSpec:
    """An `M` line: `Mname, P=path, F=flags, S=eq/eq, R=eq/eq, A=argv, ...`."""

    name: str
    fields: Mapping[str, str]  # every `X=value` field as written, keyed by its letter/name
    location: Location

    @property
    def path(self) -> str:
        return self.fields.get("P", "")

    @property
    def flags(self) -> frozenset[str]:
        return frozenset(self.fields.get("F", ""))

    @property
    def argv(self) -> tuple[str, ...]:
        return tuple(self.fields.get("A", "").split())


@record(frozen=True)
class MapSpec:
    """A `K` line: `Kname class -flags args`."""

    name: str
    map_class: str
    args: tuple[str, ...]  # everything after the class, flags included, as written
    location: Location
    flags: Mapping[str, str] = _EMPTY  # "-T" -> "<TMPF>", "-a" -> "<OKR>", "-o" -> ""
    file: str | None = None  # the database file, when the class has one


@record(frozen=True)
class HeaderSpec:
    """An `H` line: `H?flags?Name: value` or `H?${macro}?Name: value`."""

    name: str
    value: str
    flags: str  # mailer flags between the ? ?, or "" when unconditional
    macro_condition: str | None  # the macro name in `?${name}?`, or None
    location: Location


@record(frozen=True)
class ClassSource:
    """A `C` or `F` line contributing to a class."""

    class_name: str
    words: tuple[str, ...]  # the words of a C line
    file: str | None  # the file of an F line (or a program, `F|prog`)
    optional: bool  # `F -o`
    scanf: str | None  # the scanf pattern of an F line
    location: Location


@record(frozen=True)
class CfFile:
    """A parsed sendmail.cf, nothing expanded or resolved yet."""

    path: str
    version: tuple[str, ...]  # the V line's fields
    macros: tuple[tuple[str, str, Location], ...]  # D lines, in order
    class_sources: tuple[ClassSource, ...]
    options: tuple[tuple[str, str, Location], ...]  # O lines as (long name, raw value)
    mailers: tuple[MailerSpec, ...]
    maps: tuple[MapSpec, ...]
    rulesets: tuple[Ruleset, ...]
    headers: tuple[HeaderSpec, ...]
    priorities: tuple[tuple[str, int, Location], ...]  # P lines
    trusted_users: tuple[tuple[str, Location], ...]  # T lines
    other: tuple[tuple[str, str, Location], ...] = ()  # E, Q, X and whatever else is kept
    diagnostics: tuple[Diagnostic, ...] = ()


# ---------------------------------------------------------------- translated Config


@record(frozen=True)
class DaemonSpec:
    """One `DaemonPortOptions` entry."""

    name: str
    port: int
    addr: str  # "" or "0.0.0.0" means every address of the family
    family: str = "inet"  # inet, inet6, local
    modifiers: frozenset[str] = frozenset()  # M= letters: E no ETRN, a AUTH required, s SMTPS...
    raw: Mapping[str, str] = _EMPTY


@record(frozen=True)
class Config:
    """The immutable snapshot of a translated configuration."""

    cf_path: str | None  # None for the embedded default
    cf: CfFile
    macros: Mapping[str, str]  # one-letter names as "j", long names as "daemon_flags"; unexpanded
    classes: Mapping[str, frozenset[str]]  # class w, R, M, G, t, ... (members lower-cased)
    options: Mapping[str, object]  # long option name -> typed value, per the options registry
    mailers: Mapping[str, MailerSpec]
    maps: Mapping[str, MapSpec]
    rulesets: Mapping[str, Ruleset]  # by name and by str(number)
    headers: tuple[HeaderSpec, ...]
    daemons: tuple[DaemonSpec, ...]
    priorities: Mapping[str, int] = _EMPTY
    trusted_users: frozenset[str] = frozenset()
    # Derived routing facts (what the m4 FEATUREs of a stock config mean):
    hostname: str = "localhost"  # $j
    local_host_names: frozenset[str] = frozenset()  # class w
    relay_domains: frozenset[str] = frozenset()  # class R
    smart_host: str | None = None  # DS, e.g. "relay:[smarthost.example.net]"
    masquerade_as: str | None = None  # DM
    masquerade_domains: frozenset[str] = frozenset()  # class M
    generics_domains: frozenset[str] = frozenset()  # class G
    state_dir: Path | None = None  # where a non-root embedded default keeps its files
    diagnostics: tuple[Diagnostic, ...] = ()
    mail_hub: str | None = None  # DH (nullclient, MAIL_HUB)
    luser_relay: str | None = None  # DL (LUSER_RELAY)
    mailbox_dir: str = "/var/mail"  # where local mbox deliveries go (`state_dir/mail` if not root)
    startup_note: str | None = None  # what the daemon says at start-up about the embedded default
    source_files: tuple[str, ...] = ()  # every file read to build this (the cache checks them)
    # Who routes addresses, decided once at translate time (rules/stock.py): "stock" (the
    # tables, and the rules only for addresses the tables cannot read), "cf" (the cf's own
    # rulesets 3 and 0 route every address), "tables" (no ruleset 0), "" (not decided:
    # a Config made without translate(); the router decides when it first routes).
    routing_rules: str = ""

    def option(self, name: str, default: object = None) -> object:
        return self.options.get(name, default)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")


@record(frozen=True)
class Overrides:
    """Command-line settings that win over the file (`-O Name=value`, `-oXvalue`, `-M x v`)."""

    options: Mapping[str, str] = field(default_factory=dict)  # long name -> raw value
    macros: Mapping[str, str] = field(default_factory=dict)
