"""Host lookups for mail: MX records and host addresses, as sendmail does them.

- Sources follow the cf's `ServiceSwitchFile` (`hosts files dns`) and `HostsFile`.
  Without `dns` in the hosts line no MX lookup happens: a domain is then its own mail
  host if the hosts file knows it, else it is unknown (sendmail's "Host unknown"). A
  missing switch file means sendmail's default, `hosts dns files`.
- MX: hosts in preference order, shuffled among equal preferences; no MX record means
  the domain itself (implicit MX, RFC 5321 5.1) if it has an A or AAAA record; a null MX
  (RFC 7505: one record `0 .`) means the domain accepts no mail. MX hosts that are this
  host, and every host not more preferred than it, are dropped (sendmail's "MX list
  points back to me").
- Errors are typed: `HostNotFound` (NXDOMAIN, no address: permanent, 5.1.2),
  `NullMx` (permanent, 5.1.10), `MxLoopsBack` (permanent, 5.3.5), `DnsTempFailure`
  (SERVFAIL, timeout, no server reachable: temporary, 4.4.3).
- The name servers and port come from `ResolverSettings` (the `ResolverNameServers`
  option, or an override): tests point it at a DNS server on 127.0.0.1.

Used by remote delivery and by the SMTP daemon's sender-domain checks; no sockets other
than the resolver's own.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import dns.exception
import dns.rdatatype
import dns.resolver

from pysendmail.config.model import Config
from pysendmail.errors import MailError, TempFailure
from pysendmail.record import field, record
from pysendmail.sysexits import ExitCode

DEFAULT_SERVICE_SWITCH = "/etc/mail/service.switch"
DEFAULT_HOSTS_FILE = "/etc/hosts"
DEFAULT_HOSTS_SOURCES = ("dns", "files")  # sendmail's choice when the switch file is missing


class DnsError(MailError):
    """A lookup that says the destination cannot be reached (permanent)."""

    exit_code = ExitCode.NOHOST
    reply_code = 550
    status = "5.1.2"


class HostNotFound(DnsError):
    """No such domain, or a domain with neither MX nor address records."""


class NullMx(DnsError):
    """RFC 7505: the domain publishes that it accepts no mail."""

    exit_code = ExitCode.UNAVAILABLE
    reply_code = 556
    status = "5.1.10"


class MxLoopsBack(DnsError):
    """The best MX host is this host: delivering there would loop."""

    exit_code = ExitCode.CONFIG
    reply_code = 554
    status = "5.3.5"


class DnsTempFailure(TempFailure):
    """SERVFAIL, a timeout or no reachable server: try again later."""

    exit_code = ExitCode.TEMPFAIL
    reply_code = 451
    status = "4.4.3"


@record(frozen=True)
class MxHost:
    name: str  # without the trailing dot
    preference: int
    implicit: bool = False  # the domain itself, for lack of MX records


# ---------------------------------------------------------------- settings


def read_service_switch(path: str | Path) -> dict[str, tuple[str, ...]]:
    """sendmail's service.switch: `service source source ...`, `#` comments."""
    services: dict[str, tuple[str, ...]] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 1:
            services[words[0].lower()] = tuple(w.lower() for w in words[1:])
    return services


def read_hosts_file(path: str | Path) -> dict[str, tuple[str, ...]]:
    """name (lower case, no trailing dot) → addresses, in file order."""
    table: dict[str, list[str]] = {}
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        address = words[0]
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        for name in words[1:]:
            addresses = table.setdefault(name.lower().rstrip("."), [])
            if address not in addresses:
                addresses.append(address)
    return {name: tuple(addrs) for name, addrs in table.items()}


@record(frozen=True)
class ResolverSettings:
    nameservers: tuple[str, ...] = ()  # empty: the system's /etc/resolv.conf
    port: int = 53
    timeout: float = 10.0  # the whole lookup's lifetime, in seconds
    host_sources: tuple[str, ...] = DEFAULT_HOSTS_SOURCES
    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the HostsFile's table
    local_names: frozenset[str] = frozenset()  # this host's names (class w), for MX loops

    @property
    def uses_dns(self) -> bool:
        return "dns" in self.host_sources

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        nameservers: Sequence[str] | None = None,
        port: int | None = None,
        timeout: float | None = None,
    ) -> ResolverSettings:
        switch_path = str(config.option("ServiceSwitchFile") or DEFAULT_SERVICE_SWITCH)
        try:
            sources = read_service_switch(switch_path).get("hosts", DEFAULT_HOSTS_SOURCES)
        except OSError:
            sources = DEFAULT_HOSTS_SOURCES
        hosts = read_hosts_file(str(config.option("HostsFile") or DEFAULT_HOSTS_FILE))
        configured = config.option("ResolverNameServers")
        servers = tuple(nameservers) if nameservers is not None else _split_servers(configured)
        retrans = config.option("Timeout.resolver.retrans", 5)
        retries = config.option("Timeout.resolver.retry", 4)
        lifetime = float(retrans) * max(1, int(retries)) if timeout is None else timeout  # type: ignore[arg-type]
        return cls(
            nameservers=servers,
            port=port if port is not None else int(config.option("ResolverPort", 53) or 53),  # type: ignore[arg-type]
            timeout=lifetime,
            host_sources=tuple(sources),
            hosts=hosts,
            local_names=frozenset(n.lower().rstrip(".") for n in config.local_host_names)
            | {config.hostname.lower().rstrip(".")},
        )


def _split_servers(value: object) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    return tuple(str(v) for v in value)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the resolver


