"""What an SMTP server needs from the configuration, gathered once per Config.

Owns the bridge from a translated `Config` (or, for tests, plain values) to the session's
`SessionSettings`, the HELP text read from the cf's `HelpFile`, and the greeting and
`Received:` texts expanded from the cf's macros. The socket daemons (`smtpd.py`) and
`-bs` (`serve_stdio`) both build their sessions through here.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import dns.exception
import dns.resolver
import dns.reversename

from pysendmail import passwd
from pysendmail.config.compiled import (
    FILE_MAP_CLASSES,
    compiled_path,
    is_fresh,
    open_map,
    source_path,
)
from pysendmail.config.macros import expand, macro_references
from pysendmail.config.model import Config, DaemonSpec, HeaderSpec, MapSpec
from pysendmail.daemons.tls import context_from_options
from pysendmail.dns import DnsTempFailure, HostNotFound, NullMx, Resolver, ResolverSettings
from pysendmail.errors import MailError
from pysendmail.log import MailLog
from pysendmail.policy import (
    OK,
    PERM,
    TEMP,
    AccessDb,
    HostLookup,
    LoadedLookup,
    PerThreadLookup,
    PolicyTables,
    StockPolicy,
)
from pysendmail.protocol.smtp import (
    ClientInfo,
    SessionSettings,
    SmtpPolicy,
    VerifyResult,
    address_literal,
)
from pysendmail.queue.store import QueueStore
from pysendmail.record import field, record, replace
from pysendmail.routing import FILE_MAILER, LOCAL_MAILER, PROG_MAILER, Expansion, Router
from pysendmail.stamp import HeaderTemplate, arpadate

if TYPE_CHECKING:
    from pysendmail.rules.smtpchecks import RuleChecks

log = logging.getLogger("pysendmail.smtpd")


DEFAULT_RECEIVED = (
    "$?sfrom $s $.$?_($?s$|from $.$_)\n"
    "\t$.by $j ($v/$Z)$?r with $r$. id $i$?u\n"
    "\tfor $u; $|;\n"
    "\t$.$b"
)


@record
class SmtpService:
    """Everything a connection needs; built from one Config and replaced whole on SIGHUP."""

    settings: SessionSettings
    policy: SmtpPolicy
    store: QueueStore
    hosts: HostLookup
    macros: dict[str, str] = field(default_factory=dict)  # j, v, Z, w, m ... (unexpanded ok)
    greeting_template: str = "$j Sendmail $v/$Z; $b"
    received_template: str = DEFAULT_RECEIVED
    # The cf's H lines in order, Received among them; empty: only received_template.
    header_templates: tuple[HeaderTemplate | HeaderSpec, ...] = ()
    tls_context: ssl.SSLContext | None = None
    command_timeout: float = 3600.0
    data_timeout: float = 3600.0
    greet_pause: float = 0.0
    greet_pause_for: Callable[[str], float] | None = None  # per client address, seconds
    max_daemon_children: int = 0
    connection_rate_throttle: int = 0
    etrn: Callable[[str], None] | None = None
    on_queued: Callable[[str], None] | None = None
    mail_log: MailLog = field(default_factory=MailLog)
    pause: Callable[[float], None] = time.sleep  # the slow-downs' waits; tests record them
    # PrivacyOptions=authwarnings, and who may run -bs without a warning (class t, root).
    auth_warnings: bool = False
    trusted_users: frozenset[str] = frozenset({"root"})
    # (sender, user): whether the sender is that user's own local address.
    sender_is_user: Callable[[str, str], bool] | None = None
    # Made from the fields above when first asked (settings_for, greeting).
    _settings_by_daemon: dict[tuple[DaemonSpec | None, bool], SessionSettings] = field(
        init=False, default_factory=dict, compare=False, repr=False
    )
    _greeting_names: set[str] | None = field(init=False, default=None, compare=False, repr=False)
    _greeting: tuple[int, str] | None = field(init=False, default=None, compare=False, repr=False)

    @property
    def hostname(self) -> str:
        return self.settings.hostname

    def settings_for(self, daemon: DaemonSpec | None, tls_on_connect: bool) -> SessionSettings:
        """The session settings as one daemon's M= modifiers change them (made once per
        daemon: settings are never changed in place, only replaced)."""
        key = (daemon, tls_on_connect)
        settings = self._settings_by_daemon.get(key)
        if settings is None:
            settings = self._settings_by_daemon[key] = self._settings_for(daemon, tls_on_connect)
        return settings

    def _settings_for(self, daemon: DaemonSpec | None, tls_on_connect: bool) -> SessionSettings:
        flags = daemon.modifiers if daemon is not None else frozenset()
        settings = self.settings
        changes: dict[str, object] = {"tls_available": self.tls_context is not None}
        if "E" in flags:
            changes["offer_etrn"] = False
        if "a" in flags:
            changes["auth_required"] = True
        if "A" in flags:
            changes["auth_mechanisms"] = ()
        if "S" in flags or tls_on_connect:
            changes["tls_available"] = False
        return replace(settings, **changes)  # type: ignore[arg-type]

    def greeting(self, client_macros: dict[str, str], now: float) -> str:
        # The same text for every client within a second, unless the greeting names a
        # client's macro (through the cf's macros too): then it is expanded each time.
        if self._greeting_names is None:
            self._greeting_names = _references(self.greeting_template, self.macros)
        shared = not self._greeting_names & client_macros.keys()
        second = int(now)
        if shared and self._greeting is not None and self._greeting[0] == second:
            return self._greeting[1]
        macros = {**self.macros, **client_macros, "b": arpadate(now), "j": self.hostname}
        text = expand(self.greeting_template, macros)
        if shared:
            self._greeting = (second, text)
        return text


def _references(text: str, macros: dict[str, str]) -> set[str]:
    """The macros `text` names, and those their values name in turn."""
    names: set[str] = set()
    todo = [text]
    while todo:
        for name in macro_references(todo.pop()):
            if name not in names:
                names.add(name)
                todo.append(macros.get(name, ""))
    return names


def bs_auth_warnings(service: SmtpService, uid: int, user: str, sender: str) -> list[str]:
    """sendmail's one X-Authentication-Warning for SMTP mail: a -bs session run by a user
    who is neither root nor trusted, giving a sender that is not their own local
    address. (The daemon adds none: sendmail 8.17 as Debian builds it has no HELO-name
    check, and a client that skips HELO is not noted either.)"""
    if not service.auth_warnings or uid == 0 or user in service.trusted_users:
        return []
    bare = sender.strip()
    if bare.startswith("<") and bare.endswith(">"):
        bare = bare[1:-1]
    if service.sender_is_user is not None and bare and service.sender_is_user(bare, user):
        return []
    return [f"{user} owned process doing -bs"]


def client_macros(client: ClientInfo, addr_macro: str | None = None) -> dict[str, str]:
    return {
        "client_addr": address_literal(client.addr) if addr_macro is None else addr_macro,
        "client_name": client.name if client.addr else "",
        "client_resolve": client.resolve if client.addr else "",
        "_": client.smtp_client,
    }


def load_help_topics(
    path: str | Path | None, macros: Mapping[str, str]
) -> dict[str, tuple[str, ...]] | None:
    """The helpfile as topic -> lines; None when there is no file (HELP not implemented).

    Lines are `topic<TAB>text`; `#` lines are comments, and `#vers 2` (or later) turns on
    macro expansion in the text, as sendmail does.
    """
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    version = 0
    topics: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            words = line[1:].split()
            if len(words) == 2 and words[0] == "vers" and words[1].isdigit():
                version = int(words[1])
            continue
        topic, tab, rest = line.partition("\t")
        if not tab:
            topic, rest = line, ""
        if version >= 2:
            rest = expand(rest, macros)
        topics.setdefault(topic.lower(), []).append(rest)
    return {topic: tuple(lines) for topic, lines in topics.items()}


# ---------------------------------------------------------------- routing as the policy sees it


class RouterRecipients:
    """The policy's RecipientChecker over routing's Router: RCPT, VRFY and EXPN answers."""

    def __init__(self, router: Router, hostname: str) -> None:
        self.router = router
        self.hostname = hostname

    def _expansion(self, address: str) -> Expansion:
        expansion = self.router.expand(address)
        if not expansion.deliveries and expansion.errors:
            error = expansion.errors[0].error
            raise error if error is not None else MailError("User unknown", reply_code=550)
        return expansion

    def check_recipient(self, address: str) -> None:
        self._expansion(address)

    def verify(self, address: str) -> VerifyResult:
        route = self.router.resolve(address)
        if route.mailer != LOCAL_MAILER:
            return VerifyResult(address, local=False)
        self._expansion(address)
        return VerifyResult(f"{route.user}@{self.hostname}")

    def expand(self, address: str) -> list[VerifyResult]:
        results = []
        for delivery in self._expansion(address).deliveries:
            if delivery.mailer == LOCAL_MAILER:
                results.append(VerifyResult(f"{delivery.user}@{self.hostname}"))
            elif delivery.mailer in (PROG_MAILER, FILE_MAILER):
                results.append(VerifyResult(delivery.user))
            else:
                results.append(VerifyResult(delivery.address or delivery.user, local=False))
        return results


# ---------------------------------------------------------------- host names


class ResolverHosts:
    """A HostLookup over dns.Resolver (MX/A for sender domains) plus PTR for clients."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        settings = resolver.settings
        self._reverse: dict[str, str] = {}
        for name, addrs in settings.hosts.items():
            for addr in addrs:
                self._reverse.setdefault(addr, name)
        self._dns: dns.resolver.Resolver | None = None
        if settings.uses_dns:
            if settings.nameservers:
                ptr = dns.resolver.Resolver(configure=False)
                ptr.nameservers = list(settings.nameservers)
            else:
                ptr = dns.resolver.Resolver()
            ptr.port = settings.port
            ptr.lifetime = settings.timeout
            self._dns = ptr

    def resolve(self, domain: str) -> str:
        try:
            self.resolver.resolve_mx(domain)
        except NullMx:
            return OK
        except HostNotFound:
            return PERM
        except DnsTempFailure:
            return TEMP
        except MailError:
            return OK  # an MX list that points back here: the domain exists
        return OK

    def _forward_confirms(self, name: str, addr: str) -> bool:
        try:
            return addr in self.resolver.host_addresses(name)
        except MailError:
            return False

    def client_name(self, addr: str) -> tuple[str, str]:
        sources = self.resolver.settings.host_sources
        for source in sources:
            name = None
            if source == "files":
                name = self._reverse.get(addr)
            elif source == "dns" and self._dns is not None:
                try:
                    answer = self._dns.resolve(dns.reversename.from_address(addr), "PTR")
                    name = str(answer[0].target).rstrip(".")
                except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                    name = None
                except (dns.exception.DNSException, ValueError):
                    return f"[{address_literal(addr)}]", "TEMP"
            if name:
                return (name, "OK") if self._forward_confirms(name, addr) else (name, "FORGED")
        return f"[{address_literal(addr)}]", "FAIL"


