"""Routing: what a recipient address means, and what a sender address becomes.

`Router(config)` answers, for a stock m4-generated configuration, what sendmail's ruleset 0
and its alias expansion answer:

- `resolve(address) -> Route(mailer, host, user)` or a MailError: class w (local domains),
  the virtusertable (`user+detail`, `user+*`, `@domain` catch-all, `%1 %2 %3`, `error:`),
  the mailertable (exact domain, then `.parent` suffixes, then `.`; `error:`, `local:`),
  the smart host (`DS`), IP literals, the `%` hack, and remote domains canonified through
  the hosts file.
- `expand(recipients) -> Expansion`: aliases (`:include:`, `|prog`, `/file`, `error:`,
  `owner-` lists are ordinary entries), `~/.forward` (ForwardPath; a group- or
  world-writable file or one owned by someone else is refused, as sendmail refuses it),
  duplicates suppressed so each target gets one delivery, loops broken with sendmail's
  words. The order of deliveries and of messages is sendmail's (the items of one list are
  taken last to first, the lines of an :include: file first to last).
- `rewrite_sender(address)`: genericstable and masquerading of a sender where the config
  enables them.

`|prog` and `/file` deliveries carry the user who controls them (`ControllingUser`: the
alias file's or :include: file's owner, never root, else DefaultUser; the .forward owner)
and are refused for an address given directly (SMTP RCPT, command line) unless the caller
explicitly allows it.

Everything it looks up is injectable (aliases, maps, the user database, host names, file
reading), so tests and `-bv` use it without system users or DNS. It never delivers.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat

from pysendmail.address import EMPTY_GROUP_ERROR, check_balance, parse_item, split_list
from pysendmail.config.aliastarget import INCLUDE_PREFIX, TargetKind, classify_target
from pysendmail.config.model import Config, MapSpec
from pysendmail.envelope import ControllingUser
from pysendmail.errors import (
    AddressSyntaxError,
    ConfigError,
    HostUnknown,
    MailError,
    TempFailure,
    UserUnknown,
)
from pysendmail.record import field, record
from pysendmail.sysexits import ExitCode
from pysendmail.tablesyntax import needs_rules

TYPE_CHECKING = False  # typing itself is not imported: start-up time (bench/README.md)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from pysendmail.config.aliases import AliasEntry, AliasTarget
    from pysendmail.config.compiled import AliasTable
    from pysendmail.rules.routes import RulesForRouting

MAX_ALIAS_RECURSION = 10
MAX_REWRITES = 20  # virtusertable results that point at another virtual address
MAXSHORTSTR = 203  # sendmail's limit on an address in a message
MAXNAME = 256  # sendmail's longest token in an address
# `re` is imported only by the paths that need it: a plain submission does without it.
_TOKEN_PATTERN = r'[^\s()<>@,;:\\".\[\]]+'
FILE_MAILER = "*file*"
PROG_MAILER = "prog"
LOCAL_MAILER = "local"
ERROR_MAILER = "*error*"


# ---------------------------------------------------------------- results


@record(frozen=True)
class Route:
    """A mailer triple: `$#mailer $@host $:user`. `host` is "" where the mailer has none."""

    mailer: str
    host: str
    user: str


@record(frozen=True)
class Delivery:
    """One delivery the queue runner hands to a delivery module."""

    mailer: str
    host: str
    user: str
    original: str  # the recipient as the sender gave it
    address: str = ""  # the address (as written) that produced this delivery
    controlling_user: ControllingUser | None = None

    @property
    def route(self) -> Route:
        return Route(self.mailer, self.host, self.user)


@record(frozen=True)
class Event:
    """Something sendmail says while expanding: `aliased`, `error`, `note`."""

    kind: str
    address: str  # "" when sendmail names no address (the loop message)
    text: str
    error: MailError | None = None


@record
class Expansion:
    deliveries: list[Delivery] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def errors(self) -> list[Event]:
        return [e for e in self.events if e.kind == "error"]

    def exit_code(self) -> int:
        """sendmail's exit status: the last error that sets one (user unknown, host
        unknown ...), else 64 (EX_USAGE) when any error was reported, else 0."""
        codes = [int(e.error.exit_code) for e in self.errors if e.error is not None]
        specific = [c for c in codes if c != ExitCode.USAGE]
        if specific:
            return specific[-1]
        return ExitCode.USAGE if codes else ExitCode.OK


@record(frozen=True)
class LocalUser:
    name: str
    uid: int
    gid: int
    home: str


if TYPE_CHECKING:
    from typing import Protocol

    class MapLike(Protocol):
        def lookup(self, key: str) -> str | None: ...

    UserLookup = Callable[[str], LocalUser | None]
    AliasLookup = Callable[[str], tuple[AliasEntry, ControllingUser | None] | None]


def system_user(name: str) -> LocalUser | None:
    """The default user lookup: the system's passwd database."""
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, UnicodeEncodeError, ValueError):
        return None
    return LocalUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


class HostsFile:
    """Canonical names from a hosts(5) file: the first name on the line of any alias."""

    def __init__(self, text: str) -> None:
        self.canonical: dict[str, str] = {}
        for line in text.split("\n"):
            words = line.split("#", 1)[0].split()
            if len(words) < 2:
                continue
            for name in words[1:]:
                self.canonical.setdefault(name.lower().rstrip("."), words[1].lower())

    @classmethod
    def read(cls, path: str) -> HostsFile:
        try:
            with open(path, errors="replace") as stream:
                return cls(stream.read())
        except OSError:
            return cls("")

    def __call__(self, name: str) -> str | None:
        return self.canonical.get(name.lower().rstrip("."))


