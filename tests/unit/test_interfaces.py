"""pysendmail.interfaces: the machine's addresses, which sendmail puts in class w."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from pysendmail import interfaces
from pysendmail.routing import Router
from tests.unit.tables_office import fixture_config, fixture_users


def test_the_loopback_addresses_are_always_ours():
    found = interfaces.interface_addresses()
    assert {"127.0.0.1", "::1"} <= found
    for address in found:
        ipaddress.ip_address(address)  # each one is an address, as text


def test_an_interface_address_found_by_the_kernel_is_listed():
    # An independent view of one address: the source address the kernel picks for a
    # datagram socket "connected" to a loopback peer (no packet is sent).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("127.0.0.2", 9))
        assert probe.getsockname()[0] in interfaces.interface_addresses()


@pytest.mark.parametrize(
    ("literal", "ours"),
    [
        ("[192.0.2.55]", True),
        ("[IPv6:2001:DB8:0::7]", True),
        ("[ipv6:2001:db8::7]", True),
        ("[192.0.2.56]", False),
        ("[IPv6:2001:db8::8]", False),
        ("[not an address]", False),
        ("[]", False),
    ],
)
def test_literals_are_compared_as_addresses(monkeypatch, literal, ours):
    monkeypatch.setattr(
        interfaces, "interface_addresses", lambda: frozenset({"192.0.2.55", "2001:db8::7"})
    )
    assert interfaces.is_own_literal(literal) is ours


def test_the_router_delivers_mail_to_an_own_address_literal_locally(oracle_dir, monkeypatch):
    monkeypatch.setattr(
        interfaces, "interface_addresses", lambda: frozenset({"127.0.0.1", "192.0.2.55"})
    )
    router = Router(fixture_config(oracle_dir, "debian/debian.cf"), users=fixture_users().get)
    assert router.config.routing_rules == "stock"  # the tables route: is_local_domain()
    assert router.resolve("bob@[192.0.2.55]").mailer == "local"
    assert router.resolve("bob@[192.0.2.56]").mailer != "local"
