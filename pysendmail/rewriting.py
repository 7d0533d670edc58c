"""What an address becomes for one mailer at delivery time (sendmail's remotename()).

Each delivery gives its mailer the envelope sender through rulesets 3, 1, the mailer's
S= envelope part and 4, and the addresses of the headers through 3, 1 or 2, the S= or
R= header part and 4 (`delivery/rewrite.py` takes the headers apart). The recipients'
envelope addresses went through 2, R= and 4 when they were routed (buildaddr()), so
the triple's user is already what the mailer gets.

`MailerAddresses(config, router).rewrite(address, mailer, sender=..., header=...)`:

- a cf whose rulesets 3, 1, 2, 4 and the mailer's S= and R= rulesets are all sendmail's
  stock m4 output is answered from the tables (`Router.rewrite_sender`: genericstable,
  MASQUERADE_AS, FEATURE(masquerade_envelope), allmasquerade, the local mailer leaving
  local names alone), without the rules engine;
- any other cf (hand-written `LOCAL_RULE_1`, an S= ruleset of its own, a ruleset this
  module has no table equivalent for) runs the cf's rules through the engine.

Answers are cached per (mailer, address, kind): a queue run sees the same senders often.
It never changes a queued message.
"""

from __future__ import annotations

from pysendmail.config.model import Config
from pysendmail.errors import MailError, TempFailure
from pysendmail.routing import Router
from pysendmail.tablesyntax import needs_rules

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pysendmail.rules.routes import RuleRouter
    from pysendmail.rules.stock import StockReport

CACHE_LIMIT = 4096
EX_TEMPFAIL = 75  # sysexits: what the rules return when a map was unavailable

# The table equivalents of the stock S=/R= rulesets, by name: what each does to an address.
SMTP_SENDER = "smtp-sender"  # EnvFromSMTP (masquerade only with masquerade_envelope)
SMTP_HEADER_SENDER = "smtp-header-sender"  # HdrFromSMTP: qualify, genericstable, masquerade
SMTP_RECIPIENT = "smtp-recipient"  # EnvToSMTP: qualify with $j
RELAY_RECIPIENT = "relay-recipient"  # MasqSMTP (relay's R=): qualify, UUCP paths alone
LOCAL_SENDER = "local-sender"  # EnvFromL: local names alone, masquerade with masquerade_envelope
LOCAL_HEADER_SENDER = "local-header-sender"  # HdrFromL: local names alone, masquerade the rest
LOCAL_RECIPIENT = "local-recipient"  # EnvToL, HdrToL: local names alone
PLAIN = "plain"  # no S=/R= ruleset: 3, 1 or 2 (empty when stock), 4
UNCHANGED = "unchanged"  # a cf without rulesets: nothing rewrites the address
STOCK_EQUIVALENTS = {
    "EnvFromSMTP": SMTP_SENDER,
    "HdrFromSMTP": SMTP_HEADER_SENDER,
    "EnvToSMTP": SMTP_RECIPIENT,
    "MasqSMTP": RELAY_RECIPIENT,
    "EnvFromL": LOCAL_SENDER,
    "HdrFromL": LOCAL_HEADER_SENDER,
    "EnvToL": LOCAL_RECIPIENT,
    "HdrToL": LOCAL_RECIPIENT,
}
# What S= and R= parts sendmail uses: (sender?, header?) -> (field, part)
_PARTS = {
    (True, False): ("S", 0),
    (True, True): ("S", 1),
    (False, False): ("R", 0),
    (False, True): ("R", 1),
}


def mailer_ruleset(config: Config, mailer: str, *, sender: bool, header: bool) -> str:
    """The name (or number) of the mailer's S= or R= ruleset for that kind of address:
    `S=EnvFromSMTP/HdrFromSMTP` gives the envelope and the header part, a field without
    `/` names one ruleset for both, "" when the mailer has none."""
    spec = config.mailers.get(mailer)
    if spec is None:
        return ""
    field, part = _PARTS[(sender, header)]
    envelope, _, header_part = spec.fields.get(field, "").partition("/")
    chosen = header_part if part and header_part else envelope
    return chosen.strip()


