"""What an SMTP server needs from the configuration, gathered once per Config.

Owns the bridge from a translated `Config` (or, for tests, plain values) to the session's
`SessionSettings`, the HELP text read from the cf's `HelpFile`, and the greeting and
`Received:` texts expanded from the cf's macros. The socket daemons (`smtpd.py`) and
`-bs` (`serve_stdio`) both build their sessions through here.
"""

from __future__ import annotations

import pwd
import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from pysendmail.config.aliases import AliasFile, TargetKind, parse_include_list
from pysendmail.config.macros import expand
from pysendmail.errors import MailError, UserUnknown
from pysendmail.policy import OK, PERM, TEMP, error_from_text, split_address
from pysendmail.protocol.smtp import VerifyResult


def load_help_topics(
    path: str | Path | None, macros: Mapping[str, str]
) -> dict[str, tuple[str, ...]] | None:
    """The helpfile as topic -> lines; None when there is no file (HELP not implemented).

    Lines are `topic<TAB>text`; `#` lines are comments, and `#vers 2` (or later) turns on
    macro expansion in the text, as sendmail does.
    """
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    version = 0
    topics: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            words = line[1:].split()
            if len(words) == 2 and words[0] == "vers" and words[1].isdigit():
                version = int(words[1])
            continue
        topic, tab, rest = line.partition("\t")
        if not tab:
            topic, rest = line, ""
        if version >= 2:
            rest = expand(rest, macros)
        topics.setdefault(topic.lower(), []).append(rest)
    return {topic: tuple(lines) for topic, lines in topics.items()}


# ---------------------------------------------------------------- local recipients


class LocalRecipients:
    """A RecipientChecker from the aliases file, the user database and the map errors.

    Local users are those with an alias or an account (`user_exists`, pwd by default);
    a mailertable or virtusertable `error:` entry refuses its addresses with its own text.
    """

    def __init__(
        self,
        hostname: str,
        local_domains: frozenset[str],
        aliases: AliasFile | None = None,
        lookup_mailertable: Callable[[str], str | None] | None = None,
        lookup_virtuser: Callable[[str], str | None] | None = None,
        user_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self.hostname = hostname
        self.local_domains = local_domains
        self.aliases = aliases
        self.lookup_mailertable = lookup_mailertable
        self.lookup_virtuser = lookup_virtuser
        self.user_exists = user_exists or _system_user_exists

    def _local_part(self, address: str) -> str | None:
        local, domain = split_address(address)
        if domain is None or domain.lower().rstrip(".") in self.local_domains:
            return local
        return None

    def _map_error(self, address: str) -> MailError | None:
        local, domain = split_address(address)
        if domain is None:
            return None
        domain = domain.lower().rstrip(".")
        if self.lookup_virtuser is not None:
            value = self.lookup_virtuser(f"{local}@{domain}") or self.lookup_virtuser(f"@{domain}")
            if value and value.lower().startswith("error:"):
                return _map_error_value(value)
        if self.lookup_mailertable is not None:
            labels = domain.split(".")
            keys = [domain] + ["." + ".".join(labels[i:]) for i in range(1, len(labels))]
            for key in keys:
                value = self.lookup_mailertable(key)
                if value:
                    if value.lower().startswith("error:"):
                        return _map_error_value(value)
                    break
        return None

    def _exists(self, user: str) -> bool:
        if self.aliases is not None and self.aliases.lookup(user) is not None:
            return True
        return self.user_exists(user.lower())

    def check_recipient(self, address: str) -> None:
        error = self._map_error(address)
        if error is not None:
            raise error
        user = self._local_part(address)
        if user is not None and not self._exists(user):
            raise UserUnknown("User unknown")

    def verify(self, address: str) -> VerifyResult:
        error = self._map_error(address)
        if error is not None:
            raise error
        user = self._local_part(address)
        if user is None:
            return VerifyResult(address, local=False)
        if not self._exists(user):
            raise UserUnknown("User unknown")
        return VerifyResult(f"{user}@{self.hostname}")

    def expand(self, address: str) -> list[VerifyResult]:
        user = self._local_part(address)
        entry = self.aliases.lookup(user) if (user is not None and self.aliases) else None
        if entry is None:
            return [self.verify(address)]
        results: list[VerifyResult] = []
        # sendmail lists an alias's own targets last-first, an :include: file's in order.
        for target in reversed(entry.targets):
            if target.kind is TargetKind.INCLUDE:
                try:
                    text = Path(target.value).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    continue
                results.extend(
                    self._expanded(t.value) for t in parse_include_list(text, target.value)
                )
            elif target.kind is TargetKind.ADDRESS:
                results.append(self._expanded(target.value))
            else:
                results.append(VerifyResult(target.text, local=True))
        return results

    def _expanded(self, address: str) -> VerifyResult:
        user = self._local_part(address)
        if user is None:
            return VerifyResult(address, local=False)
        return VerifyResult(f"{user}@{self.hostname}")


def _map_error_value(value: str) -> MailError:
    """`error:5.1.2:550 text` (mailertable) or `error:nouser 550 5.1.1 text` (virtusertable)."""
    rest = value.split(":", 1)[1]
    match = re.match(r"(\d\.\d{1,3}\.\d{1,3}):(.*)", rest, re.DOTALL)
    if match:
        return error_from_text(match.group(2), match.group(1))
    words = rest.split(None, 1)
    if words and not words[0][:1].isdigit():
        rest = words[1] if len(words) > 1 else ""
    match = re.match(r"([245]\d\d)\s+(\d\.\d{1,3}\.\d{1,3})\s+(.*)", rest, re.DOTALL)
    if match:
        return error_from_text(f"{match.group(1)} {match.group(3)}", match.group(2))
    return error_from_text(rest)


def _system_user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


class SystemHosts:
    """A HostLookup through the system resolver (used when no hosts-only switch is set)."""

    def resolve(self, domain: str) -> str:
        try:
            socket.getaddrinfo(domain.rstrip("."), None)
        except socket.gaierror as error:
            if error.errno in (socket.EAI_AGAIN, getattr(socket, "EAI_SYSTEM", -11)):
                return TEMP
            return PERM
        return OK

    def client_name(self, addr: str) -> tuple[str, str]:
        try:
            name = socket.gethostbyaddr(addr)[0]
        except (socket.herror, OSError):
            return f"[{addr}]", "FAIL"
        try:
            addrs = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except socket.gaierror:
            return name, "FORGED"
        return (name, "OK") if addr in addrs else (name, "FORGED")