def shorten(text: str, limit: int = MAXSHORTSTR) -> str:
    """sendmail's shortenstring(): the two ends of a long string around `...`."""
    if len(text) < limit:
        return text
    half = (limit - 3) // 2
    return f"{text[:half]}...{text[-half:]}"


# ---------------------------------------------------------------- error values


_SYSEXITS_NAMES = {
    "usage": ExitCode.USAGE,
    "nouser": ExitCode.NOUSER,
    "nohost": ExitCode.NOHOST,
    "unavailable": ExitCode.UNAVAILABLE,
    "software": ExitCode.SOFTWARE,
    "tempfail": ExitCode.TEMPFAIL,
    "protocol": ExitCode.PROTOCOL,
    "config": ExitCode.CONFIG,
    "dataerr": ExitCode.DATAERR,
    "noperm": ExitCode.NOPERM,
}
_DSN_PATTERN = r"^[245]\.\d{1,3}\.\d{1,3}$"


def exit_code_for_status(status: str) -> ExitCode:
    """sendmail's dsntoexitstat(): an enhanced status code to a sysexits code."""
    if status.startswith("2"):
        return ExitCode.OK
    if status.startswith("4"):
        return ExitCode.TEMPFAIL
    try:
        _, subject, detail = (int(part) for part in status.split("."))
    except ValueError:
        return ExitCode.UNAVAILABLE
    if subject == 1:
        return ExitCode.NOHOST if detail in (2, 4) else ExitCode.NOUSER
    if subject == 5:
        return ExitCode.PROTOCOL
    if subject == 6:
        return ExitCode.DATAERR
    if subject == 7:
        return ExitCode.NOPERM
    return ExitCode.UNAVAILABLE


def _strip_comments(text: str) -> str:
    import re

    return re.sub(r"\s*\([^()]*\)", "", text).strip()


def error_from_value(value: str) -> MailError:
    """The error an `error:` value names: `5.1.1:550 text`, `nouser 550 5.1.1 text`,
    `550 text`, or a bare text."""
    import re

    text = _strip_comments(value.strip())
    exit_code: ExitCode | None = None
    status: str | None = None
    head, _, rest = text.partition(":")
    if re.match(_DSN_PATTERN, head):
        status, text = head, rest.strip()
    else:
        word, _, rest = text.partition(" ")
        if word.lower() in _SYSEXITS_NAMES:
            exit_code, text = _SYSEXITS_NAMES[word.lower()], rest.strip()
    reply = 550 if (status or "5").startswith("5") else 451
    match = re.match(r"^([245]\d\d)(?:[ -](.*))?$", text)
    if match:
        reply, text = int(match.group(1)), (match.group(2) or "").strip()
    match = re.match(r"^([245]\.\d{1,3}\.\d{1,3})(?: (.*))?$", text)
    if match:
        status, text = match.group(1), (match.group(2) or "").strip()
    if status is None:
        status = "5.0.0" if reply >= 500 else "4.0.0"
    if exit_code is None:
        exit_code = exit_code_for_status(status)
    kind: type[MailError] = MailError
    if status.startswith("4") or exit_code is ExitCode.TEMPFAIL:
        kind = TempFailure
    elif exit_code is ExitCode.NOUSER:
        kind = UserUnknown
    elif exit_code is ExitCode.NOHOST:
        kind = HostUnknown
    return kind(text, exit_code=exit_code, reply_code=reply, status=status)


# ---------------------------------------------------------------- the router


@record
class _Entry:
    key: tuple[str, str, str]
    address: str
    state: str  # "ok", "expanded", "bad"
    top_level: bool
    delivery: Delivery | None = None


