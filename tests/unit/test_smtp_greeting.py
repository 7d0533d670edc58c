"""The daemon's greeting text (SmtpService.greeting): made once a second for every
client when it names no client macro, and for each client when it does."""

from __future__ import annotations

from pysendmail.daemons.server import SmtpService
from pysendmail.protocol.smtp import SessionSettings

NOW = 1_795_700_000.0  # a whole second


def _service(template: str, macros: dict[str, str] | None = None) -> SmtpService:
    return SmtpService(
        settings=SessionSettings(hostname="mail.example.com"),
        policy=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        hosts=None,  # type: ignore[arg-type]
        macros=macros or {"v": "8.17.1.9", "Z": "8.17.1.9"},
        greeting_template=template,
    )


def _client(addr: str) -> dict[str, str]:
    return {
        "client_addr": addr,
        "client_name": f"host-{addr}",
        "client_resolve": "OK",
        "_": f"host-{addr} [{addr}]",
    }


def test_a_greeting_without_client_macros_changes_with_the_second_only():
    service = _service("$j ESMTP $v/$Z; $b")
    first = service.greeting(_client("192.0.2.1"), NOW)
    assert first.startswith("mail.example.com ESMTP 8.17.1.9/8.17.1.9; ")
    assert service.greeting(_client("192.0.2.2"), NOW + 0.5) == first
    later = service.greeting(_client("192.0.2.2"), NOW + 1)
    assert later != first and later.startswith("mail.example.com ESMTP")


def test_a_greeting_naming_a_client_macro_is_made_for_each_client():
    service = _service("$j ESMTP hello ${client_addr}; $b")
    assert "hello 192.0.2.1;" in service.greeting(_client("192.0.2.1"), NOW)
    assert "hello 192.0.2.2;" in service.greeting(_client("192.0.2.2"), NOW)


def test_a_client_macro_named_through_a_cf_macro_counts_too():
    service = _service("$j ESMTP $w; $b", {"w": "from $_"})
    assert "from host-192.0.2.1 [192.0.2.1];" in service.greeting(_client("192.0.2.1"), NOW)
    assert "from host-192.0.2.2 [192.0.2.2];" in service.greeting(_client("192.0.2.2"), NOW)
