"""The fixture `office` configuration as the SMTP session and policy see it, for tests.

Until the config translator and routing land, this reads the few facts the replay needs
straight from the fixture folder (class w, class R, the access, mailertable and
virtusertable maps through tables' `open_source_map`, the aliases through config's
parser) and answers "does this local user exist" from the fixture's user list (alice,
bob, mallory and the system users, as the README says existed when the records were
made) instead of this machine's passwd.
"""

from __future__ import annotations

from pathlib import Path

from pysendmail.config.aliases import read_aliases
from pysendmail.config.compiled import open_source_map
from pysendmail.daemons.server import LocalRecipients, load_help_topics
from pysendmail.policy import AccessDb, HostsFile, PerThreadLookup, PolicyTables, StockPolicy
from pysendmail.protocol.smtp import ClientInfo, SessionSettings

HOSTNAME = "mail.example.com"
USERS = frozenset({"alice", "bob", "mallory", "root", "nobody", "mail", "daemon"})


def _names(path: Path) -> frozenset[str]:
    words = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line.lower())
    return frozenset(words)


def office_policy(oracle_dir: Path) -> StockPolicy:
    office = oracle_dir / "configs" / "office"
    local = _names(office / "local-host-names") | {"localhost", HOSTNAME}
    tables = PolicyTables(
        hostname=HOSTNAME,
        local_domains=local,
        relay_domains=_names(office / "relay-domains"),
        access=AccessDb(PerThreadLookup(lambda: open_source_map(office / "access"))),
        blocklist_recipients=True,
    )
    recipients = LocalRecipients(
        HOSTNAME,
        local,
        aliases=read_aliases(office / "aliases"),
        lookup_mailertable=PerThreadLookup(lambda: open_source_map(office / "mailertable")),
        lookup_virtuser=PerThreadLookup(lambda: open_source_map(office / "virtusertable")),
        user_exists=USERS.__contains__,
    )
    return StockPolicy(tables, recipients, HostsFile(office / "hosts"))


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


__all__ = ["office_client", "office_policy", "office_settings"]