def _bare(name: str) -> str:
    return name.strip().lower().rstrip(".")


class Resolver:
    """MX and address lookups with one configuration; safe to share between threads
    (dnspython's Resolver keeps no per-query state)."""

    def __init__(self, settings: ResolverSettings | None = None, rng: random.Random | None = None):
        self.settings = settings or ResolverSettings()
        self.rng = rng or random.Random()
        self._dns: dns.resolver.Resolver | None = None
        if self.settings.uses_dns:
            if self.settings.nameservers:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = list(self.settings.nameservers)
            else:
                resolver = dns.resolver.Resolver()
            resolver.port = self.settings.port
            resolver.lifetime = self.settings.timeout
            resolver.timeout = min(self.settings.timeout, 5.0)
            self._dns = resolver

    # -------------------------------------------------------------- MX

    def resolve_mx(self, domain: str) -> list[MxHost]:
        """Mail hosts of `domain`, best first. Raises HostNotFound, NullMx, MxLoopsBack,
        DnsTempFailure."""
        name = _bare(domain)
        if not name:
            raise HostNotFound("Host unknown (empty domain)")
        if self._dns is None:
            # no DNS in the switch: sendmail does no MX lookup, the domain is the host
            if name in self.settings.hosts:
                return [MxHost(name, 0, implicit=True)]
            raise HostNotFound(f"Host unknown (Name server: {name}: host not found)")
        try:
            answer = self._dns.resolve(name, "MX", search=False)
        except dns.resolver.NoAnswer:
            return [self._implicit_mx(name)]
        except dns.resolver.NXDOMAIN:
            if "files" in self.settings.host_sources and name in self.settings.hosts:
                return [MxHost(name, 0, implicit=True)]
            raise HostNotFound(f"Host unknown (Name server: {name}: host not found)") from None
        except (dns.resolver.NoNameservers, dns.exception.Timeout) as err:
            raise DnsTempFailure(f"{name}: lookup failed ({type(err).__name__})") from err
        except dns.exception.DNSException as err:
            raise DnsTempFailure(f"{name}: lookup failed ({err})") from err
        records = [(int(r.preference), _bare(r.exchange.to_text())) for r in answer]
        if any(exchange == "" for _, exchange in records):
            real = [(p, e) for p, e in records if e]
            if not real:
                raise NullMx(f"{name}: domain does not accept mail (null MX)")
            records = real
        return self._order(name, records)

    def _order(self, domain: str, records: Iterable[tuple[int, str]]) -> list[MxHost]:
        by_preference: dict[int, list[str]] = {}
        seen: set[str] = set()
        for preference, exchange in sorted(records):
            if exchange in seen:
                continue
            seen.add(exchange)
            by_preference.setdefault(preference, []).append(exchange)
        hosts: list[MxHost] = []
        for preference in sorted(by_preference):
            names = by_preference[preference]
            self.rng.shuffle(names)
            hosts.extend(MxHost(n, preference) for n in names)
        local = self.settings.local_names
        for index, host in enumerate(hosts):
            if host.name in local:
                hosts = [h for h in hosts[:index] if h.preference < host.preference]
                if not hosts:
                    raise MxLoopsBack(f"MX list for {domain} points back to {host.name}")
                break
        return hosts

    def _implicit_mx(self, name: str) -> MxHost:
        if self.host_addresses(name):
            return MxHost(name, 0, implicit=True)
        raise HostNotFound(f"Host unknown (Name server: {name}: no data known)")

    # -------------------------------------------------------------- addresses

    def host_addresses(self, name: str) -> list[str]:
        """IPv4 then IPv6 addresses of `name` from the sources of the hosts switch.
        An address literal (`1.2.3.4`, `[1.2.3.4]`, `[IPv6:::1]`) is returned as is.
        Raises HostNotFound when no source knows the name, DnsTempFailure when DNS
        could not answer and no other source knew it."""
        literal = address_literal(name)
        if literal is not None:
            return [literal]
        host = _bare(name)
        temp_error: DnsTempFailure | None = None
        for source in self.settings.host_sources:
            if source == "files":
                found = list(self.settings.hosts.get(host, ()))
            elif source == "dns" and self._dns is not None:
                try:
                    found = self._dns_addresses(host)
                except DnsTempFailure as err:
                    temp_error = err
                    continue
            else:
                continue
            if found:
                return found
        if temp_error is not None:
            raise temp_error
        raise HostNotFound(f"Host unknown (Name server: {host}: host not found)")

    def _dns_addresses(self, host: str) -> list[str]:
        assert self._dns is not None
        found: list[str] = []
        failures = 0
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._dns.resolve(host, rdtype, search=False)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException:
                failures += 1
                continue
            found.extend(r.address for r in answer)
        if not found and failures:
            raise DnsTempFailure(f"{host}: address lookup failed")
        return found


def address_literal(name: str) -> str | None:
    """`[192.0.2.1]` / `192.0.2.1` / `[IPv6:2001:db8::1]` → the address, else None."""
    text = name.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if text.lower().startswith("ipv6:"):
            text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


_default: Resolver | None = None


def default_resolver() -> Resolver:
    global _default
    if _default is None:
        _default = Resolver()
    return _default


def resolve_mx(domain: str, resolver: Resolver | None = None) -> list[MxHost]:
    return (resolver or default_resolver()).resolve_mx(domain)


def host_addresses(name: str, resolver: Resolver | None = None) -> list[str]:
    return (resolver or default_resolver()).host_addresses(name)
