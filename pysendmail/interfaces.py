"""The machine's own interface addresses, which sendmail adds to class w at start-up
(load_if_names()): mail to `user@[192.0.2.2]` is local when 192.0.2.2 is one of ours.

IPv4 addresses come from the SIOCGIFADDR ioctl on each interface, IPv6 ones from
/proc/net/if_inet6 (Linux). Host names are not looked up: sendmail also adds the names
the addresses resolve to, but a lookup here could leave the machine, and class w already
holds the host's names. Read once per process, when a domain literal is first routed.
"""

from __future__ import annotations

import functools

SIOCGIFADDR = 0x8915  # linux/sockios.h
IF_INET6 = "/proc/net/if_inet6"


@functools.cache
def interface_addresses() -> frozenset[str]:
    """Every address of every interface, as text (`127.0.0.1`, `fd00::2`), lower case."""
    return frozenset(_ipv4_addresses() | _ipv6_addresses() | {"127.0.0.1", "::1"})


def _ipv4_addresses() -> set[str]:
    import fcntl
    import socket
    import struct

    found: set[str] = set()
    try:
        names = [name for _index, name in socket.if_nameindex()]
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return found
    with probe:
        for name in names:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            found.add(socket.inet_ntoa(answer[20:24]))
    return found


def _ipv6_addresses() -> set[str]:
    import ipaddress

    found: set[str] = set()
    try:
        with open(IF_INET6, encoding="ascii") as table:
            lines = table.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if fields and len(fields[0]) == 32:
            try:
                found.add(str(ipaddress.IPv6Address(int(fields[0], 16))))
            except ValueError:
                continue
    return found


def is_own_literal(literal: str) -> bool:
    """Whether a domain literal (`[192.0.2.2]`, `[IPv6:fd00::2]`) is one of our addresses."""
    inner = literal.strip().lower().removeprefix("[").removesuffix("]")
    inner = inner.removeprefix("ipv6:")
    if ":" in inner:
        import ipaddress

        try:
            inner = str(ipaddress.IPv6Address(inner))
        except ValueError:
            return False
    return inner in interface_addresses()
