"""The `check_*` rulesets as sendmail runs them at SMTP time (sendmail's rscheck()).

`run_check(world, "check_rcpt", "<bob@example.org>", macros=...)` prescans the input
as sendmail does (without stripping comments), runs the named ruleset and turns the
result into a `Verdict`: accept, or the `$#error` / `$#discard` triple as the SMTP
reply sendmail would give (`550 5.7.1 Access denied`). A ruleset the cf does not
define accepts, as in sendmail. `check_relay` and `check_compat` take two inputs
joined by `$|` (client name and address; sender and recipient).

Used by the SMTP policy and the router where the cf holds rules beyond the stock
m4 output (`Local_check_*`, `LOCAL_RULESETS`); pure, thread-safe per call (each call
has its own macros and messages).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pysendmail.record import record
from pysendmail.rules import tokenizer as tk
from pysendmail.rules.context import RuleWorld
from pysendmail.rules.engine import EX_OK, Messages, is_enhanced_status, stripquotes
from pysendmail.rules.tokenizer import CANONHOST, CANONNET, CANONUSER, CONDELSE, macro_id
from pysendmail.rules.tokenizer import ascii_digits as _ascii_digits
from pysendmail.sysexits import ExitCode


@record(frozen=True)
class Verdict:
    """What a check ruleset decided."""

    action: str  # "accept", "reject", "tempfail", "discard", "quarantine"
    reply: str | None = None  # the SMTP reply for reject/tempfail: "550 5.7.1 Access denied"
    status: str | None = None  # the enhanced status code of the reply
    result: str = ""  # the ruleset's final workspace as -bt prints it
    defined: bool = True  # False when the cf has no such ruleset
    exit_status: int = EX_OK

    @property
    def accepted(self) -> bool:
        return self.action in ("accept", "quarantine")


def run_check(
    world: RuleWorld,
    ruleset: str,
    first: str,
    second: str | None = None,
    *,
    macros: Mapping[str, str] | None = None,
    trace: Callable[[str], None] | None = None,
) -> Verdict:
    """Run `ruleset` over `first` (and `second`, joined by `$|`) and say what it decided.

    `macros` are the session's macros by name (`client_addr`, `client_name`, `i`,
    `mail_addr`, ...); they add to (and win over) the configuration's.
    """
    number = world.book.find(ruleset)
    if number < 0:
        return Verdict("accept", defined=False)
    session = dict(world.macros)
    for name, value in (macros or {}).items():
        session[macro_id(name)] = value
    messages = Messages()
    # One rewrite() over macros of its own, read by nothing afterwards: a macro the
    # ruleset sets (sendmail's tls_client sets {TLS_Name}) dies with this call.
    rewriter = world.rewriter(macros=session, messages=messages, trace=trace, private_macros=True)
    text = first if second is None else f"{first}{CONDELSE}{second}"
    scanned = tk.prescan(text, "\0", world.tables.no_comments, report=messages.usrerr)
    if scanned.tokens is None:
        return Verdict(
            "reject",
            reply="553 5.1.0 " + (messages.lines[-1] if messages.lines else "Cannot parse"),
            status="5.1.0",
            exit_status=int(ExitCode.DATAERR),
        )
    pvp = scanned.tokens
    status = rewriter.rewrite(pvp, number)
    printed = tk.printav(pvp).lstrip(" ")
    if not pvp or pvp[0][:1] != CANONNET or len(pvp) < 2:
        return Verdict("accept", result=printed, exit_status=status)
    mailer = pvp[1]
    if mailer == "discard":
        return Verdict("discard", result=printed, exit_status=status)
    if mailer != "error":
        return Verdict("accept", result=printed, exit_status=status)
    host, user = _triple_parts(rewriter.cat, pvp)
    if user is not None and host is not None and host.lower() == "quarantine":
        return Verdict("quarantine", reply=stripquotes(user), result=printed)
    reply, enhanced = error_reply(host, user or "")
    action = "tempfail" if reply.startswith("4") else "reject"
    return Verdict(action, reply=reply, status=enhanced, result=printed, exit_status=status)


def _triple_parts(cat: Callable[..., str], pvp: list[str]) -> tuple[str | None, str | None]:
    """The host (`$@ ...`) and user (`$: ...`) of an `$#error` triple, as buildaddr() joins them."""
    host: str | None = None
    index = 2
    if index < len(pvp) and pvp[index][:1] == CANONHOST:
        start = index + 1
        index = start
        while index < len(pvp) and pvp[index][:1] != CANONUSER:
            index += 1
        host = cat(pvp[start:index])
    while index < len(pvp) and pvp[index][:1] != CANONUSER:
        index += 1
    if index >= len(pvp):
        return host, None
    return host, cat(pvp[index + 1 :], " ")


def error_reply(host: str | None, user: str) -> tuple[str, str]:
    """The SMTP reply of an error triple (`$@ 5.7.1 $: "550 Access denied"`), with its
    enhanced status, as sendmail's buildaddr() composes it."""
    text = stripquotes(user)
    dsn = host if host and is_enhanced_status(host, "\0") else None
    if len(text) >= 4 and _ascii_digits(text[:3]) and text[0] in "245" and text[3] == " ":
        code, rest = text[:3], text[4:]
        own = is_enhanced_status(rest, " ")
        if own:
            return f"{code} {rest}", rest[:own]
        enhanced = dsn or (f"{code[0]}.0.0")
        return f"{code} {enhanced} {rest}", enhanced
    enhanced = dsn or "5.3.0"
    code = "451" if enhanced.startswith("4") else "553"
    return f"{code} {enhanced} {text}", enhanced