class Router:
    """Routing for one Config, with every lookup injectable."""

    def __init__(
        self,
        config: Config,
        *,
        aliases: AliasLookup | None = None,
        maps: Mapping[str, MapLike] | None = None,
        users: UserLookup | None = None,
        canonify: Callable[[str], str | None] | None = None,
        read_text: Callable[[str], str] | None = None,
        file_stat: Callable[[str], os.stat_result] | None = None,
    ) -> None:
        self.config = config
        self.local_domains = {d.lower().rstrip(".") for d in config.local_host_names}
        self.local_domains.add(config.hostname.lower().rstrip("."))
        self.classes = {
            name: {m.lower() for m in members} for name, members in config.classes.items()
        }
        self._maps: dict[str, MapLike | None] = dict(maps) if maps is not None else {}
        self._maps_injected = maps is not None
        self.users = users or system_user
        self.canonify = canonify if canonify is not None else self._hosts_canonifier()
        self.read_text = read_text or _read_text
        self.file_stat = file_stat or os.stat
        self.aliases = aliases or self._alias_files_lookup()
        self._rules: RulesForRouting | None = None  # made at the first resolve()

    # ---- lookups

    def _hosts_canonifier(self) -> Callable[[str], str | None]:
        hosts_file = self.config.option("HostsFile")
        if isinstance(hosts_file, str) and hosts_file:
            return HostsFile.read(hosts_file)
        return lambda name: None

    def _alias_files_lookup(self) -> AliasLookup:
        # The tables (and the aliases(5) parser) are made at the first lookup: a message
        # for remote recipients only needs neither (start-up time, bench/README.md).
        made: list[list[AliasTable]] = []

        def lookup(name: str) -> tuple[AliasEntry, ControllingUser | None] | None:
            if not made:
                from pysendmail.config.aliases import alias_files, local_domain_test
                from pysendmail.config.compiled import AliasTable

                is_local = local_domain_test(self.config)
                made.append([AliasTable(path, is_local) for path in alias_files(self.config)])
            for table in made[0]:
                try:
                    entry = table.lookup(name)
                except ConfigError:
                    continue
                if entry is not None:
                    return entry, self._owner_of(str(table.source))
            return None

        return lookup

    def map(self, name: str) -> MapLike | None:
        if name in self._maps or self._maps_injected:
            return self._maps.get(name)
        spec = self.config.maps.get(name)
        found: MapLike | None = None
        if spec is not None:
            from pysendmail.config.compiled import FILE_MAP_CLASSES, open_map

            if spec.map_class.lower() in FILE_MAP_CLASSES | {"text"}:
                found = open_map(spec)
        self._maps[name] = found
        return found

    def _map_lookup(self, name: str, key: str) -> str | None:
        table = self.map(name)
        if table is None:
            return None
        try:
            return table.lookup(key)
        except ConfigError:
            return None

    def _owner_of(self, path: str) -> ControllingUser | None:
        """Who controls |prog and /file targets of a file: its owner, never root."""
        try:
            owner = self.file_stat(path).st_uid
        except OSError:
            return self.default_user()
        if owner == 0:
            return self.default_user()
        try:
            entry = pwd.getpwuid(owner)
            return ControllingUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
        except KeyError:
            return ControllingUser(str(owner), owner, owner)

    def default_user(self) -> ControllingUser:
        """DefaultUser (mail:mail, or 1:1): who runs programs nobody else controls."""
        raw = str(self.config.option("DefaultUser", "mail:mail") or "mail:mail")
        name, _, group = raw.partition(":")
        if name.isdigit():
            uid = int(name)
            gid = int(group) if group.isdigit() else uid
            return ControllingUser(name, uid, gid)
        user = self.users(name)
        if user is not None:
            return ControllingUser(user.name, user.uid, user.gid)
        return ControllingUser(name or "daemon", 1, 1)

    def is_local_domain(self, domain: str) -> bool:
        name = domain.lower().rstrip(".")
        if name.startswith("[") and name.endswith("]"):
            if name in self.local_domains:
                return True
            from pysendmail.interfaces import is_own_literal  # class w's interface addresses

            return is_own_literal(name)
        return name in self.local_domains

    def _mailer_flags(self, mailer: str) -> frozenset[str]:
        spec = self.config.mailers.get(mailer)
        return spec.flags if spec is not None else frozenset()

    def _remote_mailer(self) -> str:
        for name in ("esmtp", "smtp", "relay"):
            if name in self.config.mailers:
                return name
        return "esmtp"

    # ---- resolve

    def resolve(self, address: str) -> Route:
        """The mailer triple for an address, or the MailError sendmail would give.

        A cf with hand-written routing rules (LOCAL_RULE_n, rulesets beyond the stock m4
        output), and on a stock cf the addresses whose tokens the tables do not take
        apart (blanks, nested <>, route and list syntax), are routed by the cf's own
        rulesets 3 and 0 through the rules engine (rules/routes.py)."""
        decided = self.config.routing_rules
        if decided == "tables" or (decided == "stock" and not needs_rules(address)):
            return self._resolve(address, 0)  # without importing the engine: start-up time
        rules = self._rules_for_routing().router_for(address)
        if rules is not None:
            return Route(*rules.resolve(address))
        return self._resolve(address, 0)

    def prepare_rules(self) -> None:
        """A cf with its own routing rules: compile them now rather than at the first
        resolve() (a daemon does it before its first client)."""
        if self.config.routing_rules == "cf":
            self._rules_for_routing()

    def _rules_for_routing(self) -> RulesForRouting:
        if self._rules is None:
            from pysendmail.rules.routes import RulesForRouting

            self._rules = RulesForRouting(self.config, open_map=self._rule_map)
        return self._rules

    def table_route(self, address: str) -> Route:
        """The triple the tables give, without the rules (tests compare the two)."""
        return self._resolve(address, 0)

    def _rule_map(self, spec: MapSpec) -> Callable[[str], str | None] | None:
        table = self.map(spec.name)
        return table.lookup if table is not None else None

    def _resolve(self, address: str, depth: int) -> Route:
        text = address.strip()
        if depth > MAX_REWRITES:
            raise MailError(
                "aliasing/forwarding loop broken", exit_code=ExitCode.USAGE, status="5.4.6"
            )
        if text in ("", '""', "<>"):
            raise AddressSyntaxError("User address required")
        check_balance(text)
        if _is_empty_group(text):
            raise AddressSyntaxError(EMPTY_GROUP_ERROR)
        addr = parse_item(text).addr_spec
        unquoted = addr[1:-1] if len(addr) >= 2 and addr[0] == addr[-1] == '"' else addr
        # buildaddr(): programs and files only where the local mailer has F=| and F=/
        local = self.config.mailers.get(LOCAL_MAILER)
        local_flags = local.flags if local is not None else frozenset("|/")
        if unquoted.startswith("|") and "|" in local_flags:
            return Route(PROG_MAILER, "", unquoted)
        if unquoted.startswith("/") and "/" in local_flags:
            return Route(FILE_MAILER, "", unquoted)
        if addr.startswith("@"):
            colon = addr.find(":")
            if colon < 0:
                raise AddressSyntaxError("User address required")
            addr = addr[colon + 1 :]
        if "@@" in addr:
            raise AddressSyntaxError("Invalid route address")
        local, at, domain = addr.rpartition("@") if "@" in _unquoted_part(addr) else (addr, "", "")
        if at and not domain:
            raise AddressSyntaxError("Hostname required")
        if at and not local:
            raise AddressSyntaxError("User address required")
        uucp = _uucp_path(local, domain if at else "")
        if uucp is not None:
            smart = self._smart_host_route(uucp)
            if smart is not None:
                return smart
            host = uucp.split("!", 1)[0]
            return Route(self._remote_mailer(), f"{host}.uucp.", f"{uucp}@{self.config.hostname}")
        if not at:
            if "%" in local:
                left, _, right = local.rpartition("%")
                return self._resolve(f"{left}@{right}", depth + 1)
            return self._local_route(local)
        domain = domain.rstrip(".") or domain
        if self.is_local_domain(domain):
            if "%" in _unquoted_part(local):
                left, _, right = local.rpartition("%")
                return self._resolve(f"{left}@{right}", depth + 1)
            virtual = self._virtuser(local, domain, depth)
            return virtual if virtual is not None else self._local_route(local)
        if domain.lower() in self.classes.get("VirtHost", set()):
            virtual = self._virtuser(local, domain, depth)
            if virtual is not None:
                return virtual
        routed = self._mailertable(local, domain, depth)
        if routed is not None:
            return routed
        return self._remote_route(local, domain)

    def _local_route(self, local: str) -> Route:
        user = local
        if len(user) >= 2 and user[0] == user[-1] == '"':
            import re

            if re.fullmatch(r'"[^"\s\\]+"', user):
                user = user[1:-1]
        if "u" not in self._mailer_flags(LOCAL_MAILER):
            user = user.lower()
        return Route(LOCAL_MAILER, "", user)

    def hub_route(self, user: str) -> Route | None:
        """Ruleset 5 of a cf with a mail hub (DH: FEATURE(nullclient), MAIL_HUB): a local
        name that no alias took goes to the hub, `[mailer:]hub`, relay by default, as
        `user@hub`; only when the local mailer asks for ruleset 5 (F=5)."""
        hub = self.config.mail_hub
        if not hub or "5" not in self._mailer_flags(LOCAL_MAILER):
            return None
        mailer, sep, host = hub.partition(":")
        if not sep:
            mailer, host = "relay", hub
        return Route(mailer or "relay", host, f"{user}@{host}")

    def _smart_host_route(self, user: str, *, literal: bool = False) -> Route | None:
        """DS: `mailer:host`, or a bare host taken by relay (esmtp for an IP literal)."""
        smart_host = self.config.smart_host
        if not smart_host:
            return None
        default = "esmtp" if literal else "relay"
        mailer, sep, host = smart_host.partition(":")
        if not sep:
            mailer, host = default, smart_host
        return Route(mailer or default, host, user)

    def _remote_route(self, local: str, domain: str) -> Route:
        canonical = None if domain.startswith("[") else self.canonify(domain)
        smart = self._smart_host_route(
            f"{local}@{canonical or domain}",
            literal=domain.startswith("[") and domain.endswith("]"),
        )
        if smart is not None:
            return smart
        if canonical:
            return Route(self._remote_mailer(), f"{canonical}.", f"{local}@{canonical}")
        return Route(self._remote_mailer(), domain.lower(), f"{local}@{domain}")

    def _virtuser(self, local: str, domain: str, depth: int) -> Route | None:
        if self.map("virtuser") is None:
            return None
        user, plus, detail = local.partition("+")
        keys = [f"{local}@{domain}"]
        if plus:
            keys += [f"{user}+*@{domain}", f"{user}@{domain}"]
        keys.append(f"@{domain}")
        for key in keys:
            value = self._map_lookup("virtuser", key)
            if value is None:
                continue
            value = (
                value.replace("%1", user)
                .replace("%2", detail)
                .replace("%3", f"+{detail}" if plus else "")
            )
            if value.lower().startswith("error:"):
                raise error_from_value(value[len("error:") :])
            if "@" not in value:
                return self._local_route(value)
            return self._resolve(value, depth + 1)
        return None

    def _mailertable(self, local: str, domain: str, depth: int) -> Route | None:
        if self.map("mailertable") is None:
            return None
        name = domain.lower()
        candidates = [name]
        labels = name.split(".")
        candidates += ["." + ".".join(labels[i:]) for i in range(1, len(labels))]
        candidates.append(".")
        for key in candidates:
            value = self._map_lookup("mailertable", key)
            if value is None:
                continue
            if value.lower().startswith("error:"):
                raise error_from_value(value[len("error:") :])
            mailer, _, host = value.partition(":")
            host = host.strip()
            if mailer == LOCAL_MAILER:
                if host:
                    return self._local_route(host)
                return Route(LOCAL_MAILER, f"{local}@{domain}", local)
            return Route(mailer, host or domain, f"{local}@{domain}")
        return None

    # ---- expand

    def expand(
        self,
        recipients: str | Sequence[str],
        *,
        allow_programs: bool = False,
        verbose: bool = False,
    ) -> Expansion:
        """Expand recipients as sendmail does before delivery (and for -bv).

        Each string is one list as given (a command-line argument, an RCPT address).
        `allow_programs` lets a directly given |prog or /file through (root's command line);
        never set it for an address that came over the network.
        """
        run = _Run(self, allow_programs, verbose)
        for item in [recipients] if isinstance(recipients, str) else recipients:
            run.send_to_list(item, parent=None, level=0, controller=None, original=None)
        return run.result()

    def route(self, recipient: object, message: object = None) -> list[Delivery]:
        """The queue runner's interface: a qf recipient (anything with `.address` and
        optionally `.controlling_user`, the qf `C` line `user:uid:gid[:address]`) to its
        deliveries; raises the first MailError when there is none. A recipient with a
        controlling user was produced by an alias or .forward, so its |prog or /file is
        taken, bound to that user."""
        address = recipient if isinstance(recipient, str) else str(recipient.address)  # type: ignore[attr-defined]
        controller = _parse_controlling_user(getattr(recipient, "controlling_user", None))
        if controller is None:
            return self.deliveries(address)
        run = _Run(self, True, False)
        run.recipient(address, parent=None, level=0, controller=controller, original=None)
        expansion = run.result()
        if not expansion.deliveries and expansion.errors:
            error = expansion.errors[0].error
            raise error if error is not None else MailError("undeliverable")
        return expansion.deliveries

    def deliveries(self, recipient: str) -> list[Delivery]:
        """The deliveries for one recipient; the first error raised if there is no delivery."""
        expansion = self.expand(recipient)
        if not expansion.deliveries and expansion.errors:
            error = expansion.errors[0].error
            raise error if error is not None else MailError("undeliverable")
        return expansion.deliveries

    # ---- senders

    def masquerade_envelope(self) -> bool:
        """FEATURE(masquerade_envelope): the envelope rulesets call MasqEnv."""
        for name in ("EnvFromSMTP", "EnvFromL", "11"):
            ruleset = self.config.rulesets.get(name)
            if ruleset is not None and any("MasqEnv" in rule.rhs for rule in ruleset.rules):
                return True
        return False

    def rewrite_sender(self, address: str, *, envelope: bool = True) -> str:
        """A sender qualified with $j and canonified, then genericstable and masquerading
        as the config enables them (for the envelope sender only with
        FEATURE(masquerade_envelope)). The display name and comments of `Name <addr>` stay.
        """
        return self._rewrite(address, masquerade=not envelope or self.masquerade_envelope())

    def qualify(self, address: str) -> str:
        """An address qualified with $j and canonified, without genericstable or
        masquerading (the stock EnvToSMTP: what the SMTP mailers make of a recipient)."""
        return self._rewrite(address, masquerade=False)

    def address_part(self, address: str) -> str:
        """`Name <addr> (comment)` -> `addr`; the text itself when it does not parse."""
        try:
            return parse_item(address.strip()).addr_spec or address
        except MailError:
            return address

    def uucp_form(self, address: str) -> str | None:
        """`host!user` (or `user@host.UUCP`) as the address with its UUCP path
        `host!user` in place; None for any other address."""
        addr = self.address_part(address)
        local, _at, domain = addr.rpartition("@") if "@" in addr else (addr, "", "")
        path = _uucp_path(local, domain)
        if path is None:
            return None
        return address.replace(addr, path, 1) if addr in address else path

    def is_local_name(self, address: str) -> bool:
        """True for an address without a domain (`alice`, `Alice <alice>`): the stock
        local mailer's rulesets leave it as it is."""
        try:
            addr = parse_item(address.strip()).addr_spec
        except MailError:
            return False
        unquoted = _unquoted_part(addr)
        return bool(addr) and not any(c in unquoted for c in "@%!")

    def _rewrite(self, address: str, *, masquerade: bool) -> str:
        text = address.strip()
        if not text or text == "<>" or _is_empty_group(text):
            return address
        if text == '""':
            return ""
        try:
            addr = parse_item(text).addr_spec
        except MailError:
            return address
        if not addr or addr.startswith("|") or addr.startswith("/"):
            return address
        rewritten = self._rewrite_addr(addr, masquerade=masquerade)
        if rewritten == addr:
            return address
        return text.replace(addr, rewritten, 1) if addr in text else rewritten

    def _generics(self, local: str, domain: str, *, qualified: bool) -> str | None:
        """The genericstable's value for `local@domain`, in the stock MasqHdr's order:
        `user+detail@domain`, `user+*@domain` (%1 = detail), `user@domain`, `@domain`
        (%1 = the local part; qualified addresses only), then the same without the
        domain."""
        user, plus, detail = local.partition("+")
        tries: list[tuple[str, str | None]] = [(f"{local}@{domain}", None)]
        if plus:
            tries += [(f"{user}+*@{domain}", detail), (f"{user}@{domain}", None)]
        if qualified:
            tries.append((f"@{domain}", local))
        tries.append((local, None))
        if plus:
            tries += [(f"{user}+*", detail), (user, None)]
        for key, arg in tries:
            value = self._map_lookup("generics", key)
            if value is not None:
                return value if arg is None else _with_arg(value, arg)
        return None

    def _not_masqueraded(self, domain: str) -> bool:
        """Class N (MASQUERADE_EXCEPTION): domains, and their subdomains, kept as they are."""
        kept = self.classes.get("N", set())
        labels = domain.lower().rstrip(".").split(".")
        return any(".".join(labels[i:]) in kept for i in range(len(labels)))

    def _rewrite_addr(self, addr: str, *, masquerade: bool) -> str:
        local, at, domain = addr.rpartition("@")
        if not at:
            local, domain = addr, self.config.hostname
            if "%" in _unquoted_part(local):
                local, _, domain = local.rpartition("%")
        domain = domain.rstrip(".")
        uucp = _uucp_path(local, domain)
        if uucp is not None:
            local, domain = uucp, self.config.hostname
        if self.is_local_domain(domain):
            if domain.startswith("[") or domain.lower() == "localhost":
                domain = self.config.hostname
        else:
            canonical = self.canonify(domain)
            if canonical:
                domain = canonical
        if not masquerade:
            return f"{local}@{domain.lower() if self.is_local_domain(domain) else domain}"
        generic_domains = {d.lower() for d in self.config.generics_domains}
        generic_domains |= self.classes.get("G", set())
        if self.map("generics") is not None and (not at or domain.lower() in generic_domains):
            value = self._generics(local, domain, qualified=bool(at))
            if value is not None and "@" in value:
                # a qualified value is the answer: canonified, never masqueraded
                return self._rewrite_addr(value, masquerade=False)
            if value is not None:
                local = value
        masquerade_as = self.config.masquerade_as
        exposed = self.classes.get("E", set())
        kept = self._not_masqueraded(domain)
        if masquerade_as and local.lower() not in exposed and not kept:
            masq_domains = {d.lower() for d in self.config.masquerade_domains}
            masq_domains |= self.classes.get("M", set())
            name = domain.lower()
            if name in masq_domains or self.is_local_domain(name):
                domain = masquerade_as
        return f"{local}@{domain.lower() if self.is_local_domain(domain) else domain}"


