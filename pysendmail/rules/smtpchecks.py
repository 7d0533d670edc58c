"""The cf's own `check_*` rulesets at SMTP time, where the cf holds hand-written rules.

`RuleChecks.for_cf(world, report)` knows, from `rules/stock.py`'s report, at which points
the cf has rules beyond sendmail's stock m4 output (`Local_check_relay`,
`Local_check_mail`, `Local_check_rcpt`, `LOCAL_RULE_3` reached through canonify, a
`check_compat` of its own). At those points it runs the cf's whole entry ruleset
through the engine, with the macros sendmail sets there, and returns the `Verdict`
(accept, reject with sendmail's reply, tempfail, discard); at the others it returns
None and the table-driven stock policy decides.

- connect: `check_relay` over `${client_name} $| ${client_addr}`
- MAIL: `check_mail` over the address as the client wrote it, `$f` the sender
- RCPT: `check_rcpt` over the address as written
- delivery: `check_compat` over `sender $| recipient` (after aliasing)

The session is read by attribute (`client.addr`, `client.name`, `client.resolve`,
`client.port`, `helo`, `authenticated`, `tls`), so this module needs nothing from the
protocol layer. Pure and thread-safe: each call has its own macros.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from pysendmail.config.model import Config
from pysendmail.rules.address import RF_SENDERADDR, AddressRules, kept_parse
from pysendmail.rules.checks import Verdict, run_check
from pysendmail.rules.context import MapOpener, RuleWorld, build_world
from pysendmail.rules.memo import Reads
from pysendmail.rules.stock import StockReport

CHECK_POINTS = ("check_relay", "check_mail", "check_rcpt", "check_compat")


def _path_address(text: str) -> str:
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        return text[1:-1]
    return text


class RuleChecks:
    """Runs the check rulesets a cf has made its own; None where the stock policy decides."""

    def __init__(
        self,
        world: RuleWorld,
        points: frozenset[str],
        *,
        macros: Mapping[str, str] | None = None,
    ) -> None:
        self.world = world
        self.points = points
        self.fixed = dict(macros or {})
        # {mail_*}/{rcpt_*} of an address: see parsed_macros (address.kept_parse).
        self._parsed: dict[Hashable, tuple[dict[str, str], Reads]] = {}

    @classmethod
    def for_cf(
        cls, world: RuleWorld, report: StockReport, macros: Mapping[str, str] | None = None
    ) -> RuleChecks | None:
        if not any(report.runs_rules(entry) for entry in CHECK_POINTS):
            # header checks alone (H lines with $>rs): the stock policy keeps the others
            return cls(world, frozenset(), macros=macros) if world.header_checks else None
        # One check with hand-written rules puts the cf's rules in charge of all of them,
        # as in sendmail: a check the cf does not define accepts (delay_checks moves the
        # sender checks from check_mail to check_rcpt, for one).
        return cls(world, frozenset(CHECK_POINTS), macros=macros)

    def runs(self, entry: str) -> bool:
        return entry in self.points

    # ------------------------------------------------------------ macros

    def client_macros(self, client: Any) -> dict[str, str]:
        """The macros sendmail defines once a client has connected."""
        addr = str(getattr(client, "addr", "") or "")
        name = str(getattr(client, "name", "") or "")
        return {
            **self.fixed,
            "client_addr": addr,
            "client_name": name if addr else "",
            "client_ptr": name if addr else "",
            "client_resolve": str(getattr(client, "resolve", "OK") or "OK") if addr else "",
            "client_port": str(getattr(client, "port", 0) or 0),
        }

    def session_macros(self, session: Any) -> dict[str, str]:
        macros = self.client_macros(session.client)
        macros["s"] = str(getattr(session, "helo", "") or "")
        authenticated = getattr(session, "authenticated", None)
        if authenticated is not None:
            macros["auth_authen"] = str(authenticated)
            macros["auth_type"] = "PLAIN"
        macros["verify"] = "NONE" if getattr(session, "tls", False) else ""
        envelope = getattr(session, "envelope", None)
        sender = getattr(envelope, "sender", None) if envelope is not None else None
        if sender is not None:
            macros["f"] = _path_address(str(sender))
            macros["mail_from"] = f"<{macros['f']}>"
        return macros

    # ------------------------------------------------------------ the points

    def connect(self, client: Any) -> Verdict | None:
        if not self.runs("check_relay") or not getattr(client, "addr", ""):
            return None
        macros = self.client_macros(client)
        return run_check(
            self.world,
            "check_relay",
            macros["client_name"],
            macros["client_addr"],
            macros=macros,
        )

    def parsed_macros(self, prefix: str, address: str, *, sender: bool) -> dict[str, str]:
        """`{rcpt_mailer}`, `{rcpt_host}`, `{rcpt_addr}` (or `mail_`): the address through
        rulesets 3 and 0, as sendmail's parseaddr() leaves them before the check."""
        path = f"<{_path_address(address)}>"

        def parse(rules: AddressRules) -> dict[str, str]:
            flags = RF_SENDERADDR if sender else 0
            parsed = rules.parseaddr(path, flags, "\0", not sender)
            if parsed is None or parsed.bad:
                return {}
            return {
                f"{prefix}_mailer": parsed.mailer.name,
                f"{prefix}_host": parsed.host or "",
                f"{prefix}_addr": parsed.user,
            }

        return dict(kept_parse(self.world, self._parsed, (prefix, path, sender), parse))

    def mail(self, session: Any, sender: str) -> Verdict | None:
        if not self.runs("check_mail"):
            return None
        macros = self.session_macros(session)
        macros.update(self.parsed_macros("mail", sender, sender=True))
        macros["f"] = _path_address(sender)
        return run_check(self.world, "check_mail", f"<{macros['f']}>", macros=macros)

    def header(self, session: Any, name: str, value: str) -> Verdict | None:
        """chompheader()'s check of one received header: the H line's `$>rs` for this
        header (or `H*:`'s) over its value, (comments) stripped unless `$>+rs`; None when
        no ruleset checks this header."""
        check = self.world.header_checks.get(name.lower()) or self.world.header_checks.get("*")
        if check is None:
            return None
        ruleset, strip = check
        from pysendmail.rules.testmode import strip_comments

        value = value.strip()
        macros = self.session_macros(session)
        macros.update(
            {
                "hdr_name": name,
                "hdrlen": str(len(value)),
                "currHeader": '"' + value.replace('"', '\\"') + '"',
            }
        )
        return run_check(
            self.world, ruleset, strip_comments(value) if strip else value, macros=macros
        )

    def rcpt(self, session: Any, recipient: str) -> Verdict | None:
        if not self.runs("check_rcpt"):
            return None
        macros = self.session_macros(session)
        macros.update(self.parsed_macros("rcpt", recipient, sender=False))
        return run_check(self.world, "check_rcpt", f"<{_path_address(recipient)}>", macros=macros)

    def compat(
        self, sender: str, recipient: str, macros: Mapping[str, str] | None = None
    ) -> Verdict | None:
        if not self.runs("check_compat"):
            return None
        values = {**self.fixed, **(macros or {}), "f": _path_address(sender)}
        return run_check(
            self.world,
            "check_compat",
            _path_address(sender),
            _path_address(recipient),
            macros=values,
        )


def checks_for_config(config: Config, *, open_map: MapOpener | None = None) -> RuleChecks | None:
    """The RuleChecks of a translated cf, or None when its check rulesets are all stock
    and no H line names a header check ruleset."""
    from pysendmail.rules.context import header_checks

    report = StockReport(config.cf.rulesets)
    if not any(report.runs_rules(entry) for entry in CHECK_POINTS) and not header_checks(config.cf):
        return None
    world = build_world(config.cf, hostname=config.hostname, config=config, open_map=open_map)
    mode = str(config.option("DeliveryMode") or "background")[:1].lower()
    fixed = {"deliveryMode": mode, "daemon_flags": "", "server_name": config.hostname}
    return RuleChecks.for_cf(world, report, fixed)
