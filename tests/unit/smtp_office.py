"""The fixture `office` configuration as the SMTP session and policy see it, for tests.

The cf is translated by config's `translate`, recipients are answered by routing's
`Router` and host names by dns.py's resolver (office's service.switch says `hosts files`,
so only its hosts file is read). The one thing replaced is the user database: the users
the fixture README says existed when the records were made (alice, bob, mallory and
the usual system users), instead of this machine's passwd.
"""

from __future__ import annotations

from pathlib import Path

from pysendmail.config.model import Config
from pysendmail.config.translate import translate
from pysendmail.daemons.server import (
    ResolverHosts,
    RouterRecipients,
    policy_tables,
    session_settings,
)
from pysendmail.dns import Resolver, ResolverSettings
from pysendmail.policy import StockPolicy
from pysendmail.protocol.smtp import ClientInfo, SessionSettings
from pysendmail.routing import LocalUser, Router

HOSTNAME = "mail.example.com"
USERS = {
    name: LocalUser(name, uid, uid, f"/home/{name}")
    for name, uid in (("alice", 1001), ("bob", 1002), ("mallory", 1003))
}
USERS.update(
    {
        name: LocalUser(name, uid, uid, "/")
        for name, uid in (("root", 0), ("daemon", 1), ("mail", 8), ("nobody", 65534))
    }
)

_CONFIGS: dict[Path, Config] = {}


def office_config(oracle_dir: Path) -> Config:
    cf = oracle_dir / "configs" / "office" / "office.cf"
    if cf not in _CONFIGS:
        _CONFIGS[cf] = translate(cf, hostname=HOSTNAME)
    return _CONFIGS[cf]


def office_hosts(oracle_dir: Path) -> ResolverHosts:
    config = office_config(oracle_dir)
    return ResolverHosts(Resolver(ResolverSettings.from_config(config)))


def office_policy(oracle_dir: Path) -> StockPolicy:
    config = office_config(oracle_dir)
    router = Router(config, users=USERS.get)
    router.prepare_rules()  # as the daemon does: office.cf's LOCAL_RULE_3 routes by rules
    recipients = RouterRecipients(router, config.hostname)
    return StockPolicy(policy_tables(config), recipients, office_hosts(oracle_dir))


def office_settings(oracle_dir: Path, **overrides: object) -> SessionSettings:
    """The office cf's session settings; CHUNKING and SMTPUTF8 off, as sendmail has neither."""
    config = office_config(oracle_dir)
    values = {
        **session_settings(config, tls=False, auth=False).__dict__,
        "greeting": f"{HOSTNAME} Sendmail 8.17.1.9; (masked)",
        "chunking": False,
        "smtputf8": False,
    }
    values.update(overrides)
    return SessionSettings(**values)  # type: ignore[arg-type]


def office_client(oracle_dir: Path, addr: str) -> ClientInfo:
    name, resolve = office_hosts(oracle_dir).client_name(addr)
    return ClientInfo(addr=addr, name=name, resolve=resolve)


__all__ = ["office_client", "office_config", "office_policy", "office_settings"]