class MailerAddresses:
    """Addresses rewritten for each mailer of one configuration."""

    def __init__(self, config: Config, router: Router | None = None) -> None:
        self.config = config
        self.router = router or Router(config)
        self._plans: dict[tuple[str, bool, bool], str | None] = {}
        self._cache: dict[tuple[str, str, bool, bool], tuple[str, bool]] = {}
        self._engine: RuleRouter | None = None
        self._report: StockReport | None = None
        self._covered: bool | None = None
        self._from_domains: dict[str, str | None] = {}

    def for_mailer(self, mailer: str) -> MailerRewrite:
        """The rewriting of one mailer: (address, sender?, header?) -> address."""
        return MailerRewrite(self, mailer)

    def from_domain(self, sender: str) -> str | None:
        """sendmail's e_fromdomain: the envelope sender's domain when the mailer that
        sender resolves to has F=C (header addresses without a domain get it), else None."""
        if sender not in self._from_domains:
            self._from_domains[sender] = self._sender_domain(sender)
        return self._from_domains[sender]

    def _sender_domain(self, sender: str) -> str | None:
        try:
            route = self.router.resolve(sender)
        except MailError:
            return None
        spec = self.config.mailers.get(route.mailer)
        if spec is None or "C" not in spec.flags:
            return None
        _local, at, domain = self.router.address_part(sender).rpartition("@")
        return domain.rstrip(".") if at and domain else None

    def rewrite(self, address: str, mailer: str, *, sender: bool, header: bool) -> str:
        return self.rewrite_status(address, mailer, sender=sender, header=header)[0]

    def rewrite_status(
        self, address: str, mailer: str, *, sender: bool, header: bool
    ) -> tuple[str, bool]:
        """The address for `mailer`, and False when the rules could not finish (a map
        was unavailable: sendmail's EX_TEMPFAIL)."""
        key = (mailer, address, sender, header)
        found = self._cache.get(key)
        if found is not None:
            return found
        plan = self.plan(mailer, sender=sender, header=header)
        if plan == UNCHANGED:
            return address, True
        if plan is None or needs_rules(address):  # groups, lists, blanks: the tokenizer
            name, status = self.engine().rewrite_status(
                address, mailer, sender=sender, header=header
            )
            result = (name, status != EX_TEMPFAIL)
        else:
            # deliver() asks for the envelope sender canonical: no phrase, no comment
            bare = address if header else self.router.address_part(address)
            result = (self._by_tables(bare, plan), True)
        if not result[1]:
            return result  # a map may answer next time: nothing to remember
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    # ---- which way

    def plan(self, mailer: str, *, sender: bool, header: bool) -> str | None:
        """The table equivalent for that mailer and kind of address, or None when the
        cf's own rules must run."""
        key = (mailer, sender, header)
        if key not in self._plans:
            self._plans[key] = self._choose(mailer, sender=sender, header=header)
        return self._plans[key]

    def _choose(self, mailer: str, *, sender: bool, header: bool) -> str | None:
        decided = self.config.routing_rules
        ruleset = mailer_ruleset(self.config, mailer, sender=sender, header=header)
        if decided == "tables":  # a cf without rulesets: sendmail would rewrite nothing
            return UNCHANGED
        if decided == "cf" or not self._stock(ruleset) or not self._tables_cover_features():
            return None
        if not ruleset or ruleset == "0":
            return PLAIN
        return STOCK_EQUIVALENTS.get(self._name_of(ruleset))

    def _stock_report(self) -> StockReport:
        if self._report is None:
            from pysendmail.rules.stock import StockReport

            self._report = StockReport(self.config.cf.rulesets)
        return self._report

    def _name_of(self, ruleset: str) -> str:
        if not ruleset.isdigit():
            return ruleset
        return self._stock_report().numbers.get(ruleset, ruleset)

    def _stock(self, ruleset: str) -> bool:
        report = self._stock_report()
        entries = ("canonify", "1", "2", "final", ruleset)
        return all(not report.runs_rules(entry) for entry in entries if entry)

    def _tables_cover_features(self) -> bool:
        """Whether the stock variants of the masquerading rulesets in this cf are those
        the tables do: FEATURE(limited_masquerade), masquerade_entire_domain,
        generics_entire_domain, local_no_masquerade and always_add_domain write other
        rules, which the engine runs instead."""
        if self._covered is None:
            self._covered = tables_cover(self.config)
        return self._covered

    def engine(self) -> RuleRouter:
        if self._engine is None:
            from pysendmail.rules.routes import rule_router_for

            self._engine = rule_router_for(self.config, open_map=self.router._rule_map)
        return self._engine

    # ---- the tables

    def _by_tables(self, address: str, plan: str) -> str:
        router = self.router
        if plan == SMTP_SENDER:
            return router.rewrite_sender(address, envelope=True)
        if plan == SMTP_HEADER_SENDER:
            return router.rewrite_sender(address, envelope=False)
        if plan == SMTP_RECIPIENT:
            return router.qualify(address)
        uucp = router.uucp_form(address)
        if uucp is not None:  # `host!user` stays a UUCP path for these rulesets
            return uucp
        if plan == RELAY_RECIPIENT:
            return router.qualify(address)
        if router.is_local_name(address):
            return address
        if plan == LOCAL_SENDER:
            return router.rewrite_sender(address, envelope=True)
        if plan == LOCAL_HEADER_SENDER:
            return router.rewrite_sender(address, envelope=False)
        return router.qualify(address)


