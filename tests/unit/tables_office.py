"""The office fixture's Config for the routing tests, and users alice/bob/mallory.

The users come from an injected lookup (not the system's passwd), so the tests need no
system accounts: alice 1001, bob 1002, mallory 1003, as in the records' environment.
"""

from __future__ import annotations

from pathlib import Path

from pysendmail.config.model import Config
from pysendmail.routing import LocalUser

HOSTNAME = "mail.example.com"


def fixture_users(home: Path | None = None) -> dict[str, LocalUser]:
    base = home or Path("/nonexistent")
    return {
        name: LocalUser(name, uid, uid, str(base / name))
        for name, uid in (("alice", 1001), ("bob", 1002), ("mallory", 1003), ("root", 0))
    }


def fixture_config(oracle_dir: Path, cf_path: str = "office/office.cf") -> Config:
    """Translate one of the fixture cfs with the records' host name."""
    from pysendmail.config.translate import translate

    return translate(oracle_dir / "configs" / cf_path, hostname=HOSTNAME)


def minimal_config(**fields: object) -> Config:
    """A Config holding only what a test names (the translator is tested on its own)."""
    from pysendmail.config.model import CfFile

    cf = CfFile("test.cf", (), (), (), (), (), (), (), (), (), ())
    values: dict[str, object] = {
        "cf_path": "test.cf",
        "cf": cf,
        "macros": {},
        "classes": {},
        "options": {},
        "mailers": {},
        "maps": {},
        "rulesets": {},
        "headers": (),
        "daemons": (),
        "hostname": HOSTNAME,
        "local_host_names": frozenset({HOSTNAME, "example.com", "localhost"}),
    }
    values.update(fields)
    return Config(**values)  # type: ignore[arg-type]