def _with_arg(value: str, arg: str) -> str:
    """A map value with its `%1` filled in (the `$@` argument of the lookup)."""
    return value.replace("%1", arg)


def _parse_controlling_user(text: object) -> ControllingUser | None:
    """A qf `C` line value, `user:uid:gid[:address]`, as a ControllingUser."""
    if not isinstance(text, str) or not text:
        return None
    parts = text.split(":", 3)
    if len(parts) < 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    address = parts[3] if len(parts) > 3 else ""
    return ControllingUser(parts[0], int(parts[1]), int(parts[2]), address)


def _uucp_path(local: str, domain: str) -> str | None:
    """`host!user`, `host.UUCP!user` or `user@host.UUCP` as sendmail writes a UUCP path
    (`host!user`); None for anything else."""
    if domain.lower().endswith(".uucp"):
        return f"{domain[: -len('.uucp')].lower()}!{local}"
    if domain or "!" not in _unquoted_part(local) or local.startswith('"'):
        return None
    host, _, rest = local.partition("!")
    if host.lower().endswith(".uucp"):
        host = host[: -len(".uucp")]
    if not host or not rest:
        return None
    return f"{host.lower()}!{rest}"


def _read_text(path: str) -> str:
    with open(path, errors="surrogateescape") as stream:
        return stream.read()


