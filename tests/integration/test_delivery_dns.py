"""dns.py against a real DNS server on 127.0.0.1 (tests/integration/dnsserver.py), and
the hosts-file-only switch of the sendmail fixtures."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysendmail.dns import (
    DnsTempFailure,
    HostNotFound,
    MxHost,
    MxLoopsBack,
    NullMx,
    Resolver,
    ResolverSettings,
    address_literal,
)
from tests.delivery_support import make_config
from tests.integration.dnsserver import DnsServer

ZONES = {
    "example.test": {
        "MX": [(20, "mx-backup.example.test"), (10, "mx-a.example.test"), (10, "mx-b.example.test")]
    },
    "mx-a.example.test": {"A": ["127.0.0.1"]},
    "implicit.test": {"A": ["127.0.0.2"], "AAAA": ["::1"]},
    "nothing.test": {"TXT": ['"no mail here"']},
    "nullmx.test": {"MX": [(0, ".")]},
    "mixed-null.test": {"MX": [(0, "."), (10, "mx-a.example.test")]},
    "loop.test": {"MX": [(5, "better.test"), (10, "mail.example.com"), (20, "worse.test")]},
    "self-only.test": {"MX": [(10, "mail.example.com"), (20, "worse.test")]},
    "broken.test": "SERVFAIL",
    "slow.test": "DROP",
}


@pytest.fixture(scope="module")
def server() -> Iterator[DnsServer]:
    with DnsServer(ZONES) as running:
        yield running


def resolver(server: DnsServer, seed: int = 0, **extra: object) -> Resolver:
    settings = ResolverSettings(nameservers=("127.0.0.1",), port=server.port, timeout=2, **extra)  # type: ignore[arg-type]
    return Resolver(settings, rng=random.Random(seed))


def test_mx_in_preference_order_random_among_equals(server: DnsServer) -> None:
    orders = set()
    for seed in range(20):
        hosts = resolver(server, seed).resolve_mx("Example.Test.")
        assert [h.preference for h in hosts] == [10, 10, 20]
        assert hosts[2] == MxHost("mx-backup.example.test", 20)
        orders.add(tuple(h.name for h in hosts[:2]))
    assert orders == {
        ("mx-a.example.test", "mx-b.example.test"),
        ("mx-b.example.test", "mx-a.example.test"),
    }


def test_implicit_mx_from_address_records(server: DnsServer) -> None:
    r = resolver(server)
    assert r.resolve_mx("implicit.test") == [MxHost("implicit.test", 0, implicit=True)]
    assert r.host_addresses("implicit.test") == ["127.0.0.2", "::1"]
    with pytest.raises(HostNotFound) as caught:
        r.resolve_mx("nothing.test")
    assert not caught.value.is_temporary


def test_null_mx_is_permanent(server: DnsServer) -> None:
    with pytest.raises(NullMx) as caught:
        resolver(server).resolve_mx("nullmx.test")
    assert (caught.value.status, caught.value.is_temporary) == ("5.1.10", False)
    # a "0 ." among real records is ignored
    assert [h.name for h in resolver(server).resolve_mx("mixed-null.test")] == ["mx-a.example.test"]


def test_nxdomain_is_permanent_servfail_and_timeout_temporary(server: DnsServer) -> None:
    r = resolver(server)
    with pytest.raises(HostNotFound) as nx:
        r.resolve_mx("no-such-domain.test")
    assert (nx.value.status, nx.value.exit_code) == ("5.1.2", 68)
    assert "host not found" in nx.value.text
    with pytest.raises(DnsTempFailure) as servfail:
        r.resolve_mx("broken.test")
    assert servfail.value.is_temporary and servfail.value.status == "4.4.3"
    quick = Resolver(ResolverSettings(nameservers=("127.0.0.1",), port=server.port, timeout=0.3))
    with pytest.raises(DnsTempFailure):
        quick.resolve_mx("slow.test")
    with pytest.raises(DnsTempFailure):
        quick.host_addresses("slow.test")


def test_mx_hosts_at_or_after_this_host_are_dropped(server: DnsServer) -> None:
    r = resolver(server, local_names=frozenset({"mail.example.com"}))
    assert [h.name for h in r.resolve_mx("loop.test")] == ["better.test"]
    with pytest.raises(MxLoopsBack) as caught:
        r.resolve_mx("self-only.test")
    assert caught.value.status == "5.3.5"


def test_unknown_host_address(server: DnsServer) -> None:
    with pytest.raises(HostNotFound):
        resolver(server).host_addresses("missing.test")


def test_address_literals_need_no_lookup() -> None:
    r = Resolver(ResolverSettings(host_sources=()))
    assert r.host_addresses("[127.0.0.1]") == ["127.0.0.1"]
    assert r.host_addresses("[IPv6:::1]") == ["::1"]
    assert address_literal("mx.example.test") is None


def test_hosts_files_switch_means_no_dns_at_all(server: DnsServer, oracle_dir: Path) -> None:
    """The fixtures' `hosts files` switch: no MX lookup, names only from the hosts file
    (queue_run_q connects to partner.example.org's hosts-file address; the unknown host
    of submit_odi_unknown_host is 'Host unknown', exit 68)."""
    office = oracle_dir / "configs" / "office"
    config = make_config(
        {
            "ServiceSwitchFile": str(office / "service.switch"),
            "HostsFile": str(office / "hosts"),
            "ResolverNameServers": "127.0.0.1",
        }
    )
    settings = ResolverSettings.from_config(config, port=server.port)
    assert settings.host_sources == ("files",)
    before = len(server.queries)
    r = Resolver(settings)
    assert r.resolve_mx("partner.example.org.") == [MxHost("partner.example.org", 0, implicit=True)]
    assert r.host_addresses("partner.example.org") == ["192.0.2.42"]
    with pytest.raises(HostNotFound) as caught:
        r.resolve_mx("nodns.example.net")
    assert caught.value.exit_code == 68
    with pytest.raises(HostNotFound):
        r.resolve_mx("example.test")  # in the DNS server, but DNS is not a source
    assert len(server.queries) == before


def test_missing_switch_file_uses_dns_then_files(server: DnsServer, tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.9 only-in-hosts.test\n# comment\n")
    config = make_config(
        {
            "ServiceSwitchFile": str(tmp_path / "missing.switch"),
            "HostsFile": str(hosts),
            "ResolverNameServers": "127.0.0.1",
        },
        local_host_names=frozenset({"mail.example.com"}),
    )
    settings = ResolverSettings.from_config(config, port=server.port, timeout=2)
    assert settings.host_sources == ("dns", "files")
    assert settings.local_names == {"mail.example.com"}
    r = Resolver(settings)
    assert r.host_addresses("only-in-hosts.test") == ["127.0.0.9"]
    assert r.resolve_mx("only-in-hosts.test") == [MxHost("only-in-hosts.test", 0, implicit=True)]
    assert [h.preference for h in r.resolve_mx("example.test")] == [10, 10, 20]
