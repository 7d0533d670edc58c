"""-bt's `/mx` and `$[ $]` canonification through dnspython, when the cf's
ServiceSwitchFile lists `dns` for hosts; the resolver is set up as remote delivery's
(`ResolverNameServers`, `ResolverPort`), here a real DNS server on 127.0.0.1. With
`hosts files` no question is asked. The CLI (`sendmail -C cf -bt`) runs as a child."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import command, subprocess_env
from tests.integration.dnsserver import DnsServer

ZONES = {
    "example.test": {"MX": [(20, "mx2.example.test"), (10, "mx1.example.test")]},
    "mx1.example.test": {"A": ["127.0.0.1"]},
    "mx2.example.test": {"A": ["127.0.0.2"]},
    "aonly.example.test": {"A": ["127.0.0.3"]},
    "nullmx.test": {"MX": [(0, ".")]},
    "dnsonly.example.com": {"A": ["127.0.0.4"]},
    "broken.test": "SERVFAIL",
}


@pytest.fixture(scope="module")
def dns_server():
    with DnsServer(ZONES) as server:
        yield server


def office_cf(oracle_dir: Path, tmp_path: Path, port: int, switch: str) -> Path:
    switch_file = tmp_path / "service.switch"
    switch_file.write_text(f"hosts\t{switch}\naliases\tfiles\n")
    text = (oracle_dir / "configs/office/office.cf").read_text()
    text = text.replace(
        f"O ServiceSwitchFile={oracle_dir}/configs/office/service.switch",
        f"O ServiceSwitchFile={switch_file}\n"
        f"O ResolverNameServers=127.0.0.1\nO ResolverPort={port}",
    )
    assert str(switch_file) in text
    cf = tmp_path / "office_dns.cf"
    cf.write_text(text)
    return cf


def bt(cf: Path, *lines: str) -> str:
    done = subprocess.run(
        [*command("sendmail"), "-C", str(cf), "-bt"],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_mx_lists_the_mail_hosts_by_preference(oracle_dir, tmp_path, dns_server):
    cf = office_cf(oracle_dir, tmp_path, dns_server.port, "dns files")
    out = bt(cf, "/mx example.test", "/mx aonly.example.test", "/mx nosuch.test")
    assert (
        "getmxrr(example.test) returns 2 value(s):\n\tmx1.example.test\n\tmx2.example.test\n" in out
    )
    # no MX records: the host itself; no such name: -1, as getmxrr() returns them
    assert "getmxrr(aonly.example.test) returns 1 value(s):\n\taonly.example.test\n" in out
    assert "getmxrr(nosuch.test) returns -1 value(s):\n" in out
    assert ("example.test", "MX") in dns_server.queries


def test_mx_of_a_null_mx_domain(oracle_dir, tmp_path, dns_server):
    cf = office_cf(oracle_dir, tmp_path, dns_server.port, "dns files")
    assert "getmxrr(nullmx.test) returns null MX (See RFC7505)\n" in bt(cf, "/mx nullmx.test")


def test_canonification_asks_dns_for_a_name_only_it_knows(oracle_dir, tmp_path, dns_server):
    cf = office_cf(oracle_dir, tmp_path, dns_server.port, "dns files")
    out = bt(cf, "/canon dnsonly", "3,0 bob@dnsonly", "/canon broken.test")
    # a short name is tried in the local domain ($m = example.com) first
    assert "getcanonname(dnsonly) returns dnsonly.example.com\n" in out
    assert "$# esmtp $@ dnsonly . example . com . $: bob < @ dnsonly . example . com . >" in out
    # SERVFAIL: the name stays as it was
    assert "getcanonname(broken.test) returns broken.test\n" in out
    assert ("dnsonly.example.com", "A") in dns_server.queries


def test_hosts_files_only_asks_no_dns(oracle_dir, tmp_path, dns_server):
    cf = office_cf(oracle_dir, tmp_path, dns_server.port, "files")
    asked = len(dns_server.queries)
    out = bt(cf, "/canon dnsonly", "/mx example.test", "/canon mail")
    assert "getcanonname(dnsonly) returns dnsonly\n" in out
    assert "getmxrr(example.test) returns 0 value(s):\n" in out
    assert "getcanonname(mail) returns mail.example.com\n" in out  # the hosts file
    assert len(dns_server.queries) == asked
