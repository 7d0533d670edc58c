"""Host names through DNS for the rules, where the service switch lists `dns` for hosts.

`DnsHosts(settings)` answers what sendmail asks its name server from the rules and -bt:
`canonical_name("mail")` for `$[ mail $]` and `/canon` (getcanonname(): A, AAAA, then MX
records, a CNAME followed to the canonical name, a name without dots tried in the local
domain first), and `mx_hosts("example.org")` for `/mx` (getmxrr(): the MX hosts by
preference, the host itself when it has none, -1 when the name does not exist or DNS
fails, NULL_MX for a null MX). The resolver is configured as remote delivery's
(`pysendmail.dns.ResolverSettings`: ResolverNameServers, ResolverPort, the resolver
timeouts). Temporary failures are `EX_TEMPFAIL`, never exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dns.exception
import dns.name
import dns.resolver

from pysendmail.rules import maps as mp

if TYPE_CHECKING:
    from pysendmail.dns import ResolverSettings

NULL_MX = mp.NULL_MX


def dnspython_resolver(settings: ResolverSettings) -> dns.resolver.Resolver:
    """A dnspython resolver set up as pysendmail.dns.Resolver sets up remote delivery's."""
    if settings.nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = list(settings.nameservers)
    else:
        resolver = dns.resolver.Resolver()
    resolver.port = settings.port
    resolver.lifetime = settings.timeout
    resolver.timeout = min(settings.timeout, 5.0)
    return resolver


class DnsHosts:
    """getcanonname() and getmxrr() over dnspython."""

    def __init__(self, settings: ResolverSettings, domain: Callable[[], str | None]) -> None:
        self.resolver = dnspython_resolver(settings)
        self.domain = domain

    def _candidates(self, name: str) -> list[str]:
        if name.endswith("."):
            return [name]
        local = self.domain()
        if "." not in name and local:
            return [f"{name}.{local}.", f"{name}."]
        return [f"{name}.", *([f"{name}.{local}."] if local else [])]

    def canonical_name(self, name: str) -> tuple[str | None, int]:
        """The canonical name of a host, or (None, EX_NOTFOUND / EX_TEMPFAIL)."""
        status = mp.EX_NOTFOUND
        for candidate in self._candidates(name):
            for rdtype in ("A", "AAAA", "MX"):
                try:
                    answer = self.resolver.resolve(
                        candidate, rdtype, search=False, raise_on_no_answer=False
                    )
                except dns.resolver.NXDOMAIN:
                    break
                except (dns.exception.DNSException, ValueError):
                    status = mp.EX_TEMPFAIL
                    break
                if answer.rrset is not None:
                    return answer.canonical_name.to_text(omit_final_dot=True), mp.EX_OK
        return None, status

    def mx_hosts(self, name: str) -> list[str] | int:
        """The MX hosts of `name`, best first; -1 or NULL_MX as getmxrr() returns them."""
        try:
            answer = self.resolver.resolve(
                name.rstrip(".") + ".", "MX", search=False, raise_on_no_answer=False
            )
        except (dns.exception.DNSException, ValueError):
            return -1
        if answer.rrset is None:
            return [name]  # no MX records: the host itself
        if any(r.exchange == dns.name.root for r in answer):
            return NULL_MX
        records = sorted(
            (int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in answer
        )
        return [exchange for _, exchange in records]
