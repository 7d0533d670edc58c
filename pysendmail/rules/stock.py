"""Which rulesets of a cf are sendmail's stock m4 output and which hold hand-written rules.

The m4 macros (proto.m4 and the FEATUREs) write a known set of rules into each ruleset;
`stock_rules.txt` (made by `rules/stockgen.py` from m4's own output) holds a fingerprint
of each, by ruleset name. A ruleset is stock when every one of its rules is known for its
name; a `LOCAL_RULE_n` line inside a stock ruleset, a `LOCAL_RULESETS` ruleset
(`Local_check_rcpt`, `check_compat` written by hand) or a FEATURE argument never seen
makes it not stock. An empty ruleset (`SLocal_check_mail` with no rules) is stock.

`StockReport` answers, for an entry point (`check_rcpt`, ruleset 0), whether anything
reachable from it through `$>` calls is not stock: then the daemon and the router run
the cf's rules there instead of the table-driven stock behaviour. Guessing "not stock"
for stock rules is safe (the rules themselves run); the reverse is what the catalogue
prevents. Pure: reads only its own data file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import NamedTuple

from pysendmail.config.model import Ruleset

_CALL = re.compile(r'\$>\s*"?([A-Za-z_][A-Za-z0-9_]*|[0-9]+)"?')
_SPACE = re.compile(r"\s+")

# The entry points sendmail runs, by what they do.
CHECK_RULESETS = ("check_relay", "check_mail", "check_rcpt", "check_compat")
ROUTING_RULESETS = ("canonify", "parse", "1", "2", "final")
# The checks the daemon runs (check_compat belongs to delivery: not run yet).
SMTP_CHECKS = ("check_relay", "check_mail", "check_rcpt")


def ruleset_key(ruleset: Ruleset) -> str:
    """How the catalogue names a ruleset: its name, else its number."""
    return ruleset.name or str(ruleset.number)


def fingerprint(key: str, lhs: str, rhs: str) -> str:
    """A short digest of one rule of ruleset `key`, blind to runs of white space."""
    text = f"{key}\0{_SPACE.sub(' ', lhs.strip())}\t{_SPACE.sub(' ', rhs.strip())}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@cache
def catalogue() -> Mapping[str, frozenset[str]]:
    """The stock rules' fingerprints by ruleset name."""
    text = resources.files("pysendmail.rules").joinpath("stock_rules.txt").read_text()
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, digest = line.partition("\t")
        found.setdefault(key, set()).add(digest)
    return {key: frozenset(digests) for key, digests in found.items()}


class RulesetStatus(NamedTuple):
    """One ruleset of a cf: stock or not, and which of its rules m4 never writes."""

    key: str
    number: int | None
    rules: int
    stock: bool
    local_rules: tuple[str, ...]  # "file:line" of each rule not in the catalogue
    calls: frozenset[str]


class StockReport:
    """The stock-or-not verdict on each ruleset of one cf, and on what each reaches."""

    def __init__(self, rulesets: Iterable[Ruleset]) -> None:
        known = catalogue()
        merged: dict[str, list[Ruleset]] = {}
        self.numbers: dict[str, str] = {}  # "3" -> "canonify"
        for ruleset in rulesets:
            key = ruleset_key(ruleset)
            merged.setdefault(key, []).append(ruleset)
            if ruleset.number is not None:
                self.numbers.setdefault(str(ruleset.number), key)
        self.status: dict[str, RulesetStatus] = {}
        for key, parts in merged.items():
            stock_rules = known.get(key, frozenset())
            local: list[str] = []
            calls: set[str] = set()
            count = 0
            number = next((p.number for p in parts if p.number is not None), None)
            for part in parts:
                for rule in part.rules:
                    count += 1
                    calls.update(_CALL.findall(rule.rhs))
                    if fingerprint(key, rule.lhs, rule.rhs) not in stock_rules:
                        local.append(str(rule.location))
            self.status[key] = RulesetStatus(
                key, number, count, not local, tuple(local), frozenset(calls)
            )

    def _resolve(self, name: str) -> str:
        return self.numbers.get(name, name)

    def reachable(self, entry: str) -> list[str]:
        """The rulesets `entry` calls, directly or not, itself first (those the cf has)."""
        start = self._resolve(entry)
        seen: list[str] = []
        todo = [start]
        while todo:
            key = todo.pop(0)
            if key in seen or key not in self.status:
                continue
            seen.append(key)
            todo.extend(self._resolve(name) for name in sorted(self.status[key].calls))
        return seen

    def is_stock(self, entry: str) -> bool:
        """True when every ruleset reachable from `entry` is stock (or it is absent)."""
        return all(self.status[key].stock for key in self.reachable(entry))

    def has_rules(self, entry: str) -> bool:
        status = self.status.get(self._resolve(entry))
        return status is not None and status.rules > 0

    def runs_rules(self, entry: str) -> bool:
        """Whether pysendmail runs the cf's own rules at `entry` (it has hand-written ones)."""
        return self.has_rules(entry) and not self.is_stock(entry)

    def local_rulesets(self) -> list[str]:
        return [key for key, status in self.status.items() if not status.stock]

    def run_by_engine(self) -> list[str]:
        """The entry points pysendmail runs through the rules engine for this cf: all the
        SMTP checks it defines once one of them has hand-written rules (the daemon), and
        rulesets 3 and 0 once routing has (the router)."""
        run: list[str] = []
        if any(self.runs_rules(entry) for entry in CHECK_RULESETS):
            run += [entry for entry in SMTP_CHECKS if self.has_rules(entry)]
        if any(self.runs_rules(entry) for entry in ROUTING_RULESETS):
            run += [self._resolve("3"), self._resolve("0")]
        return run

    def summary(self) -> dict[str, object]:
        """What `pysendmail-cf translate` shows: stock rulesets, the others, and what runs."""
        return {
            "stock": sorted(k for k, s in self.status.items() if s.stock and s.rules),
            "local": {
                key: list(self.status[key].local_rules) for key in sorted(self.local_rulesets())
            },
            "run": self.run_by_engine(),
        }
