"""A real DNS server on 127.0.0.1 for tests, answering from a small table with dnspython.

    zones = {
        "example.test": {"MX": [(10, "mx1.example.test"), (20, "mx2.example.test")]},
        "mx1.example.test": {"A": ["127.0.0.1"]},
        "nullmx.test": {"MX": [(0, ".")]},
        "broken.test": "SERVFAIL",      # every question about it gets SERVFAIL
        "slow.test": "DROP",            # questions about it get no answer at all
    }
    with DnsServer(zones) as server:
        resolver_settings = ResolverSettings(nameservers=("127.0.0.1",), port=server.port)

Names not in the table get NXDOMAIN; a known name without the asked type gets an empty
NOERROR answer (NoAnswer). It serves UDP and TCP on the same OS-chosen port, in a
thread, and counts the questions it was asked (`server.queries`).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

ZoneTable = Mapping[str, Any]


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class DnsServer:
    def __init__(self, zones: ZoneTable, ttl: int = 60) -> None:
        self.zones = {_norm(k): v for k, v in zones.items()}
        self.ttl = ttl
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.port = 0
        self._udp: socketserver.UDPServer | None = None
        self._tcp: socketserver.TCPServer | None = None
        self._threads: list[threading.Thread] = []

    # -------------------------------------------------------------- answers

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        qname = _norm(question.name.to_text())
        qtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((qname, qtype))
        entry = self.zones.get(qname)
        if entry == "DROP":
            return None
        if entry == "SERVFAIL":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if entry is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        for value in entry.get(qtype, ()):
            response.answer.append(self._rrset(question.name, qtype, value))
        return response.to_wire()

    def _rrset(self, name: dns.name.Name, qtype: str, value: object) -> dns.rrset.RRset:
        if qtype == "MX":
            preference, exchange = value  # type: ignore[misc]
            text = f"{preference} {exchange if exchange == '.' else exchange.rstrip('.') + '.'}"
        else:
            text = str(value)
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(qtype), text)
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdata.rdtype)
        rrset.add(rdata, self.ttl)
        return rrset

    # -------------------------------------------------------------- sockets

    def start(self) -> DnsServer:
        server = self

        class UdpHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TcpHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    header = _recv_exact(sock, 2)
                    data = _recv_exact(sock, int.from_bytes(header, "big"))
                except OSError:
                    return
                reply = server.answer(data)
                if reply is not None:
                    sock.sendall(len(reply).to_bytes(2, "big") + reply)

        # bind TCP first on an OS-chosen port, then UDP on the same number (retry if taken)
        for _ in range(20):
            tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), TcpHandler)
            port = tcp.server_address[1]
            try:
                udp = socketserver.ThreadingUDPServer(("127.0.0.1", port), UdpHandler)
            except OSError:
                tcp.server_close()
                continue
            break
        else:
            raise RuntimeError("no free port for the test DNS server")
        tcp.daemon_threads = udp.daemon_threads = True
        self._tcp, self._udp, self.port = tcp, udp, port
        for srv in (udp, tcp):
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
            thread.daemon = True
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for srv in (self._udp, self._tcp):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def nameservers(self) -> Sequence[str]:
        return ("127.0.0.1",)


def _recv_exact(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise OSError("short read")
        data += chunk
    return data
