"""Remembered ruleset results (rules/memo.py) give the answers the rules give: a result is
served again only while the macros it read and the maps it consulted are unchanged, and
calls that wrote messages or used live maps are never remembered."""

from __future__ import annotations

from pathlib import Path

import pytest

from pysendmail.errors import MailError
from pysendmail.rules import maps as mp
from pysendmail.rules.address import AddressRules
from pysendmail.rules.checks import run_check
from pysendmail.rules.context import RuleWorld, build_world
from pysendmail.rules.engine import Messages
from pysendmail.rules.memo import Reads, RuleMemo
from pysendmail.rules.routes import RuleRouter
from pysendmail.rules.smtpchecks import RuleChecks
from tests.unit.rules_support import BT_CONFIGS, HOSTNAME, bt_cases, load_cf, world_from_text

CF = """\
O OperatorChars=.:%@!^/[]+
Karith arith
Kmacro macro
Kdequote dequote
Scheck_macro
R$*			$: $1 $| $&{Wanted}
R$* $| yes		$#error $@ 5.7.1 $: "550 refused by macro"
R$* $| $*		$@ $1
Scheck_lhs_macro
R$* @ $&{Wanted}	$#error $@ 5.7.1 $: "550 refused by lhs macro"
Scheck_arith
R$+			$: $(arith + $@ $1 $@ 1 $)
Scheck_setmacro
R$+			$: $(macro {Wanted} $@ $1 $) $1
Scheck_dequote
R$+			$: $(dequote $1 $)
Scheck_lookup
R$+			$: $(table $1 $: none $)
Scheck_nomap
R$+			$: $(nosuchmap $1 $)
Scheck_parent
R$+			$: $>check_macro $1
"""


def world(**tables: object) -> RuleWorld:
    made = world_from_text(CF)
    assert made.memo is not None
    for name, table in tables.items():
        made.maps[name] = mp.KeyValueMap(name, mp.MapFlags(), table)  # type: ignore[arg-type]
    return made


def test_a_result_read_from_a_macro_is_not_served_for_another_value() -> None:
    rules = world()
    for ruleset in ("check_macro", "check_parent"):
        yes = {"Wanted": "yes"}
        no = {"Wanted": "no"}
        assert run_check(rules, ruleset, "a@b", macros=yes).reply == "550 5.7.1 refused by macro"
        assert run_check(rules, ruleset, "a@b", macros=no).accepted
        assert run_check(rules, ruleset, "a@b").accepted  # the macro not defined at all
        assert run_check(rules, ruleset, "a@b", macros=yes).reply == "550 5.7.1 refused by macro"
    assert rules.memo is not None and rules.memo.hits > 0


def test_a_macro_on_the_left_hand_side_is_part_of_what_was_read() -> None:
    rules = world()
    refused = run_check(rules, "check_lhs_macro", "a@here", macros={"Wanted": "here"})
    assert refused.reply == "550 5.7.1 refused by lhs macro"
    assert run_check(rules, "check_lhs_macro", "a@here", macros={"Wanted": "there"}).accepted
    again = run_check(rules, "check_lhs_macro", "a@here", macros={"Wanted": "here"})
    assert again.reply == "550 5.7.1 refused by lhs macro"


def test_the_same_question_is_answered_from_the_memo() -> None:
    rules = world()
    assert rules.memo is not None
    first = run_check(rules, "check_dequote", '"abc"')
    hits = rules.memo.hits
    second = run_check(rules, "check_dequote", '"abc"')
    assert first == second and first.result == "abc"
    assert rules.memo.hits > hits


def test_calls_through_arith_maps_are_not_remembered() -> None:
    rules = world()
    assert rules.memo is not None
    assert run_check(rules, "check_arith", "41").result == "42"
    assert run_check(rules, "check_arith", "41").result == "42"
    assert len(rules.memo) == 0 and rules.memo.hits == 0


def test_a_call_that_sets_a_macro_sets_it_every_time() -> None:
    rules = world()
    number = rules.book.find("check_setmacro")
    for value in ("41", "41", "42"):
        macros: dict[str, str] = {}
        pvp = [value]
        rules.rewriter(macros=macros).rewrite(pvp, number)
        assert pvp == [value]
        assert list(macros.values()) == [value]  # {Wanted}, set by the macro map