def _is_empty_group(text: str) -> bool:
    """Whether `text` is a group without members (`undisclosed-recipients:;`): a name
    without `:<>"`, a colon, blanks, a semicolon."""
    if not text.endswith(";"):
        return False
    head = text[:-1].rstrip()
    return head.endswith(":") and not any(c in head[:-1] for c in ':<>"')


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _expand_short_macros(text: str, values: Mapping[str, str]) -> str:
    """`$x` (x a letter, digit or `_`) replaced by values[x], "" when unset."""
    if "$" not in text:
        return text
    out: list[str] = []
    pos = 0
    while (at := text.find("$", pos)) >= 0:
        out.append(text[pos:at])
        if at + 1 < len(text) and _is_word_char(text[at + 1]):
            out.append(values.get(text[at + 1], ""))
            pos = at + 2
        else:
            out.append("$")
            pos = at + 1
    out.append(text[pos:])
    return "".join(out)


def _expand_long_macros(text: str, values: Mapping[str, str]) -> str:
    """`${name}` (a name of letters, digits and `_`) replaced by values[name]."""
    if "${" not in text:
        return text
    out: list[str] = []
    pos = 0
    while (at := text.find("$", pos)) >= 0:
        out.append(text[pos:at])
        end = at + 2
        while end < len(text) and _is_word_char(text[end]):
            end += 1
        if text[at + 1 : at + 2] == "{" and end > at + 2 and text[end : end + 1] == "}":
            out.append(values.get(text[at + 2 : end], ""))
            pos = end + 1
        else:
            out.append("$")
            pos = at + 1
    out.append(text[pos:])
    return "".join(out)


