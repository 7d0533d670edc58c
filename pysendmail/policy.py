"""Connect / MAIL / RCPT decisions of sendmail's stock rulesets, made from the tables.

This module owns what a stock sendmail.cf's `check_relay`, `check_mail` and `check_rcpt`
rulesets decide, without running the rules: the access db (`Connect:`, `From:`, `To:`
and bare keys; IP nets; parent domains; `user@`; `+detail`), relaying (class w, class R,
`To:domain RELAY`, clients the access db marks RELAY, the local host, authenticated
clients), the sender domain's existence, and address syntax (ruleset 0's "Hostname
required" family). Whether a local recipient exists is asked of a `RecipientChecker`
(routing's job), and host names of a `HostLookup`; both are injected, so every decision
is tested without DNS and without a socket.

It never sends a reply itself: refusals are raised as `MailError`s carrying sendmail's
reply code, enhanced status and text; the SMTP session formats them.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from pysendmail.errors import MailError, TempFailure
from pysendmail.protocol.smtp import (
    ClientInfo,
    ConnectDecision,
    SessionView,
    Verdict,
    VerifyResult,
)
from pysendmail.record import field, record

# Lookup results the stock rulesets know, besides an access db value.
OK, PERM, TEMP = "OK", "PERM", "TEMP"
_TEMP_SYSTEM_FAILURE = "Temporary system failure. Please try again later."
_LOCAL_ADDRESSES = frozenset({"", "0", "127.0.0.1", "IPv6:0:0:0:0:0:0:0:1", "IPv6:::1", "::1"})


# ---------------------------------------------------------------- injected lookups


class HostLookup(Protocol):
    """Host names, as sendmail's `host` map and the connection's PTR lookup see them."""

    def resolve(self, domain: str) -> str:
        """OK when the domain exists (A/AAAA/MX), PERM when it does not, TEMP on trouble."""

    def client_name(self, addr: str) -> tuple[str, str]:
        """(${client_name}, ${client_resolve}) for a peer address: OK, FAIL, FORGED, TEMP."""


class RecipientChecker(Protocol):
    """Whether a recipient that passed the relay checks can be delivered (routing)."""

    def check_recipient(self, address: str) -> None:
        """Raise MailError (`UserUnknown`, a mailertable/virtusertable error) if not."""

    def verify(self, address: str) -> VerifyResult: ...

    def expand(self, address: str) -> list[VerifyResult]: ...


# ---------------------------------------------------------------- the access db


class PerThreadLookup:
    """A map lookup usable from every daemon thread: one map object per thread.

    Map objects load lazily and may hold an SQLite connection, which belongs to the
    thread that opened it; so each thread gets its own from `factory`. `stamp` says
    which version of the map's files is there (their identity and times): a thread's
    object is opened between two equal stamps, and `data_stamp()` is that version, or
    None when the files changed while it opened (the rules engine then does not
    remember answers that used it, rules/memo.py).
    """

    def __init__(
        self, factory: Callable[[], object], stamp: Callable[[], object] | None = None
    ) -> None:
        self._factory = factory
        self._stamp = stamp
        self._local = threading.local()

    def __call__(self, key: str) -> str | None:
        return self.lookup(key)

    def _current(self) -> object:
        current = getattr(self._local, "map", None)
        if current is None:
            before = self._stamp() if self._stamp is not None else None
            current = self._factory()
            try:
                current.lookup("")  # type: ignore[attr-defined]  # open it now
            except Exception:  # unreadable: the lookups say so; the version is unknown
                before = None
            after = self._stamp() if self._stamp is not None else None
            self._local.stamp = before if before == after else None
            self._local.map = current
        return current

    def lookup(self, key: str) -> str | None:
        return self._current().lookup(key)  # type: ignore[attr-defined]

    def data_stamp(self) -> object | None:
        """The version of the files this thread's map object reads (None: unknown)."""
        self._current()
        return self._local.stamp


class LoadedLookup:
    """A map read once into memory (or onto an SQLite file that is only ever replaced,
    never changed) and shared by every thread: its data never changes."""

    def __init__(self, table: object) -> None:
        self.table = table

    def __call__(self, key: str) -> str | None:
        return self.lookup(key)

    def lookup(self, key: str) -> str | None:
        return self.table.lookup(key)  # type: ignore[attr-defined]

    def data_stamp(self) -> object:
        return "loaded"