def test_a_check_whose_macros_die_with_it_is_remembered_though_it_sets_one() -> None:
    rules = world()
    assert rules.memo is not None
    assert run_check(rules, "check_setmacro", "41").result == "41"
    hits = rules.memo.hits
    assert run_check(rules, "check_setmacro", "41").result == "41"
    assert rules.memo.hits == hits + 1
    # ... but a caller whose macros live on still runs it, and gets the macro
    macros: dict[str, str] = {}
    pvp = ["41"]
    rules.rewriter(macros=macros).rewrite(pvp, rules.book.find("check_setmacro"))
    assert list(macros.values()) == ["41"]


def test_a_macro_read_after_the_call_set_it_is_not_a_dependency() -> None:
    rules = world_from_text(
        "Kmacro macro\n"
        "Scheck_both\n"
        "R$+\t\t$: $(macro {Probe} $@ $1 $) $1\n"
        "R$+\t\t$: $&{Probe} $| $&{Outside}\n"
    )
    assert rules.memo is not None
    first = run_check(rules, "check_both", "a", macros={"Outside": "x"})
    assert first.result == "a $| x"
    assert run_check(rules, "check_both", "a", macros={"Outside": "y"}).result == "a $| y"
    assert run_check(rules, "check_both", "a", macros={"Outside": "x", "Probe": "z"}) == first
    assert rules.memo.hits >= 1


def test_a_call_that_wrote_a_message_says_it_every_time() -> None:
    rules = world()
    assert rules.memo is not None
    for _ in range(2):
        messages = Messages()
        pvp = ["x"]
        rules.rewriter(messages=messages).rewrite(pvp, rules.book.find("check_nomap"))
        assert messages.lines == ["rewrite: map nosuchmap not found"]
    assert len(rules.memo) == 0