def _unquoted_part(text: str) -> str:
    """The text with quoted strings blanked, to find @ and % outside quotes."""
    if '"' not in text:
        return text
    import re

    return re.sub(r'"(\\.|[^"\\])*"', lambda m: "_" * len(m.group()), text)


class _Run:
    """One expansion: the send queue and what was said, as sendmail's recipient()."""

    def __init__(self, router: Router, allow_programs: bool, verbose: bool) -> None:
        self.router = router
        self.allow_programs = allow_programs
        self.verbose = verbose
        self.queue: list[_Entry] = []
        self.by_key: dict[tuple[str, str, str], _Entry] = {}
        self.events: list[Event] = []

    def result(self) -> Expansion:
        deliveries = [e.delivery for e in self.queue if e.state == "ok" and e.delivery]
        return Expansion(deliveries, self.events)

    def error(self, address: str, error: MailError) -> None:
        """Say an error and keep a failed entry: a queue with a failure in it is no loop."""
        self.events.append(Event("error", shorten(address), error.text, error))
        self.queue.append(_Entry(("*error*", "", address), address, "bad", False))

    def send_to_list(
        self,
        text: str,
        *,
        parent: _Entry | None,
        level: int,
        controller: ControllingUser | None,
        original: str | None,
    ) -> None:
        try:
            items = split_list(text)
        except MailError as exc:
            self.error(text, exc)
            return
        # sendmail collects the items of one list by prepending: the last is sent first.
        for item in reversed(items):
            self.recipient(
                item, parent=parent, level=level, controller=controller, original=original
            )

    def send_targets(
        self,
        targets: Sequence[AliasTarget],
        *,
        parent: _Entry,
        level: int,
        controller: ControllingUser | None,
        original: str,
    ) -> None:
        for target in reversed(targets):
            if target.kind is TargetKind.INCLUDE:
                self.include(target.value, parent, level, original)
            elif target.kind is TargetKind.ERROR:
                self.error(target.text, error_from_value(target.value))
            else:
                self.recipient(
                    target.text,
                    parent=parent,
                    level=level,
                    controller=controller,
                    original=original,
                )

    def include(self, path: str, parent: _Entry, level: int, original: str) -> None:
        router = self.router
        try:
            text = router.read_text(path)
        except OSError as exc:
            # sendmail: a missing or forbidden file is permanent (550 5.2.4), anything
            # else (an NFS hiccup, too many open files) is tried again later.
            reason = exc.strerror or "cannot read"
            message = f"Cannot open {shorten(path)}: {reason}"
            error: MailError
            if exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR, errno.ELOOP):
                error = MailError(message, exit_code=ExitCode.USAGE, reply_code=550, status="5.2.4")
            else:
                error = TempFailure(message, status="4.2.4")
            self.error(f"{INCLUDE_PREFIX}{path}", error)
            return
        controller = router._owner_of(path)
        if self.verbose:
            self.events.append(Event("note", f"{INCLUDE_PREFIX}{path}", f"including file {path}"))
        for line in text.split("\n"):
            line = line.removesuffix("\r")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            self.send_to_list(
                line, parent=parent, level=level, controller=controller, original=original
            )

    def recipient(
        self,
        text: str,
        *,
        parent: _Entry | None,
        level: int,
        controller: ControllingUser | None,
        original: str | None,
    ) -> None:
        router = self.router
        shown = text.strip()
        original = original or shown
        if level > MAX_ALIAS_RECURSION:
            self.error(
                shown,
                MailError(
                    f"aliasing/forwarding loop broken ({level} aliases deep; "
                    f"{MAX_ALIAS_RECURSION} max)",
                    exit_code=ExitCode.USAGE,
                    status="5.4.6",
                ),
            )
            return
        too_long = None
        if len(shown) > MAXNAME:  # a shorter text holds no token longer than MAXNAME
            import re

            tokens = re.finditer(_TOKEN_PATTERN, shown)
            too_long = next((t for t in tokens if len(t.group()) > MAXNAME), None)
        if too_long is not None:
            # sendmail's prescan gives up on the token and goes on after it.
            self.error(shown, AddressSyntaxError("prescan: token too long", status="5.1.1"))
            rest = shown[too_long.end() :].strip()
            if rest:
                self.recipient(
                    rest, parent=parent, level=level, controller=controller, original=original
                )
            return
        no_alias = shown.startswith("\\")
        try:
            route = router.resolve(shown[1:] if no_alias else shown)
        except MailError as exc:
            self.error(shown, exc)
            return
        direct = parent is None and not self.allow_programs
        if route.mailer in (PROG_MAILER, FILE_MAILER) and direct:
            what = "programs" if route.mailer == PROG_MAILER else "files"
            self.error(
                shown,
                UserUnknown(f"Cannot mail directly to {what}", reply_code=550, status="5.7.1"),
            )
            return
        key = (
            route.mailer,
            route.host.lower(),
            route.user.lower() if route.mailer != FILE_MAILER else route.user,
        )
        existing = self.by_key.get(key)
        if existing is not None:
            if self.verbose and not existing.top_level:
                self.events.append(Event("note", shown, "duplicate suppressed"))
            return
        kind, _ = classify_target(shown)
        if route.mailer in (PROG_MAILER, FILE_MAILER) and controller is None:
            controller = router.default_user()
        delivery = Delivery(
            route.mailer,
            route.host,
            route.user,
            original,
            shown,
            controller if route.mailer in (PROG_MAILER, FILE_MAILER) else None,
        )
        entry = _Entry(key, shown, "ok", parent is None, delivery)
        self.by_key[key] = entry
        self.queue.append(entry)
        if route.mailer == LOCAL_MAILER and not no_alias and kind is TargetKind.ADDRESS:
            self.local(entry, route, level, original)
        if parent is None:
            self.test_self_destruct(entry)

    def local(self, entry: _Entry, route: Route, level: int, original: str) -> None:
        router = self.router
        user = route.user
        base, plus, _detail = user.partition("+")
        names = [user] + ([f"{base}+*", base] if plus else [])
        for name in names:
            found = router.aliases(name)
            if found is None:
                continue
            alias, controller = found
            entry.state = "expanded"
            if self.verbose:
                self.events.append(
                    Event("aliased", entry.address, f"aliased to {shorten(alias.rhs)}")
                )
            self.send_targets(
                alias.targets,
                parent=entry,
                level=level + 1,
                controller=controller,
                original=original,
            )
            return
        hub = router.hub_route(user)
        if hub is not None:
            self.to_hub(entry, hub, original)
            return
        account = router.users(base)
        if account is None:
            entry.state = "bad"
            self.error(entry.address, UserUnknown("User unknown"))
            return
        self.forward(entry, account, level, original)

    def to_hub(self, entry: _Entry, hub: Route, original: str) -> None:
        """Ruleset 5 sent a local name to the mail hub: that delivery replaces it."""
        key = (hub.mailer, hub.host.lower(), hub.user.lower())
        entry.state = "expanded"
        if key in self.by_key:
            return
        delivery = Delivery(hub.mailer, hub.host, hub.user, original, entry.address)
        hubbed = _Entry(key, entry.address, "ok", entry.top_level, delivery)
        self.by_key[key] = hubbed
        self.queue.append(hubbed)

    def forward(self, entry: _Entry, account: LocalUser, level: int, original: str) -> None:
        router = self.router
        for path in self.forward_paths(account):
            try:
                info = router.file_stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                continue
            if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                self.events.append(
                    Event("note", entry.address, f"forward: {path}: group/world writable file")
                )
                continue
            if info.st_uid not in (0, account.uid):
                self.events.append(Event("note", entry.address, f"forward: {path}: bad owner"))
                continue
            try:
                text = router.read_text(path)
            except OSError:
                continue
            controller = ControllingUser(account.name, account.uid, account.gid)
            self_reference = False
            items: list[str] = []
            for line in text.split("\n"):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                for item in split_list(line):
                    bare = item.lstrip("\\").strip().lower()
                    if bare in (
                        account.name.lower(),
                        entry.delivery.user if entry.delivery else "",
                    ):
                        self_reference = True
                        continue
                    items.append(item)
            if not items:
                return  # only the user himself: deliver to the mailbox
            if not self_reference:
                entry.state = "expanded"
            if self.verbose:
                self.events.append(Event("note", entry.address, f"forwarded to {', '.join(items)}"))
            for item in reversed(items):
                self.recipient(
                    item, parent=entry, level=level + 1, controller=controller, original=original
                )
            return

    def forward_paths(self, account: LocalUser) -> list[str]:
        router = self.router
        raw = router.config.option("ForwardPath", "$z/.forward")
        text = raw if isinstance(raw, str) else ":".join(str(p) for p in raw or ())  # type: ignore[union-attr]
        macros = router.config.macros
        short_host = str(macros.get("w") or router.config.hostname.split(".")[0])
        values = {
            "z": account.home,
            "w": short_host,
            "u": account.name,
            "j": router.config.hostname,
        }
        paths = []
        for piece in text.split(":"):
            expanded = _expand_long_macros(_expand_short_macros(piece, values), values)
            if expanded:
                paths.append(expanded)
        return paths

    def test_self_destruct(self, entry: _Entry) -> None:
        """sendmail's testselfdestruct: a top-level address that expanded to nothing alive
        while nothing in the whole queue is alive or failed is a loop."""
        if entry.state != "expanded":
            return
        if any(other.state in ("ok", "bad") for other in self.queue):
            return
        entry.state = "bad"
        self.events.append(
            Event(
                "error",
                "",
                "aliasing/forwarding loop broken",
                MailError(
                    "aliasing/forwarding loop broken",
                    exit_code=ExitCode.USAGE,
                    reply_code=554,
                    status="5.4.6",
                ),
            )
        )