@record(frozen=True)
class AccessDb:
    """sendmail's access map searched as the stock `D`, `A`, `F` and `U` rulesets search it."""

    lookup: Callable[[str], str | None] | None = None

    def get(self, key: str) -> str | None:
        if self.lookup is None:
            return None
        try:
            return self.lookup(key)
        except TempFailure:
            return "<TMPF>"

    def _tagged(self, tag: str, key: str, bare: bool) -> str | None:
        found = self.get(f"{tag}:{key}")
        if found is None and bare:
            found = self.get(key)
        return found

    def domain(self, tag: str, domain: str, bare: bool = True) -> str | None:
        """The D ruleset: the domain, then each parent (`[1.2.3.4]` loses octets)."""
        for key in domain_keys(domain):
            found = self._tagged(tag, key, bare)
            if found is not None:
                return found
        return None

    def address(self, tag: str, addr: str, bare: bool = True) -> str | None:
        """The A ruleset: the IP address, then its nets (`127.0.0`, `127.0`, `127`)."""
        for key in address_keys(addr):
            found = self._tagged(tag, key, bare)
            if found is not None:
                return found
        return None

    def full(self, tag: str, user: str, domain: str, bare: bool = True) -> str | None:
        """The F ruleset: `user+detail@domain`, `user+*@domain`, `user@domain`."""
        for local in detail_variants(user):
            found = self._tagged(tag, f"{local}@{domain}", bare)
            if found is not None:
                return found
        return None

    def user(self, tag: str, user: str, bare: bool = True) -> str | None:
        """The U ruleset: `user@` (and its +detail variants)."""
        for local in detail_variants(user):
            found = self._tagged(tag, f"{local}@", bare)
            if found is not None:
                return found
        return None


def domain_keys(domain: str) -> list[str]:
    domain = domain.lower().rstrip(".")
    if domain.startswith("[") and domain.endswith("]"):
        inner = domain[1:-1]
        keys = []
        parts = inner.split(".")
        while parts:
            keys.append("[" + ".".join(parts) + "]")
            parts = parts[:-1]
        return keys
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels)) if labels[i]]


def address_keys(addr: str) -> list[str]:
    sep = ":" if ":" in addr else "."
    if sep == ":" and not addr.startswith("IPv6:"):
        addr = "IPv6:" + addr
    parts = addr.split(sep)
    keys = []
    minimum = 2 if addr.startswith("IPv6:") else 1
    while len(parts) >= minimum:
        keys.append(sep.join(parts))
        parts = parts[:-1]
    return keys


def detail_variants(user: str) -> list[str]:
    if "+" in user:
        base = user.split("+", 1)[0]
        return [user, f"{base}+*", base]
    return [user]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _strip_comments(text: str) -> str:
    """Ruleset text is tokenised, so a parenthesised comment is not part of an error."""
    if '"' in text:
        return text
    return re.sub(r"\s*\([^()]*\)", "", text).strip()


def error_from_text(text: str, status: str | None = None) -> MailError:
    """A `$#error` result: `[d.s.n] "550 text"` into a MailError."""
    text = _strip_comments(_unquote(text))
    match = re.match(r"([245]\d\d)[ -](.*)", text, re.DOTALL)
    if match:
        code, text = int(match.group(1)), match.group(2)
    else:
        code = 451 if (status or "").startswith("4") else 550
    if status is None:
        status = f"{str(code)[0]}.0.0"
    return MailError(text, reply_code=code, status=status)


def access_error(value: str) -> MailError:
    """An access db `ERROR:` value (`ERROR:5.7.1:550 text` or `ERROR:550 text`)."""
    rest = value[len("ERROR:") :]
    match = re.match(r"(\d\.\d{1,3}\.\d{1,3}):(.*)", rest, re.DOTALL)
    if match:
        return error_from_text(match.group(2), match.group(1))
    return error_from_text(rest)


def _access_verdict(
    value: str, reject: MailError, temporary: MailError | None = None
) -> Verdict | MailError | None:
    """What an access db value means: a verdict, a refusal, or None for "go on"."""
    word = value.strip()
    upper = word.upper()
    if upper in ("OK", "RELAY"):
        return Verdict.ACCEPT
    if upper == "SKIP" or upper.endswith(" SKIP"):
        return None
    if upper == "REJECT":
        return reject
    if upper == "DISCARD":
        return Verdict.DISCARD
    if upper.startswith("ERROR:"):
        return access_error(word)
    if upper.startswith("QUARANTINE:"):
        return Verdict.ACCEPT
    if word == "<TMPF>" or word.endswith("<TMPF>"):
        return temporary or MailError(_TEMP_SYSTEM_FAILURE, reply_code=451, status="4.3.0")
    return error_from_text(word)


