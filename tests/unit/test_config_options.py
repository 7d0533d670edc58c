"""The options registry: names, letters, types and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysendmail.config.cfparse import read_cf
from pysendmail.config.options import (
    KINDS,
    OPTIONS,
    OptionError,
    defaults,
    expand_compound,
    option_by_letter,
    option_spec,
    parse_duration,
    parse_value,
)


@pytest.mark.parametrize(
    ("raw", "unit", "seconds"),
    [("5d", "s", 432000), ("4h", "s", 14400), ("30m", "s", 1800), ("1h30m", "s", 5400),
     ("90", "s", 90), ("10", "m", 600), ("2", "d", 172800), ("0", "m", 0), ("", "m", 0),
     ("1w", "s", 604800), ("5S", "s", 5)],
)  # fmt: skip
def test_durations(raw: str, unit: str, seconds: int) -> None:
    assert parse_duration(raw, unit) == seconds


def test_bad_duration_is_an_option_error() -> None:
    with pytest.raises(OptionError):
        parse_duration("5 days")


def test_typed_values() -> None:
    assert parse_value("MaxMessageSize", "100000") == 100000
    assert parse_value("TempFileMode", "0640") == 0o640
    assert parse_value("Timeout.queuewarn", "4") == 4 * 3600  # bare number in hours
    assert parse_value("Timeout.queuereturn", "5") == 5 * 86400  # in days
    assert parse_value("AliasWait", "10") == 600  # in minutes
    assert parse_value("PrivacyOptions", "needmailhelo, noexpn,authwarnings") == (
        "needmailhelo",
        "noexpn",
        "authwarnings",
    )
    assert parse_value("DaemonPortOptions", "Port=25, Addr=127.0.0.1") == (
        "Port=25, Addr=127.0.0.1",
    )
    assert parse_value("SmtpGreetingMessage", " $j ready ") == "$j ready"


@pytest.mark.parametrize(
    ("raw", "value"),
    [("True", True), ("true", True), ("yes", True), ("", True), ("False", False),
     ("no", False), ("0", False)],
)  # fmt: skip
def test_booleans_follow_sendmail(raw: str, value: bool) -> None:
    assert parse_value("MeToo", raw) is value


def test_bad_values_and_unknown_names_are_option_errors() -> None:
    for name, raw in [("MaxMessageSize", "lots"), ("TempFileMode", "rw"), ("Nope", "1")]:
        with pytest.raises(OptionError):
            parse_value(name, raw)
    with pytest.raises(OptionError):
        parse_value("MaxMessageSize", "-5")


def test_names_are_case_insensitive_and_letters_map_to_names() -> None:
    assert option_spec("maxmessagesize") is OPTIONS["MaxMessageSize"]
    assert option_by_letter("Q").name == "QueueDirectory"
    assert option_by_letter("i").name == "IgnoreDots"
    assert option_by_letter("e").name == "ErrorMode"
    assert option_by_letter("d").name == "DeliveryMode"
    assert option_by_letter("Z").name == "RetryFactor"
    assert option_by_letter("\x01") is None
    # The old compound letters name options that expand_compound splits.
    assert option_by_letter("T").name == "QueueTimeout"
    assert option_by_letter("r").name == "Timeout"


def test_unknown_letters_are_none_as_sendmail_ignores_them() -> None:
    assert option_by_letter("W") is None


def test_compound_timeouts() -> None:
    assert expand_compound("QueueTimeout", "5d/4h") == [
        ("Timeout.queuereturn", "5d"),
        ("Timeout.queuewarn", "4h"),
    ]
    assert expand_compound("Timeout", "mail=10m,rcpt=1h") == [
        ("Timeout.mail", "10m"),
        ("Timeout.rcpt", "1h"),
    ]
    every = dict(expand_compound("Timeout", "7m"))
    assert every["Timeout.initial"] == every["Timeout.command"] == "7m"
    assert expand_compound("MaxMessageSize", "1") is None


def test_every_option_has_a_known_kind_a_doc_and_a_default_of_its_type() -> None:
    for spec in OPTIONS.values():
        assert spec.kind in KINDS and spec.doc
        if spec.default is not None:
            expected = {"duration": int, "size": int, "int": int, "mode": int, "bool": bool,
                        "str": str, "list": tuple, "multi": tuple}[spec.kind]  # fmt: skip
            assert isinstance(spec.default, expected), spec.name


def test_required_defaults() -> None:
    values = defaults()
    assert values["MaxHopCount"] == 25
    assert values["Timeout.queuewarn"] == 4 * 3600
    assert values["Timeout.queuereturn"] == 5 * 86400
    assert values["SmtpGreetingMessage"] == "$j Sendmail $v/$Z; $b"
    assert values["QueueDirectory"] == "/var/spool/mqueue"


def test_letters_are_unique() -> None:
    letters = [spec.letter for spec in OPTIONS.values() if spec.letter]
    assert len(letters) == len(set(letters))


@pytest.mark.parametrize(
    "name", ["office/office.cf", "nullclient/nullclient.cf", "debian/debian.cf"]
)
def test_every_option_the_fixture_cfs_set_or_mention_is_known(oracle_dir: Path, name: str) -> None:
    path = oracle_dir / "configs" / name
    cf = read_cf(path)
    for option, raw, _ in cf.options:
        assert option_spec(option) is not None, option
        parse_value(option, raw)
    mentioned = [
        line[3:].split("=")[0].strip()
        for line in path.read_text().splitlines()
        if line.startswith("#O ")
    ]
    unknown = [option for option in mentioned if option_spec(option) is None]
    assert unknown == []