# ---------------------------------------------------------------- -bv


def verify_lines(expansion: Expansion, *, verbose: bool = False) -> list[str]:
    """What `sendmail -bv` prints for an expansion: its messages as they happened (the
    `aliased to` and other notes only with -v), then one `deliverable` line per delivery."""
    lines = []
    for event in expansion.events:
        if event.kind in ("aliased", "note") and not verbose:
            continue
        lines.append(f"{event.address}... {event.text}" if event.address else event.text)
    for delivery in expansion.deliveries:
        user = delivery.user
        if delivery.mailer == PROG_MAILER and not user.startswith('"'):
            user = f'"{user}"'
        if delivery.host:
            where = f"mailer {delivery.mailer}, host {delivery.host}, user {user}"
        else:
            where = f"mailer {delivery.mailer}, user {user}"
        lines.append(f"{shorten(delivery.address)}... deliverable: {where}")
    return lines


def verify(
    router: Router, arguments: Sequence[str], *, verbose: bool = False, allow_programs: bool = True
) -> tuple[list[str], int]:
    """`sendmail -bv ARG...`: the lines to print (each without its newline) and the exit
    status. Each argument is one recipient list, as sendmail takes its arguments."""
    expansion = router.expand(list(arguments), verbose=verbose, allow_programs=allow_programs)
    return verify_lines(expansion, verbose=verbose), expansion.exit_code()
