"""From a parsed sendmail.cf to the immutable `Config` every other part receives.

`translate(cf_path, overrides, hostname=...)` is a function of the contents of the cf
and of the files its `F` lines name (class w, R, ...), of the host name and, for the
embedded default only, of who runs it (root or not) and $XDG_STATE_HOME. It resolves:

- macros: `$w` `$j` `$m` from the host name (`hostname` argument, else the system's),
  then the cf's `D` lines (`Dj` wins for `$j`), then `-M`/`-oM` overrides;
- classes from `C` and `F` lines (`-o` files may be missing, scanf patterns honoured),
  class w plus `$w` and `$j`, class t plus the `T` users;
- options typed through the options registry, file values first, command-line values
  (`-O Name=value`, `-oXvalue`) winning over them as in sendmail;
- mailers, maps, rulesets (by name and number; a ruleset defined twice is one ruleset),
  headers, priorities, the `DaemonPortOptions` daemons, and the routing facts of a stock
  config: smart host (DS), mail hub (DH), masquerading (DM, class M), generics (class G).

What it does not understand becomes a `Diagnostic` naming the line and the construct;
nothing is silently guessed. It never opens a socket and never writes a file.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path

from pysendmail import SENDMAIL_VERSION
from pysendmail.config.cfparse import munch, parse_cf, read_cf, split_macro_definition
from pysendmail.config.macros import expand
from pysendmail.config.model import (
    CfFile,
    Config,
    DaemonSpec,
    FrozenMap,
    MailerSpec,
    MapSpec,
    Overrides,
    Ruleset,
)
from pysendmail.config.options import (
    MACRO_LETTER,
    OptionError,
    defaults,
    expand_compound,
    option_by_letter,
    option_spec,
)
from pysendmail.errors import Diagnostic, Location
from pysendmail.record import record

SYSTEM_CF = "/etc/mail/sendmail.cf"
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CF = PACKAGE_DIR / "default.cf"
DEFAULT_HELPFILE = PACKAGE_DIR / "helpfile"
NON_ROOT_PORT = 2525
COMMAND_LINE = Location("command line", 0, 0)

# Map classes pysendmail knows; others are reported when a K line uses them.
_KNOWN_MAP_CLASS_NAMES = """hash btree dbm ndbm text implicit cdb host dns arith macro dequote
    sequence switch user null stab regex syslog"""
KNOWN_MAP_CLASSES = frozenset(_KNOWN_MAP_CLASS_NAMES.split())
_MAP_CLASS_SOURCE = re.compile(r"[^/]*@\w+:")  # `F{x}@ldap:...`, `F{x}key@map:spec`
_SERVICE_PORTS = {"smtp": 25, "submission": 587, "smtps": 465, "lmtp": 24}

_BUILTIN_MAILERS = {
    "*file*": {"P": "[FILE]", "F": "9DEFMPloqsu", "T": "X-Unix/X-Unix/X-Unix", "A": "FILE $u"},
    "*include*": {"P": "/dev/null", "F": "su", "A": "INCLUDE $u"},
}


def resolve_cf_path(cf_path: str | os.PathLike[str] | None) -> str | None:
    """The cf to read: the one asked for, else /etc/mail/sendmail.cf when it exists, else
    None (the embedded default)."""
    if cf_path is not None:
        return os.fspath(cf_path)
    return SYSTEM_CF if os.path.exists(SYSTEM_CF) else None


@record(frozen=True)
class DefaultEnvironment:
    """Where the embedded default keeps its files: sendmail's paths as root, else a
    per-user state directory and port 2525."""

    as_root: bool
    state_dir: Path | None

    @classmethod
    def current(cls, env: Mapping[str, str] | None = None, euid: int | None = None):
        env = os.environ if env is None else env
        euid = os.geteuid() if euid is None else euid
        if euid == 0:
            return cls(True, None)
        base = env.get("XDG_STATE_HOME") or os.path.join(
            env.get("HOME") or os.path.expanduser("~"), ".local", "state"
        )
        return cls(False, Path(base) / "pysendmail")

    def option_overrides(self) -> dict[str, str]:
        settings = {"HelpFile": str(DEFAULT_HELPFILE)}
        if self.state_dir is None:
            return settings
        state = self.state_dir
        settings.update(
            {
                "QueueDirectory": str(state / "mqueue"),
                "StatusFile": str(state / "sendmail.st"),
                "HostStatusDirectory": str(state / "hoststat"),
                "PidFile": str(state / "sendmail.pid"),
                "DeadLetterDrop": str(state / "dead.letter"),
                "AliasFile": str(state / "aliases"),
                "DaemonPortOptions": f"Name=MTA, Family=inet, Addr=127.0.0.1, Port={NON_ROOT_PORT}",
            }
        )
        return settings

    def note(self) -> str:
        if self.state_dir is None:
            return (
                f"no {SYSTEM_CF}: using the embedded default configuration "
                "(local delivery, SMTP on 127.0.0.1:25)"
            )
        return (
            f"no {SYSTEM_CF} and not running as root: using the embedded default "
            f"configuration with its files under {self.state_dir} "
            f"(queue {self.state_dir / 'mqueue'}, mailboxes {self.state_dir / 'mail'}) "
            f"and SMTP on 127.0.0.1:{NON_ROOT_PORT}"
        )


def split_hostname(fqdn: str) -> tuple[str, str]:
    """`mail.example.com` -> ("mail", "example.com")."""
    short, _, domain = fqdn.strip().rstrip(".").partition(".")
    return short, domain


def _routing_rules(cf: CfFile) -> str:
    """Config.routing_rules: whether the cf's routing rulesets are the stock m4 output."""
    from pysendmail.rules.stock import ROUTING_RULESETS, StockReport

    report = StockReport(cf.rulesets)
    if not report.has_rules("0"):
        return "tables"
    return "cf" if any(report.runs_rules(entry) for entry in ROUTING_RULESETS) else "stock"


