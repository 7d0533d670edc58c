"""Routing by the rules: an address through rulesets 3 and 0 to its mailer triple, and an
address rewritten for a mailer (rulesets 3, 1 or 2, the mailer's S=/R=, 4).

`RuleRouter(world).resolve("bob@example.org")` is what sendmail's parseaddr() makes of a
recipient: `Triple("esmtp", "example.org.", "bob@example.org")`, or the `MailError`
sendmail gives: the text of an `$#error` triple (`553 5.1.3 User address required`) or of
a scanning error (`553 Unbalanced '<'`), with its enhanced status and exit code.
`rewrite(address, mailer, sender=...)` is remotename(): what the envelope says to that
mailer.

The router (routing.py) uses it for a cf whose routing rulesets are not the stock m4
output (`rules/stock.py`: `LOCAL_RULE_0`..`3`, hand-written rulesets), and, on a stock cf,
for the addresses whose tokens table routing does not take apart itself
(`needs_rules()`: white space, nested `<>`, list and route syntax, overlong tokens).
Pure and thread-safe: each call has its own Rewriter (macros, messages).
"""

from __future__ import annotations

from typing import NamedTuple

from pysendmail.config.model import Config
from pysendmail.errors import AddressSyntaxError, MailError, TempFailure
from pysendmail.rules.address import (
    RF_CANONICAL,
    RF_HEADERADDR,
    RF_SENDERADDR,
    AddressRules,
    dsn_to_exit,
    kept_parse,
)
from pysendmail.rules.checks import error_reply
from pysendmail.rules.context import MapOpener, RuleWorld, build_world
from pysendmail.rules.engine import Messages, is_enhanced_status
from pysendmail.rules.stock import ROUTING_RULESETS, StockReport
from pysendmail.sysexits import ExitCode
from pysendmail.tablesyntax import needs_rules

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Hashable

    from pysendmail.rules.memo import Reads


class Triple(NamedTuple):
    """`$#mailer $@host $:user`; host is "" for a mailer without one."""

    mailer: str
    host: str
    user: str


class RuleRouter:
    """Resolves and rewrites addresses with one configuration's rulesets."""

    def __init__(self, world: RuleWorld, *, stock: bool = False) -> None:
        self.world = world
        self.stock = stock  # the routing rulesets are the stock m4 output
        # address -> (Triple, what resolving it read): see resolve().
        self._resolved: dict[Hashable, tuple[Triple, Reads]] = {}

    def _rules(self) -> AddressRules:
        return AddressRules(self.world, self.world.rewriter(messages=Messages()))

    def resolve(self, address: str) -> Triple:
        """The mailer triple for a recipient, or the MailError sendmail would give (a
        triple is kept while what its rules read is unchanged: address.kept_parse)."""
        return kept_parse(
            self.world, self._resolved, address, lambda rules: self._resolve(rules, address)
        )

    def _resolve(self, rules: AddressRules, address: str) -> Triple:
        parsed = rules.parseaddr(address, 0, "\0", True)
        messages = rules.messages
        if parsed is not None and parsed.bad and parsed.mailer.name == "*error*":
            reply, status = error_reply(parsed.host, parsed.user)
            raise _mail_error(reply, status)
        if parsed is not None and parsed.queue_up:
            raise TempFailure("Transient parse error", status=parsed.status or "4.4.3")
        if messages.raw or parsed is None or parsed.bad:
            raise _scan_error(messages.raw[0] if messages.raw else "553 Cannot parse address")
        if parsed.mailer.has("l") and not parsed.user:
            raise AddressSyntaxError("User address required")
        return Triple(parsed.mailer.name, parsed.host or "", parsed.user)

    def rewrite(self, address: str, mailer_name: str, *, sender: bool, header: bool = False) -> str:
        """An address as `mailer_name` is given it (sendmail's remotename()): rulesets 3,
        1 (sender) or 2, the mailer's S= or R= (its envelope or header part), 4. A header
        address keeps its phrase and comments; the envelope sender is canonical, as
        deliver() asks for it."""
        return self.rewrite_status(address, mailer_name, sender=sender, header=header)[0]

    def rewrite_status(
        self, address: str, mailer_name: str, *, sender: bool, header: bool = False
    ) -> tuple[str, int]:
        """rewrite() and the rules' exit status (EX_TEMPFAIL when a map was unavailable)."""
        mailer = self.world.mailer(mailer_name)
        if mailer is None:
            return address, 0
        flags = RF_SENDERADDR if sender else 0
        if header:
            flags |= RF_HEADERADDR
        elif sender:
            flags |= RF_CANONICAL
        return self._rules().remotename(address, mailer, flags)


def rule_router_for(config: Config, *, open_map: MapOpener | None = None) -> RuleRouter:
    """The RuleRouter of a translated cf; `stock` says whether table routing may stand in."""
    world = build_world(config.cf, hostname=config.hostname, config=config, open_map=open_map)
    return RuleRouter(world, stock=routing_is_stock(config))


def routing_is_stock(config: Config) -> bool:
    """True when rulesets 3, 0, 1, 2 and 4 of the cf are all sendmail's stock m4 output
    (decided by the translator when it made the Config: Config.routing_rules)."""
    if config.routing_rules:
        return config.routing_rules != "cf"
    return _routing_is_stock(StockReport(config.cf.rulesets))


def _routing_is_stock(report: StockReport) -> bool:
    return not any(report.runs_rules(entry) for entry in ROUTING_RULESETS)


class RulesForRouting:
    """What routing.py asks: which addresses the rules route (the engine built on demand)."""

    def __init__(self, config: Config, *, open_map: MapOpener | None = None) -> None:
        self.config = config
        self.open_map = open_map
        if config.routing_rules:  # decided by the translator
            self.stock = config.routing_rules != "cf"
            self.available = config.routing_rules != "tables"
        else:
            report = StockReport(config.cf.rulesets)
            self.stock = _routing_is_stock(report)
            self.available = report.has_rules("0")  # a cf without ruleset 0: the tables
        self._router: RuleRouter | None = None
        if self.available and not self.stock:
            self._router = rule_router_for(config, open_map=open_map)

    def router_for(self, address: str) -> RuleRouter | None:
        """The RuleRouter when the rules route `address`, None when the tables do."""
        if not self.available or (self.stock and not needs_rules(address)):
            return None
        if self._router is None:
            self._router = rule_router_for(self.config, open_map=self.open_map)
        return self._router


def _mail_error(reply: str, status: str) -> MailError:
    code, _, rest = reply.partition(" ")
    text = rest.partition(" ")[2]
    exit_code = ExitCode(dsn_to_exit(status))
    if code.startswith("4"):
        return TempFailure(text, reply_code=int(code), status=status, exit_code=exit_code)
    return MailError(text, reply_code=int(code), status=status, exit_code=exit_code)


def _scan_error(message: str) -> MailError:
    """A usrerr()/syserr() message (`553 5.1.1 Address too long`) as a MailError."""
    code, text = "553", message
    if len(message) >= 4 and message[:3].isdigit() and message[3] in " -":
        code, text = message[:3], message[4:]
    enhanced = is_enhanced_status(text, " ")
    status = text[:enhanced] if enhanced else "5.1.3" if code.startswith("5") else "4.0.0"
    if enhanced:
        text = text[enhanced + 1 :]
    return _mail_error(f"{code} {status} {text}", status)