def tables_cover(config: Config) -> bool:
    """False when the cf's MasqHdr, HdrFromL or AddDomain are the variants of the
    FEATUREs the tables do not reproduce (see MailerAddresses._tables_cover_features)."""
    rules: dict[str, list[tuple[str, str]]] = {}
    for ruleset in config.cf.rulesets:
        rules.setdefault(ruleset.name, []).extend((r.lhs, r.rhs) for r in ruleset.rules)
    masq = rules.get("MasqHdr", [])
    if any("$* $=G" in lhs or "$* $=M" in lhs for lhs, _ in masq):
        return False  # generics_entire_domain, masquerade_entire_domain
    if config.masquerade_as and masq and not any("$=w" in lhs and "$M" in rhs for lhs, rhs in masq):
        return False  # limited_masquerade: class w is not masqueraded
    if rules.get("AddDomain"):
        return False  # always_add_domain: the local mailer qualifies local names
    from_local = rules.get("HdrFromL")
    return not from_local or any("MasqHdr" in rhs for _, rhs in from_local)


class MailerRewrite:
    """One mailer's rewriting, as the deliverers call it: (address, sender?, header?) ->
    address. For a mailer that speaks SMTP or LMTP, rules that could not finish (a map
    unavailable) raise TempFailure: sendmail defers that delivery rather than send
    half-rewritten addresses; the other mailers are given what the rules made."""

    def __init__(self, addresses: MailerAddresses, mailer: str) -> None:
        self.addresses = addresses
        self.mailer = mailer
        spec = addresses.config.mailers.get(mailer)
        self.speaks_smtp = spec is not None and (spec.path == "[IPC]" or "z" in spec.flags)

    def __call__(self, address: str, sender: bool, header: bool) -> str:
        name, finished = self.addresses.rewrite_status(
            address, self.mailer, sender=sender, header=header
        )
        if not finished and self.speaks_smtp:
            raise TempFailure(
                f"Deferred: the rules of mailer {self.mailer} could not rewrite {address}",
                status="4.3.0",
            )
        return name

    def from_domain(self, sender: str) -> str | None:
        return self.addresses.from_domain(sender)