def translate(
    cf_path: str | os.PathLike[str] | None,
    overrides: Overrides | None = None,
    *,
    hostname: str | None = None,
    default_environment: DefaultEnvironment | None = None,
) -> Config:
    """Translate the cf at `cf_path` (None: the embedded default) into a `Config`.

    Raises ConfigError only when the cf cannot be read; every problem inside it is a
    diagnostic of the result."""
    environment = None
    if cf_path is None:
        environment = default_environment or DefaultEnvironment.current()
        cf = parse_cf(DEFAULT_CF.read_text(encoding="utf-8"), str(DEFAULT_CF))
    else:
        cf = read_cf(cf_path)
    return _Translator(cf, overrides or Overrides(), hostname, environment).run(
        None if cf_path is None else os.fspath(cf_path)
    )


class _Translator:
    def __init__(
        self,
        cf: CfFile,
        overrides: Overrides,
        hostname: str | None,
        environment: DefaultEnvironment | None,
    ) -> None:
        self.cf = cf
        self.overrides = overrides
        self.hostname = hostname
        self.environment = environment
        self.diagnostics: list[Diagnostic] = list(cf.diagnostics)
        self.source_files: list[str] = [cf.path]

    def warn(self, location: Location, message: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "warning"))

    def error(self, location: Location, message: str) -> None:
        self.diagnostics.append(Diagnostic(location, message, "error"))

    # ------------------------------------------------------------ the whole

    def run(self, cf_path: str | None) -> Config:
        cf = self.cf
        self.check_version()
        macros = self.macros()
        options = self.options(macros)
        expanded = {name: expand(value, macros) for name, value in macros.items()}
        classes = self.classes(macros)
        hostname = expanded.get("j", "") or "localhost"
        state_dir = self.environment.state_dir if self.environment else None
        self.check_other_lines()
        return Config(
            cf_path=cf_path,
            cf=cf,
            macros=FrozenMap(macros),
            classes=FrozenMap(classes),
            options=FrozenMap(options),
            mailers=FrozenMap(self.mailers()),
            maps=FrozenMap(self.maps()),
            rulesets=FrozenMap(self.rulesets()),
            headers=cf.headers,
            daemons=self.daemons(options),
            priorities=FrozenMap({name: value for name, value, _ in cf.priorities}),
            trusted_users=classes.get("t", frozenset()),
            hostname=hostname,
            local_host_names=classes.get("w", frozenset()),
            relay_domains=classes.get("R", frozenset()),
            smart_host=expanded.get("S") or None,
            masquerade_as=expanded.get("M") or None,
            masquerade_domains=classes.get("M", frozenset()),
            generics_domains=classes.get("G", frozenset()),
            state_dir=state_dir,
            diagnostics=tuple(sorted(self.diagnostics, key=_diagnostic_order)),
            mail_hub=expanded.get("H") or None,
            luser_relay=expanded.get("L") or None,
            mailbox_dir=str(state_dir / "mail") if state_dir else "/var/mail",
            startup_note=self.environment.note() if self.environment else None,
            source_files=tuple(self.source_files),
            routing_rules=_routing_rules(cf),
        )

    def check_version(self) -> None:
        version = self.cf.version
        if not version:
            self.warn(Location(self.cf.path, 1, 1), "no V line: an old configuration format")
        elif re.fullmatch(r"[0-9]{1,3}", version[0]) and int(version[0]) < 10:
            self.warn(
                Location(self.cf.path, 1, 1),
                f"configuration level {version[0]}: pysendmail reads level 10 files",
            )

    def check_other_lines(self) -> None:
        for kind, text, location in self.cf.other:
            name = text.split(",")[0].strip()
            if kind == "Q":
                self.warn(location, f"queue group {name}: queue groups are not supported; "
                          "its mail uses the main queue")  # fmt: skip
            elif kind == "X":
                self.warn(location, f"milter {name}: milters are not supported and are ignored")

    # ------------------------------------------------------------ macros

    def macros(self) -> dict[str, str]:
        fqdn = self.hostname or socket.getfqdn() or "localhost"
        short, domain = split_hostname(fqdn)
        macros = {"w": short, "j": fqdn.rstrip("."), "m": domain, "k": short}
        macros["v"] = SENDMAIL_VERSION
        for name, value, _ in self.cf.macros:
            macros[name] = value
        for name, value in self.overrides.macros.items():
            macros[name] = value
        for name, value in self.overrides.options.items():
            if name == MACRO_LETTER and value:
                macro, macro_value = split_macro_definition(value)
                macros[macro] = munch(macro_value)[0]
        return macros

    # ------------------------------------------------------------ classes

    def classes(self, macros: Mapping[str, str]) -> dict[str, frozenset[str]]:
        members: dict[str, set[str]] = {}
        for source in self.cf.class_sources:
            bucket = members.setdefault(source.class_name, set())
            if source.file is None:
                bucket.update(word.lower() for word in source.words)
            else:
                bucket.update(self.read_class_file(source, macros))
        w = members.setdefault("w", set())
        for name in ("w", "j"):
            value = expand(macros.get(name, ""), macros).lower()
            if value:
                w.add(value)
        t = members.setdefault("t", set())
        t.update(user for user, _ in self.cf.trusted_users)
        return {name: frozenset(words) for name, words in members.items()}

    def read_class_file(self, source, macros: Mapping[str, str]) -> set[str]:
        target = expand(source.file or "", macros)
        if target.startswith("|"):
            text = self.run_class_program(source, target)
            if text is None:
                return set()
        elif _MAP_CLASS_SOURCE.match(target):
            self.warn(source.location, f"class {source.class_name}: map classes are not supported")
            return set()
        else:
            self.source_files.append(target)
            try:
                text = Path(target).read_text(encoding="utf-8", errors="surrogateescape")
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
                if not source.optional:
                    reason = getattr(exc, "strerror", None) or str(exc)
                    self.error(
                        source.location,
                        f"class {source.class_name}: cannot open {target!r}: {reason}"
                        if "\0" in target
                        else f"class {source.class_name}: cannot open {target}: {reason}",
                    )
                return set()
        pattern = _scanf_pattern(source.scanf)
        if pattern is None:
            self.warn(
                source.location,
                f"class {source.class_name}: scanf pattern {source.scanf!r} not understood; "
                "the first word of each line is used",
            )
            pattern = _scanf_pattern("%s")
        words: set[str] = set()
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            match = pattern.match(line) if pattern else None
            if match:
                words.update(word.lower() for word in match.group(1).split())
        return words

    def run_class_program(self, source, target: str) -> str | None:
        """The output of an `F|program` class's program, run as sendmail runs it."""
        from pysendmail.config.classprog import ClassProgramError, class_program_output

        # The output can change between starts, as with sendmail, which runs it each time:
        # a "|" source file keeps this Config out of the cache (config/cache.py).
        self.source_files.append(target)
        default_user = self.overrides.options.get("DefaultUser") or next(
            (value for name, value, _ in self.cf.options if name == "DefaultUser"), "1:1"
        )
        try:
            return class_program_output(target[1:], default_user)
        except ClassProgramError as exc:
            report = self.warn if source.optional else self.error
            report(source.location, f"class {source.class_name}: {exc}")
            return None

    # ------------------------------------------------------------ options

    def options(self, macros: dict[str, str]) -> dict[str, object]:
        values: dict[str, object] = defaults()
        from_file: set[str] = set()
        sticky: dict[str, tuple[str, Location]] = {}
        for name, raw in self.override_settings():
            for long_name, value in self.normalize(name, raw, COMMAND_LINE, command_line=True):
                sticky[long_name] = (value, COMMAND_LINE)
        for name, raw, location in self.cf.options:
            if name == MACRO_LETTER:
                continue
            for long_name, value in self.normalize(name, raw, location, command_line=False):
                if long_name in sticky:
                    continue
                spec = option_spec(long_name)
                assert spec is not None
                typed = self.typed(long_name, value, location)
                if typed is None:
                    continue
                if spec.kind in ("list", "multi") and long_name in from_file:
                    values[long_name] = tuple(values[long_name]) + tuple(typed)  # type: ignore[arg-type]
                else:
                    values[long_name] = typed
                from_file.add(long_name)
        for long_name, (value, location) in sticky.items():
            typed = self.typed(long_name, value, location)
            if typed is not None:
                values[long_name] = typed
        return values

    def override_settings(self) -> Iterable[tuple[str, str]]:
        if self.environment is not None:
            yield from self.environment.option_overrides().items()
        yield from self.overrides.options.items()

    def normalize(
        self, name: str, raw: str, location: Location, *, command_line: bool
    ) -> list[tuple[str, str]]:
        """(long name, raw value) pairs for one setting; unknown names are reported,
        except unknown one-letter names, which sendmail ignores."""
        if len(name) == 1:
            if name == MACRO_LETTER:
                return []
            compound = expand_compound(name, raw)
            if compound is not None:
                return compound
            spec = option_by_letter(name)
            if spec is None:
                if not command_line:
                    self.warn(location, f"unknown option letter {name!r} ignored")
                return []
            return [(spec.name, raw)]
        compound = expand_compound(name, raw)
        pairs = compound if compound is not None else [(name, raw)]
        known: list[tuple[str, str]] = []
        for long_name, value in pairs:
            spec = option_spec(long_name)
            if spec is None:
                self.warn(location, f"unknown option {long_name} ignored")
                continue
            known.append((spec.name, value))
        return known

    def typed(self, name: str, raw: str, location: Location) -> object | None:
        spec = option_spec(name)
        assert spec is not None
        try:
            return spec.parse(raw)
        except OptionError as exc:
            self.error(location, f"option {spec.name}: {exc}")
            return None

    # ------------------------------------------------------------ mailers, maps, rulesets

    def mailers(self) -> dict[str, MailerSpec]:
        mailers: dict[str, MailerSpec] = {}
        builtin = Location("<builtin>", 0, 0)
        for name, fields in _BUILTIN_MAILERS.items():
            mailers[name] = MailerSpec(name, FrozenMap(fields), builtin)
        for mailer in self.cf.mailers:
            if "P" not in mailer.fields:
                self.error(mailer.location, f"mailer {mailer.name}: no path (P=) given")
                continue
            if "A" not in mailer.fields and mailer.fields["P"] != "[IPC]":
                self.warn(mailer.location, f"mailer {mailer.name}: no arguments (A=) given")
            mailers[mailer.name] = mailer
        return mailers

    def maps(self) -> dict[str, MapSpec]:
        maps: dict[str, MapSpec] = {}
        for spec in self.cf.maps:
            if spec.map_class not in KNOWN_MAP_CLASSES:
                self.warn(
                    spec.location,
                    f"map {spec.name}: map class {spec.map_class} is not supported; "
                    "lookups in it find nothing",
                )
            elif spec.file and "-o" not in spec.flags and not _map_file_exists(spec.file):
                self.warn(
                    spec.location,
                    f"map {spec.name}: neither {spec.file} nor a compiled form of it exists; "
                    "lookups in it find nothing",
                )
            maps[spec.name] = spec
        return maps

    def rulesets(self) -> dict[str, Ruleset]:
        merged: dict[object, Ruleset] = {}
        order: list[object] = []
        by_name: dict[str, object] = {}
        for ruleset in self.cf.rulesets:
            key: object = ruleset.number if ruleset.number is not None else None
            if key is None and ruleset.name in by_name:
                key = by_name[ruleset.name]
            if key is None:
                key = ("name", ruleset.name)
            if ruleset.name:
                by_name.setdefault(ruleset.name, key)
            previous = merged.get(key)
            if previous is None:
                merged[key] = ruleset
                order.append(key)
                continue
            if previous.rules and ruleset.rules:
                self.warn(
                    ruleset.location,
                    f"ruleset {ruleset.name or ruleset.number} has multiple definitions; "
                    "the rules are added to the first",
                )
            merged[key] = Ruleset(
                previous.name or ruleset.name,
                previous.number if previous.number is not None else ruleset.number,
                previous.rules + ruleset.rules,
                previous.location,
            )
        result: dict[str, Ruleset] = {}
        for key in order:
            ruleset = merged[key]
            if ruleset.name:
                result[ruleset.name] = ruleset
            if ruleset.number is not None:
                result[str(ruleset.number)] = ruleset
        return result

    # ------------------------------------------------------------ daemons

    def daemons(self, options: Mapping[str, object]) -> tuple[DaemonSpec, ...]:
        entries = options.get("DaemonPortOptions") or ()
        if not entries:
            entries = ("Name=MTA",)
        specs: list[DaemonSpec] = []
        for index, raw in enumerate(entries):  # type: ignore[arg-type]
            try:
                specs.append(parse_daemon_options(str(raw), index))
            except ValueError as exc:
                self.error(self.option_location("DaemonPortOptions", raw), str(exc))
        return tuple(specs)

    def option_location(self, name: str, raw: object) -> Location:
        for option, value, location in self.cf.options:
            if option == name and value.strip() == str(raw):
                return location
        return COMMAND_LINE


