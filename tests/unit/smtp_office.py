"""The fixture `office` configuration as the SMTP session and policy see it, for tests.

Until the config translator and routing land, this reads the few facts the replay needs
straight from the fixture folder (class w, class R, the access and mailertable maps
through tables' `open_source_map`, the aliases through config's parser) and answers
"does this local user exist" from the fixture's user list (alice, bob, mallory and the
system users, as the README says existed when the records were made).
"""

from __future__ import annotations

from pathlib import Path

from pysendmail.config.aliases import TargetKind, parse_include_list, read_aliases
from pysendmail.config.compiled import open_source_map
from pysendmail.daemons.server import load_help_topics
from pysendmail.errors import MailError, UserUnknown
from pysendmail.policy import (
    AccessDb,
    HostsFile,
    PolicyTables,
    StockPolicy,
    error_from_text,
    split_address,
)
from pysendmail.protocol.smtp import ClientInfo, SessionSettings, VerifyResult

HOSTNAME = "mail.example.com"
USERS = frozenset({"alice", "bob", "mallory", "root", "nobody", "mail", "daemon"})


def _names(path: Path) -> frozenset[str]:
    words = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line.lower())
    return frozenset(words)


class OfficeRecipients:
    """Local users and aliases of the office fixture; mailertable errors for domains."""

    def __init__(self, office: Path, local_domains: frozenset[str]) -> None:
        self.aliases = read_aliases(office / "aliases")
        self.mailertable = open_source_map(office / "mailertable")
        self.local_domains = local_domains

    def _local_part(self, address: str) -> str | None:
        local, domain = split_address(address)
        if domain is None or domain.lower() in self.local_domains:
            return local
        return None

    def check_recipient(self, address: str) -> None:
        _local, domain = split_address(address)
        if domain is not None:
            route = self.mailertable.lookup(domain.lower())
            if route and route.startswith("error:"):
                _, status, text = route.split(":", 2)
                raise error_from_text(text, status)
        user = self._local_part(address)
        if user is not None and not self._exists(user):
            raise UserUnknown("User unknown")

    def _exists(self, user: str) -> bool:
        return self.aliases.lookup(user) is not None or user.lower() in USERS

    def verify(self, address: str) -> VerifyResult:
        user = self._local_part(address)
        if user is None:
            return VerifyResult(address, local=False)
        if not self._exists(user):
            raise UserUnknown("User unknown")
        return VerifyResult(f"{user}@{HOSTNAME}")

    def expand(self, address: str) -> list[VerifyResult]:
        user = self._local_part(address)
        if user is None:
            return [VerifyResult(address, local=False)]
        entry = self.aliases.lookup(user)
        if entry is None:
            return [self.verify(address)]
        results: list[VerifyResult] = []
        # sendmail lists an alias's own targets last-first, an :include: file's in order.
        for target in reversed(entry.targets):
            if target.kind is TargetKind.INCLUDE:
                included = parse_include_list(Path(target.value).read_text(), target.value)
                results.extend(self.verify(t.value) for t in included)
            elif target.kind is TargetKind.ADDRESS:
                results.append(self.verify(target.value))
        return results


def office_policy(oracle_dir: Path) -> StockPolicy:
    office = oracle_dir / "configs" / "office"
    local = _names(office / "local-host-names") | {"localhost", HOSTNAME}
    access_map = open_source_map(office / "access")
    tables = PolicyTables(
        hostname=HOSTNAME,
        local_domains=local,
        relay_domains=_names(office / "relay-domains"),
        access=AccessDb(access_map.lookup),
        blocklist_recipients=True,
    )
    return StockPolicy(tables, OfficeRecipients(office, local), HostsFile(office / "hosts"))


def office_settings(oracle_dir: Path, **overrides: object) -> SessionSettings:
    office = oracle_dir / "configs" / "office"
    macros = {"v": "8.17.1.9", "Z": "8.17.1.9/Debian-2+deb12u2", "j": HOSTNAME}
    values: dict[str, object] = {
        "hostname": HOSTNAME,
        "greeting": f"{HOSTNAME} Sendmail 8.17.1.9; (masked)",
        "max_message_size": 100000,
        "privacy": frozenset({"authwarnings"}),
        "help_topics": load_help_topics(office / "helpfile", macros),
        "chunking": False,
        "smtputf8": False,
    }
    values.update(overrides)
    return SessionSettings(**values)  # type: ignore[arg-type]


def office_client(oracle_dir: Path, addr: str) -> ClientInfo:
    hosts = HostsFile(oracle_dir / "configs" / "office" / "hosts")
    name, resolve = hosts.client_name(addr)
    return ClientInfo(addr=addr, name=name, resolve=resolve)


__all__ = ["MailError", "office_client", "office_policy", "office_settings"]
