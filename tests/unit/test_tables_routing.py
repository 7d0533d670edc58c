"""Routing against sendmail 8.17's records: ruleset 0 (`/parse`), the envelope sender
(`/tryflags ES` + `/try`), and `-bv` for every bv_* case of the office config.

Users alice (1001), bob (1002), mallory (1003) come from an injected lookup
(tables_office.fixture_users), not from the system's passwd: no system users are made.
"""

from __future__ import annotations

import json
import re

import pytest

from pysendmail.errors import MailError
from pysendmail.routing import Router, verify
from pysendmail.sysexits import ExitCode
from tests.unit.tables_office import fixture_config, fixture_users

FIXTURE_CONFIGS = {
    "office": "office/office.cf",
    "office_smarthost": "office/office_smarthost.cf",
    "nullclient": "nullclient/nullclient.cf",
    "debian": "debian/debian.cf",
}

# What table routing does not do, by design: these inputs are settled by sendmail's
# address tokenizer (prescan: unbalanced brackets, spaces inside atoms, source routes
# written back, comments moved) or by hand-written rules (office.mc's LOCAL_RULE_3 maps
# old.example.com), which belong to the address parser and the rules engine.
TOKENIZER_CASES = {
    '"unterminated@example.com',
    "<<>>",
    "<<alice@example.com>>",
    "<>",
    "< >",
    "",
    "<alice@example.com",
    "<alice@example.com>>",
    "al\tice@example.com",
    "alice bob",
    "alice:bob",
    "alice@exa mple.com",
    "alice@example.com;",
    "alice@example.com>",
    "alice(nested (comment))@example.com",
    "@a.example.net:alice",
    "@a.example.net:user@b.example.net",
    "@a.example.net,@b.example.net:user@c.example.net",
    "<@a.example.net,@b.example.net:user@c.example.net>",
    "@mail.example.com:alice@mail.example.com",
    "@mail.example.com:user@remote.example.net",
    "user%mail.example.com@mail.example.com",
    "host.UUCP!user",
}
HAND_WRITTEN_RULES = {"alice@old.example.com"}
NULLCLIENT_PROGRAMS = {'"|/bin/true"'}  # the null client sends even |prog to its hub


def bt_cases(oracle_dir, config_name: str, kind: str) -> list[tuple[str, dict]]:
    cases = []
    for line in (oracle_dir / f"bt/bt_{config_name}.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["kind"] != kind or not case.get("summary"):
            continue
        typed = case["input"].rstrip("\n").split("\n")[-1]
        address = typed.split(" ", 2)[2] if kind == "try_sender" else typed.split(" ", 1)[1]
        cases.append((address, case["summary"]))
    return cases


@pytest.fixture(scope="module")
def routers(oracle_dir):
    users = fixture_users()
    return {
        name: Router(fixture_config(oracle_dir, path), users=users.get)
        for name, path in FIXTURE_CONFIGS.items()
    }


def route_or_error(router: Router, address: str) -> dict:
    try:
        route = router.resolve(address)
    except MailError as exc:
        return {"error": (exc.reply_code, exc.text, exc.status, int(exc.exit_code))}
    return {"mailer": route.mailer, "host": route.host or None, "user": route.user}


SYSEXITS_BY_NAME = {"nouser": ExitCode.NOUSER, "nohost": ExitCode.NOHOST}


def expected_outcome(resolved: dict) -> dict:
    if resolved["mailer"] != "*error*":
        return resolved
    text = resolved["user"].strip('"')
    match = re.match(r"(\d{3}) (?:(\d\.\d+\.\d+) )?(.*)", text)
    reply, status, words = int(match.group(1)), match.group(2), match.group(3)
    host = resolved["host"]
    return {"error": (reply, words, status or host, host)}


def same_outcome(got: dict, expected: dict) -> bool:
    if "error" not in expected:
        return got == expected
    if "error" not in got:
        return False
    reply, text, status, exit_code = got["error"]
    want_reply, want_text, want_status, host = expected["error"]
    # The error mailer's host is a status code (5.1.2) or a sysexits name (nouser).
    exit_ok = host not in SYSEXITS_BY_NAME or exit_code == SYSEXITS_BY_NAME[host]
    return (reply, text, status) == (want_reply, want_text, want_status) and exit_ok


@pytest.mark.parametrize("config_name", list(FIXTURE_CONFIGS))
def test_resolve_matches_sendmails_ruleset_0(oracle_dir, routers, config_name):
    router = routers[config_name]
    skipped = TOKENIZER_CASES | HAND_WRITTEN_RULES
    if config_name == "nullclient":
        skipped |= NULLCLIENT_PROGRAMS
    checked, wrong = 0, []
    for address, summary in bt_cases(oracle_dir, config_name, "parse"):
        if address in skipped or "resolved" not in summary:
            continue
        checked += 1
        got = route_or_error(router, address)
        expected = expected_outcome(summary["resolved"])
        if not same_outcome(got, expected):
            wrong.append((address, got, expected))
    assert wrong == []
    assert checked >= 90


@pytest.mark.parametrize("config_name", list(FIXTURE_CONFIGS))
def test_rewrite_sender_matches_sendmails_envelope_sender(oracle_dir, routers, config_name):
    router = routers[config_name]
    checked, wrong = 0, []
    for address, summary in bt_cases(oracle_dir, config_name, "try_sender"):
        if address in TOKENIZER_CASES | HAND_WRITTEN_RULES:
            continue
        checked += 1
        got = router.rewrite_sender(address)
        if got != summary["addr"]:
            wrong.append((address, got, summary["addr"]))
    assert wrong == []
    assert checked >= 90


def test_headers_are_masqueraded_even_without_masquerade_envelope(oracle_dir, routers):
    router = routers["office"]
    assert router.masquerade_envelope()
    assert router.rewrite_sender("mallory", envelope=False) == "mallory@example.com"


def bv_cases(oracle_dir) -> list[dict]:
    cases = []
    for line in (oracle_dir / "cli/cli_cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["name"].startswith("bv_"):
            cases.append(case)
    return cases


def test_every_bv_case_of_the_office_config(oracle_dir, routers):
    router = routers["office"]
    cases = bv_cases(oracle_dir)
    assert len(cases) >= 19
    for case in cases:
        argv = case["argv"]
        arguments = argv[argv.index("-bv") + 1 :]
        lines, status = verify(router, arguments, verbose="-v" in argv)
        stdout = "".join(line + "\n" for line in lines)
        assert (case["name"], stdout, status) == (case["name"], case["stdout"], case["exit_code"])