def _map_file_exists(file: str) -> bool:
    """The text source of a K line's file, or the compiled form makemap made of it."""
    from pysendmail.config.compiled import compiled_path, source_path

    try:
        return source_path(file).exists() or compiled_path(file).exists()
    except (OSError, ValueError):
        return False


def _diagnostic_order(diagnostic: Diagnostic) -> tuple[int, str, int, int]:
    location = diagnostic.location
    return (location.line > 0, location.file, location.line, location.column)


def parse_daemon_options(raw: str, index: int = 0) -> DaemonSpec:
    """One DaemonPortOptions value, `Name=MTA, Port=25, Addr=127.0.0.1, Family=inet, M=Ea`.
    Keys are known by their first letter, as sendmail reads them. ValueError if bad."""
    fields: dict[str, str] = {}
    for part in raw.split(","):
        key, eq, value = part.partition("=")
        if not key.strip():
            continue
        if not eq:
            raise ValueError(f"DaemonPortOptions: `=' expected in {part.strip()!r}")
        fields[key.strip()] = value.strip()
    by_letter = {key[0]: value for key, value in fields.items()}
    family = by_letter.get("F", "inet").lower()
    if family not in ("inet", "inet6", "local", "unix"):
        raise ValueError(f"DaemonPortOptions: unknown address family {family!r}")
    port_text = by_letter.get("P", "smtp")
    port = 0 if family in ("local", "unix") else _port_number(port_text)
    addr = by_letter.get("A", "")
    modifiers = frozenset(re.sub(r"[\s,]", "", by_letter.get("M", "")))
    return DaemonSpec(
        name=by_letter.get("N", f"Daemon{index}"),
        port=port,
        addr=addr,
        family="local" if family == "unix" else family,
        modifiers=modifiers,
        raw=FrozenMap(fields),
    )


def _port_number(text: str) -> int:
    text = text.strip()
    if re.fullmatch(r"[0-9]{1,5}", text) and 0 < int(text) < 65536:
        return int(text)
    if text.lower() in _SERVICE_PORTS:
        return _SERVICE_PORTS[text.lower()]
    try:
        return socket.getservbyname(text, "tcp")
    except (OSError, ValueError):  # ValueError: NUL bytes, unencodable text
        raise ValueError(f"DaemonPortOptions: invalid port {text!r}") from None


def _scanf_pattern(scanf: str | None) -> re.Pattern[str] | None:
    """A regex with one group for sendmail's F-line scanf pattern: `%s` (the first word)
    or `%[...]`/`%[^...]` (a character set), optionally after literal text."""
    text = scanf or "%s"
    match = re.fullmatch(r"([^%]*)%(s|\[(\^?)((?:\\.|[^\]])+)\])", text)
    if not match:
        return None
    prefix, conversion, negate, charset = match.groups()
    if conversion == "s":
        body = r"(\S+)"
    else:
        chars = re.sub(r"\\(.)", r"\1", charset)
        body = "([" + ("^" if negate else "") + re.escape(chars) + "]*)"
    return re.compile(r"\s*" + re.escape(prefix.strip()) + body)