class StampedTable:
    """A lookup function whose data changes, saying which version it serves."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.version = 1

    def __call__(self, key: str) -> str | None:
        return self.data.get(key)

    def data_stamp(self) -> object:
        return self.version


def test_a_map_whose_data_changed_is_asked_again() -> None:
    table = StampedTable({"key": "old"})
    rules = world(table=table)
    assert run_check(rules, "check_lookup", "key").result == "old"
    assert run_check(rules, "check_lookup", "key").result == "old"
    table.data["key"] = "new"
    table.version = 2
    assert run_check(rules, "check_lookup", "key").result == "new"


def test_a_map_that_cannot_say_its_version_is_not_remembered() -> None:
    data = {"key": "old"}
    rules = world(table=data.get)  # a bare function: no data_stamp
    assert run_check(rules, "check_lookup", "key").result == "old"
    data["key"] = "new"
    assert run_check(rules, "check_lookup", "key").result == "new"


def test_host_lookups_through_dns_are_not_remembered() -> None:
    class DnsResolver:
        def __init__(self) -> None:
            self.answers = {"mx": "one.example."}

        def canonical_name(self, name: str) -> tuple[str | None, int]:
            return self.answers.get(name), mp.EX_OK

        def name_of_address(self, address: str) -> tuple[str | None, int]:
            return None, mp.EX_NOTFOUND

    resolver = DnsResolver()
    rules = world_from_text("Scheck_host\nR$+\t\t$: $[ $1 $]\n")
    rules.maps["host"] = mp.HostMap("host", mp.parse_map_args(["-a.", "-D"]), resolver)
    assert run_check(rules, "check_host", "mx").result == "one . example . ."
    resolver.answers["mx"] = "two.example."
    assert run_check(rules, "check_host", "mx").result == "two . example . ."


def test_a_bt_session_remembers_nothing() -> None:
    rules = world()
    assert rules.session().memo is None
    assert rules.rewriter(trace=lambda line: None).memo is None


# ------------------------------------------------------------ the recorded addresses


def _answers(rules: RuleWorld, address: str) -> list[str]:
    """What the rules make of `address`: as a recipient and as a sender (rulesets 3, 0),
    and through check_mail and check_rcpt from a remote and from the local host."""
    out: list[str] = []
    for is_rcpt in (True, False):
        messages = Messages()
        parsed = AddressRules(rules, rules.rewriter(messages=messages)).parseaddr(
            address, 0, "\0", is_rcpt
        )
        out.append(f"{parsed!r} {messages.lines!r} {messages.exit_stat}")
    for client in ({"client_addr": "192.0.2.99", "client_name": "far.example"}, {}):
        for ruleset in ("check_mail", "check_rcpt"):
            out.append(repr(run_check(rules, ruleset, f"<{address}>", macros=client)))
    return out


@pytest.mark.parametrize("config", sorted(BT_CONFIGS))
def test_recorded_addresses_get_the_same_answers_with_and_without_the_memo(
    oracle_dir: Path, config: str
) -> None:
    cf = load_cf(oracle_dir / BT_CONFIGS[config])
    plain = build_world(cf, hostname=HOSTNAME, memo=False)
    remembering = build_world(cf, hostname=HOSTNAME)
    assert plain.memo is None and remembering.memo is not None
    addresses = sorted(
        {case["address"] for case in bt_cases(oracle_dir, config) if case.get("address")}
    )
    assert len(addresses) > 50
    for address in addresses:
        expected = _answers(plain, address)
        assert _answers(remembering, address) == expected, address
        assert _answers(remembering, address) == expected, address  # now from the memo
    assert remembering.memo.hits > len(addresses)


def test_the_memo_is_bounded_and_subroutine_calls_never_push_out_callers_questions() -> None:
    memo = RuleMemo(size=2, inner_size=3)
    for number in range(2):
        memo.put((10, 0, 100, f"asked{number}"), ("answer",), 0, Reads())
    for number in range(50):
        memo.put((11, 1, 100, f"sub{number}"), ("sub",), 0, Reads())
    assert len(memo) == 2 + 3
    assert memo.get((10, 0, 100, "asked0"), {}) is not None
    assert memo.get((11, 1, 100, "sub0"), {}) is None  # the oldest subroutine call went
    memo.put((10, 0, 100, "asked2"), ("answer",), 0, Reads())
    assert memo.get((10, 0, 100, "asked1"), {}) is None  # least recently used of the two
    assert memo.get((10, 0, 100, "asked0"), {}) is not None


# ------------------------------------------------------------ resolved addresses


def _resolution(router: RuleRouter, address: str) -> str:
    try:
        return repr(router.resolve(address))
    except MailError as error:
        return f"{type(error).__name__}: {error} {error.reply_code} {error.status}"


@pytest.mark.parametrize("config", sorted(BT_CONFIGS))
def test_resolved_addresses_are_kept_only_with_the_answer_the_rules_give(
    oracle_dir: Path, config: str
) -> None:
    cf = load_cf(oracle_dir / BT_CONFIGS[config])
    plain = RuleRouter(build_world(cf, hostname=HOSTNAME, memo=False))
    keeping = RuleRouter(build_world(cf, hostname=HOSTNAME))
    addresses = sorted(
        {case["address"] for case in bt_cases(oracle_dir, config) if case.get("address")}
    )
    for address in addresses:
        expected = _resolution(plain, address)
        assert _resolution(keeping, address) == expected, address
        assert _resolution(keeping, address) == expected, address  # now the kept triple
    assert keeping._resolved  # some were kept (none that wrote a message)


def test_a_resolved_address_follows_a_changed_map() -> None:
    table = StampedTable({"bob": "local"})
    rules = world_from_text(
        "V10\nDjmail.example.com\nMlocal, P=/bin/true, F=l, A=local $u\n"
        "Mesmtp, P=[IPC], F=mDFMuX, A=TCP $h\n"
        "S0\nR$+\t\t$: $(table $1 $: remote $) $| $1\n"
        "Rlocal $| $+\t$#local $: $1\nRremote $| $+\t$#esmtp $@ relay.example $: $1\n"
        "S3\nS1\nS2\nS4\n"
    )
    rules.maps["table"] = mp.KeyValueMap("table", mp.MapFlags(), table)  # type: ignore[arg-type]
    router = RuleRouter(rules)
    assert router.resolve("bob") == ("local", "", "bob")
    assert router.resolve("bob") == ("local", "", "bob")
    assert "bob" in router._resolved
    table.data["bob"] = "remote"
    table.version = 2
    assert router.resolve("bob") == ("esmtp", "relay.example", "bob")


@pytest.mark.parametrize("config", sorted(BT_CONFIGS))
def test_kept_mail_and_rcpt_macros_are_what_parseaddr_gives(oracle_dir: Path, config: str) -> None:
    cf = load_cf(oracle_dir / BT_CONFIGS[config])
    plain = RuleChecks(build_world(cf, hostname=HOSTNAME, memo=False), frozenset())
    keeping = RuleChecks(build_world(cf, hostname=HOSTNAME), frozenset())
    addresses = sorted(
        {case["address"] for case in bt_cases(oracle_dir, config) if case.get("address")}
    )
    for address in addresses:
        for prefix, sender in (("mail", True), ("rcpt", False)):
            expected = plain.parsed_macros(prefix, address, sender=sender)
            for _ in range(2):  # the second from what was kept
                assert keeping.parsed_macros(prefix, address, sender=sender) == expected
    assert keeping._parsed