# ---------------------------------------------------------------- from a Config


def _rules_text(config: Config, *names: str) -> str:
    texts = []
    for name in names:
        ruleset = config.rulesets.get(name)
        if ruleset is not None:
            texts.extend(f"{rule.lhs}\t{rule.rhs}" for rule in ruleset.rules)
    return "\n".join(texts)


def shared_map(spec: MapSpec) -> PerThreadLookup | LoadedLookup:
    """A map every daemon thread may use: read from its source once and shared, or,
    when a compiled (SQLite) form is in use, one connection per thread (each sees the
    compiled file as it was when its thread opened it: a rebuild replaces the file)."""
    file = spec.file or ""
    if spec.map_class.lower() != "text" and is_fresh(compiled_path(file), source_path(file)):
        compiled, source = compiled_path(file), source_path(file)
        return PerThreadLookup(lambda: open_map(spec), stamp=lambda: _files_stamp(compiled, source))
    table = open_map(spec)
    table.lookup("")  # load it now, in one thread; afterwards it is a read-only dict
    return LoadedLookup(table)


def _files_stamp(*paths: Path) -> tuple[tuple[int, int, int, int] | None, ...]:
    """Which version of each file is there: device, inode, change time and size."""
    stamps: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            stamps.append(None)
            continue
        stamps.append((info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(stamps)


def map_lookup(config: Config, name: str) -> Callable[[str], str | None] | None:
    """A thread-safe lookup function for the cf's map `name`, or None without one."""
    spec = config.maps.get(name)
    if spec is None or spec.file is None:
        return None
    return shared_map(spec).lookup


def policy_tables(config: Config) -> PolicyTables:
    """What a stock cf's FEATUREs mean for the connect/MAIL/RCPT decisions."""
    rcpt_rules = _rules_text(config, "Rcpt_ok", "Basic_check_rcpt", "check_rcpt")
    mail_rules = _rules_text(config, "Basic_check_mail", "check_mail")
    hostname = config.hostname
    return PolicyTables(
        hostname=hostname,
        local_domains=frozenset(d.lower().rstrip(".") for d in config.local_host_names)
        | {hostname.lower()},
        relay_domains=frozenset(d.lower().rstrip(".") for d in config.relay_domains),
        access=AccessDb(map_lookup(config, "access")),
        blocklist_recipients="SearchList <+ To>" in rcpt_rules,
        accept_unresolvable_domains=bool(mail_rules) and "does not exist" not in mail_rules,
        accept_unqualified_senders=bool(mail_rules)
        and "Domain name required for sender" not in mail_rules,
    )


def _privacy(config: Config) -> frozenset[str]:
    value = config.option("PrivacyOptions", ()) or ()
    words = value.replace(",", " ").split() if isinstance(value, str) else list(value)  # type: ignore[union-attr]
    return frozenset(str(w).lower() for w in words)


def _int_option(config: Config, name: str, default: int = 0) -> int:
    value = config.option(name, default)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def session_settings(config: Config, *, tls: bool, auth: bool) -> SessionSettings:
    macros = dict(config.macros)
    auth_options = config.option("AuthOptions", ()) or ()
    auth_flags = "".join(auth_options) if not isinstance(auth_options, str) else auth_options
    help_file = config.option("HelpFile")
    return SessionSettings(
        hostname=config.hostname,
        version=macros.get("v", "8.17.1.9"),
        max_message_size=_int_option(config, "MaxMessageSize"),
        max_recipients=_int_option(config, "MaxRecipientsPerMessage"),
        max_header_length=_int_option(config, "MaxHeadersLength", 32768),
        max_hop_count=_int_option(config, "MaxHopCount", 25),
        privacy=_privacy(config),
        tls_available=tls,
        auth_mechanisms=("PLAIN", "LOGIN") if auth else (),
        # AUTH PLAIN/LOGIN in clear only when AuthOptions is set and lacks `p`.
        auth_without_tls=bool(auth_options) and "p" not in auth_flags,
        help_topics=load_help_topics(str(help_file) if help_file else None, macros),
        max_noop_commands=_int_option(config, "MaxNOOPCommands", 20),
        bad_rcpt_throttle=_int_option(config, "BadRcptThrottle"),
        bad_rcpt_throttle_delay=_int_option(config, "BadRcptThrottleDelay", 1),
        children_limited=_int_option(config, "MaxDaemonChildren") > 0,
    )


def _greet_pause(config: Config, access: AccessDb) -> Callable[[str], float] | None:
    """FEATURE(greet_pause): `GreetPause:` access entries, else the feature's default (ms)."""
    rules = _rules_text(config, "greet_pause")
    if not rules:
        return None
    default = 0
    for number in re.findall(r"\$#\s*(\d+)", rules):
        default = int(number)

    def pause(addr: str) -> float:
        found = access.address("GreetPause", addr) if addr else None
        milliseconds = default
        if found is not None and found.strip().isdigit():
            milliseconds = int(found.strip())
        return milliseconds / 1000.0

    return pause


def _etrn_runner(config: Config) -> Callable[[str], None]:
    def start(node: str) -> None:
        from pysendmail.queue.runner import RunFilter
        from pysendmail.queue.service import runner_for_config

        def run() -> None:
            try:
                domain = node.lstrip("@#")
                runner_for_config(config).run([RunFilter("R", "@" + domain)])
            except Exception as error:  # a failed queue run must not hurt the session
                log.warning("ETRN %s: queue run failed: %s", node, error)

        threading.Thread(target=run, name=f"etrn-{node}", daemon=True).start()

    return start


def background_delivery(config: Config, workers: int = 2) -> Callable[[str], None] | None:
    """sendmail's DeliveryMode for the daemon: with `background` (the default) or
    `interactive` each message is delivered as soon as it is queued, here by a small pool
    of threads, each with its own queue runner; `queueonly` and `defer` leave it for the
    next queue run. The runner's lock on the qf keeps a concurrent queue run from
    delivering the same message twice."""
    mode = str(config.option("DeliveryMode") or "background")[:1].lower()
    if mode in ("q", "d"):
        return None
    from concurrent.futures import ThreadPoolExecutor

    from pysendmail.queue.service import runner_for_config

    per_thread = threading.local()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver")

    def deliver(qid: str) -> None:
        try:
            if not hasattr(per_thread, "runner"):
                per_thread.runner = runner_for_config(config)
            per_thread.runner.run_one(qid)
        except Exception:  # the message stays queued for the next run
            log.exception("%s: delivery attempt failed", qid)

    def start(qid: str) -> None:
        pool.submit(deliver, qid)

    return start


def rule_checks(config: Config) -> RuleChecks | None:
    """The cf's own check_relay/check_mail/check_rcpt rules (LOCAL_RULESETS, LOCAL_RULE_*),
    run by the rules engine where the cf has rules beyond the stock m4 output; None else."""
    from pysendmail.rules.smtpchecks import checks_for_config

    return checks_for_config(config, open_map=lambda spec: shared_map(spec).lookup)


def service_from_config(
    config: Config,
    *,
    deliver_queued: bool = False,
    store: QueueStore | None = None,
    hosts: HostLookup | None = None,
    router: Router | None = None,
    mail_log: MailLog | None = None,
    resolver_settings: ResolverSettings | None = None,
) -> SmtpService:
    """The SmtpService a configuration describes (the parts may be injected by tests).
    With `deliver_queued`, messages are delivered once queued as DeliveryMode says."""
    from pysendmail.queue.service import store_for_config

    if store is None:
        store = store_for_config(config)
    # Sessions committing at the same moment share their syncs (see queue/store.py).
    store.group_commit = True
    tls_context = context_from_options(config.options)
    password_file = passwd.passwd_path(config.cf_path, config.state_dir)
    has_passwords = password_file.exists()
    tables = policy_tables(config)
    if hosts is None:
        settings = resolver_settings or ResolverSettings.from_config(config)
        hosts = ResolverHosts(Resolver(settings))
    if router is None:
        # Map objects are not shared between threads (lazy loading, SQLite connections):
        # the router gets one per thread, like the access map.
        maps: dict[str, PerThreadLookup | LoadedLookup] = {}
        for name, spec in config.maps.items():
            if spec.map_class.lower() in FILE_MAP_CLASSES | {"text"} and spec.file:
                maps[name] = shared_map(spec)
        router = Router(config, maps=maps)
    router.prepare_rules()  # a cf with its own routing rules is compiled before any client
    recipients = RouterRecipients(router, config.hostname)

    def sender_is_user(sender: str, user: str) -> bool:
        try:
            route = router.resolve(sender)
        except MailError:
            return False
        return route.mailer == LOCAL_MAILER and route.user == user

    def authenticate(user: str, password: str) -> bool:
        return passwd.verify(user, password, path=password_file)

    policy = StockPolicy(
        tables,
        recipients,
        hosts,
        authenticator=authenticate if has_passwords else None,
        rule_checks=rule_checks(config),
    )
    received = next(
        (h.value for h in config.headers if h.name.lower() == "received"), DEFAULT_RECEIVED
    )
    templates: tuple[HeaderTemplate | HeaderSpec, ...] = tuple(config.headers)
    if not any(h.name.lower() == "received" for h in templates):
        templates = (HeaderTemplate("Received", DEFAULT_RECEIVED), *templates)
    return SmtpService(
        settings=session_settings(config, tls=tls_context is not None, auth=has_passwords),
        policy=policy,
        store=store,
        hosts=hosts,
        macros=dict(config.macros),
        greeting_template=str(config.option("SmtpGreetingMessage") or "$j Sendmail $v/$Z; $b"),
        received_template=received,
        header_templates=templates,
        tls_context=tls_context,
        command_timeout=float(_int_option(config, "Timeout.command", 3600)),
        data_timeout=float(_int_option(config, "Timeout.datablock", 3600)),
        greet_pause_for=_greet_pause(config, tables.access),
        max_daemon_children=_int_option(config, "MaxDaemonChildren"),
        connection_rate_throttle=_int_option(config, "ConnectionRateThrottle"),
        etrn=_etrn_runner(config),
        on_queued=background_delivery(config) if deliver_queued else None,
        mail_log=mail_log or MailLog(),
        auth_warnings="authwarnings" in _privacy(config),
        trusted_users=frozenset(
            {"root", *config.trusted_users, *config.classes.get("t", frozenset())}
        ),
        sender_is_user=sender_is_user,
    )


def daemon_specs(config: Config) -> tuple[DaemonSpec, ...]:
    """The configured daemons, or sendmail's default: an MTA on port 25, all addresses."""
    return config.daemons or (DaemonSpec(name="MTA", port=25, addr=""),)