# ---------------------------------------------------------------- the tables


@record(frozen=True)
class PolicyTables:
    """The facts from the configuration that the decisions read."""

    hostname: str  # $j
    local_domains: frozenset[str]  # class w
    relay_domains: frozenset[str] = frozenset()  # class R
    access: AccessDb = field(default_factory=AccessDb)
    blocklist_recipients: bool = False  # FEATURE(blocklist_recipients)
    accept_unresolvable_domains: bool = False  # FEATURE(accept_unresolvable_domains)
    accept_unqualified_senders: bool = False  # FEATURE(accept_unqualified_senders)
    trust_authenticated: bool = True

    def is_local(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return domain in self.local_domains or domain == self.hostname.lower()

    def in_relay_class(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        return any(domain == r or domain.endswith("." + r) for r in self.relay_domains)


# ---------------------------------------------------------------- address syntax


def split_address(address: str) -> tuple[str, str | None]:
    """(local part, domain or None) at the last '@' outside quotes."""
    quoted = False
    at = -1
    for index, ch in enumerate(address):
        if ch == '"':
            quoted = not quoted
        elif ch == "@" and not quoted:
            at = index
    if at < 0:
        return address, None
    return address[:at], address[at + 1 :]


def address_syntax_error(address: str, *, sender: bool) -> MailError | None:
    """Ruleset 0 (`parse`) refusals of the stock cf, for an address inside <>."""

    def err(status: str, text: str) -> MailError:
        return MailError(text, reply_code=553, status=status)

    if not sender and re.fullmatch(r"[^\"]*:.*;\s*", address):
        return err("5.1.3", "List:; syntax illegal for recipient addresses")
    if address.startswith("@") and ":" not in address:
        return err("5.1.3", "User address required")
    local, domain = split_address(address)
    if domain is None:
        if re.search(r",", local):
            return err("5.1.3", "Invalid route address")
        return None
    if domain == "":
        if local.endswith("@"):
            return err("5.1.3", "Invalid route address")
        return err("5.1.3", "Hostname required")
    if local == "":
        return err("5.1.3", "User address required")
    if domain.startswith("[") and "]" in domain and not domain.endswith("]"):
        return err("5.1.2", "Invalid address")
    if ":" in domain and not domain.startswith("["):
        return err("5.1.3", "Colon illegal in host name part")
    if domain.startswith(".") or ".." in domain:
        return err("5.1.2", "Invalid host name")
    if "@" in local.replace('"@"', "") and not local.startswith('"'):
        return err("5.1.3", "Invalid route address")
    if "," in address:
        return err("5.1.3", "Invalid route address")
    return None


# ---------------------------------------------------------------- the cf's own rules


class RuleOutcome(Protocol):
    """What a check ruleset decided (rules.checks.Verdict)."""

    action: str  # accept, reject, tempfail, discard, quarantine
    reply: str | None  # "550 5.7.1 Access denied" for reject/tempfail


class RuleCheckHooks(Protocol):
    """The cf's check_relay/check_mail/check_rcpt run by the rules engine; each returns
    None where the cf's rules are stock and the tables decide."""

    def connect(self, client: ClientInfo) -> RuleOutcome | None: ...

    def mail(self, session: SessionView, sender: str) -> RuleOutcome | None: ...

    def rcpt(self, session: SessionView, recipient: str) -> RuleOutcome | None: ...


def rule_verdict(outcome: RuleOutcome) -> Verdict:
    """A ruleset's `$#discard` / `$#OK` as a Verdict; its `$#error` raised as the reply."""
    if outcome.action in ("reject", "tempfail"):
        code, _, rest = (outcome.reply or "550 5.7.1 Access denied").partition(" ")
        status, _, text = rest.partition(" ")
        raise MailError(text, reply_code=int(code), status=status)
    return Verdict.DISCARD if outcome.action == "discard" else Verdict.ACCEPT


# ---------------------------------------------------------------- the policy


class StockPolicy:
    """The `SmtpPolicy` of a stock sendmail.cf (access_db, relay checks, sender checks)."""

    def __init__(
        self,
        tables: PolicyTables,
        recipients: RecipientChecker,
        hosts: HostLookup,
        authenticator: Callable[[str, str], bool] | None = None,
        rule_checks: RuleCheckHooks | None = None,
    ) -> None:
        self.tables = tables
        self.recipients = recipients
        self.hosts = hosts
        self.authenticator = authenticator
        # The cf's own check_* rulesets where it has hand-written rules (rules engine).
        self.rule_checks = rule_checks
        self._lock = threading.Lock()

    # ------------------------------------------------------------ connect

    def check_connect(self, client: ClientInfo) -> ConnectDecision:
        if not client.addr:
            return ConnectDecision()
        if self.rule_checks is not None:
            ruled = self.rule_checks.connect(client)
            if ruled is not None:
                try:
                    return ConnectDecision(verdict=rule_verdict(ruled))
                except MailError as refusal:
                    return ConnectDecision(refusal=refusal)
        access = self.tables.access
        found = None
        if client.name and not client.name.startswith("["):
            found = access.domain("Connect", client.name)
        if found is None:
            found = access.address("Connect", client.addr)
        if found is None:
            return ConnectDecision()
        outcome = _access_verdict(found, MailError("Access denied", reply_code=550, status="5.7.1"))
        if isinstance(outcome, MailError):
            return ConnectDecision(refusal=outcome)
        if outcome is Verdict.DISCARD:
            return ConnectDecision(verdict=Verdict.DISCARD)
        return ConnectDecision()

    # ------------------------------------------------------------ addresses

    def check_address(self, address: str, *, sender: bool) -> None:
        refusal = address_syntax_error(address, sender=sender)
        if refusal is not None:
            raise refusal

    # ------------------------------------------------------------ MAIL

    def check_mail(self, session: SessionView, sender: str) -> Verdict:
        if not sender:
            return Verdict.ACCEPT  # RFC 1123: <> must be accepted
        if self.rule_checks is not None:
            ruled = self.rule_checks.mail(session, sender)
            if ruled is not None:
                return rule_verdict(ruled)
        tables = self.tables
        client = session.client
        local, domain = split_address(sender)
        if domain is not None:
            domain = domain.rstrip(".")
        client_is_local = self._client_name_is_local(client)
        if (
            domain is not None
            and domain.lower()
            in (
                "localhost",
                "[127.0.0.1]",
                "[ipv6:0:0:0:0:0:0:0:1]",
                "[ipv6:::1]",
                f"localhost.{_parent(tables.hostname)}",
                "localhost.uucp",
            )
            and (client.addr and not client_is_local)
        ):
            raise MailError(
                "Real domain name required for sender address", reply_code=553, status="5.5.4"
            )
        mark: str | None = None
        if domain is not None:
            mark = OK if tables.is_local(domain) else self.hosts.resolve(domain)
        access = tables.access
        if domain is not None:
            found = (
                access.full("From", local, domain)
                or access.user("From", local)
                or access.domain("From", domain)
            )
        else:
            found = access.user("From", local)
        if found is not None:
            outcome = _access_verdict(
                found, MailError("Access denied", reply_code=550, status="5.7.1")
            )
            if isinstance(outcome, MailError):
                raise outcome
            if outcome is not None:
                return outcome
            return Verdict.ACCEPT  # SKIP: nothing more is asked
        if domain is None:
            if client.addr and not tables.accept_unqualified_senders:
                raise MailError(
                    f"Domain name required for sender address {sender}",
                    reply_code=553,
                    status="5.5.4",
                )
            return Verdict.ACCEPT
        if mark == TEMP:
            raise MailError(
                f"Domain of sender address {sender} does not resolve",
                reply_code=451,
                status="4.1.8",
            )
        if mark == PERM and not tables.accept_unresolvable_domains:
            raise MailError(
                f"Domain of sender address {sender} does not exist",
                reply_code=553,
                status="5.1.8",
            )
        return Verdict.ACCEPT

    # ------------------------------------------------------------ RCPT

    def check_rcpt(self, session: SessionView, recipient: str) -> Verdict:
        if self.rule_checks is not None:
            ruled = self.rule_checks.rcpt(session, recipient)
            if ruled is not None:
                verdict = rule_verdict(ruled)
                if verdict is not Verdict.DISCARD:
                    self.recipients.check_recipient(recipient)
                return verdict
        verdict = self._rcpt_access(recipient)
        if verdict is Verdict.DISCARD:
            return verdict  # $#discard ends check_rcpt: no relay or user checks
        if not self._relay_allowed(session, recipient):
            raise MailError("Relaying denied", reply_code=550, status="5.7.1")
        self.recipients.check_recipient(recipient)
        return verdict

    def _rcpt_access(self, recipient: str) -> Verdict:
        """FEATURE(blocklist_recipients): `To:` entries that refuse a recipient."""
        tables = self.tables
        if not tables.blocklist_recipients:
            return Verdict.ACCEPT
        access = tables.access
        local, domain = split_address(recipient)
        if domain is None:
            found = access.user("To", local)
        elif tables.is_local(domain):
            found = (
                access.full("To", local, domain)
                or access.user("To", local)
                or access.domain("To", domain)
            )
        else:
            found = access.full("To", local, domain) or access.domain("To", domain)
        if found is None:
            return Verdict.ACCEPT
        outcome = _access_verdict(
            found,
            MailError("Mailbox disabled for this recipient", reply_code=550, status="5.2.1"),
        )
        if isinstance(outcome, MailError):
            raise outcome
        return Verdict.DISCARD if outcome is Verdict.DISCARD else Verdict.ACCEPT

    def _relay_allowed(self, session: SessionView, recipient: str) -> bool:
        tables = self.tables
        if session.authenticated is not None and tables.trust_authenticated:
            return True
        _local, domain = split_address(recipient)
        if domain is None:
            return True  # a local user
        domain = domain.rstrip(".")
        if tables.is_local(domain) or tables.in_relay_class(domain):
            return True
        found = tables.access.domain("To", domain)
        if found is not None:
            if found.strip().upper() == "RELAY":
                return True
            if "<TMPF>" in found:
                raise MailError(_TEMP_SYSTEM_FAILURE, reply_code=451, status="4.3.0")
        return self._client_may_relay(session.client)

    def _client_may_relay(self, client: ClientInfo) -> bool:
        """The stock Relay_ok ruleset: who is this client?"""
        tables = self.tables
        addr = client.addr
        if addr in _LOCAL_ADDRESSES or _is_loopback_v6(addr):
            return True
        if any(addr == r or addr.startswith(r + ".") for r in tables.relay_domains):
            return True
        found = tables.access.address("Connect", addr)
        if found is not None:
            if found.strip().upper() == "RELAY":
                return True
            if "<TMPF>" in found:
                raise MailError(_TEMP_SYSTEM_FAILURE, reply_code=451, status="4.3.0")
        if f"[{addr}]" in tables.local_domains:
            return True
        if client.resolve == "TEMP":
            raise MailError(
                f"Relaying temporarily denied. Cannot resolve PTR record for {addr}",
                reply_code=450,
                status="4.4.0",
            )
        if client.resolve == "FORGED":
            raise MailError(
                f"Relaying denied. IP name possibly forged {client.name}",
                reply_code=550,
                status="5.7.1",
            )
        if client.resolve == "FAIL":
            raise MailError(
                f"Relaying denied. IP name lookup failed {client.name}",
                reply_code=550,
                status="5.7.1",
            )
        name = client.name.rstrip(".")
        if tables.is_local(name) or tables.in_relay_class(name):
            return True
        found = tables.access.domain("Connect", name)
        return found is not None and found.strip().upper() == "RELAY"

    def _client_name_is_local(self, client: ClientInfo) -> bool:
        return bool(client.name) and self.tables.is_local(client.name)

    # ------------------------------------------------------------ VRFY / EXPN / AUTH

    def verify(self, address: str) -> VerifyResult:
        return self.recipients.verify(address)

    def expand(self, address: str) -> list[VerifyResult]:
        return self.recipients.expand(address)

    def authenticate(self, authcid: str, password: str, authzid: str) -> bool:
        if self.authenticator is None:
            return False
        if authzid and authzid != authcid:
            return False  # acting for another user is not offered
        return self.authenticator(authcid, password)


def _parent(hostname: str) -> str:
    return hostname.split(".", 1)[1] if "." in hostname else hostname


def _is_loopback_v6(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.removeprefix("IPv6:")) == ipaddress.ip_address("::1")
    except ValueError:
        return False


def names_of(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.lower().rstrip(".") for v in values if v)
