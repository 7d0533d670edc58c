"""Recipient expansion with injected tables: aliases, :include:, |prog and /file with
their controlling user, error:, duplicates, loops, ~/.forward, virtusertable, mailertable,
smart host.

Users come from an injected lookup (alice 1001, bob 1002, mallory 1003, mail 8), not from
the system's passwd: the tests create no system users.
"""

from __future__ import annotations

import os

import pytest

from pysendmail.config.aliases import parse_aliases
from pysendmail.envelope import ControllingUser
from pysendmail.errors import UserUnknown
from pysendmail.routing import LocalUser, Route, Router, error_from_value, verify
from pysendmail.sysexits import ExitCode
from tests.unit.tables_office import fixture_users, minimal_config

MAILER_OWNER = ControllingUser("list", 1500, 1500)


class DictMap:
    def __init__(self, table: dict[str, str]) -> None:
        self.table = {k.lower(): v for k, v in table.items()}

    def lookup(self, key: str) -> str | None:
        return self.table.get(key.lower())


def make_router(
    aliases_text: str = "",
    *,
    maps: dict[str, dict[str, str]] | None = None,
    files: dict[str, str] | None = None,
    home=None,
    **config_fields,
):
    aliases = parse_aliases(aliases_text, "/etc/mail/aliases")
    users = fixture_users(home)
    users["mail"] = LocalUser("mail", 8, 8, "/var/mail")
    files = files or {}

    def alias_lookup(name):
        entry = aliases.lookup(name)
        return (entry, MAILER_OWNER) if entry else None

    def read_text(path):
        if path in files:
            return files[path]
        if home is not None and str(path).startswith(str(home)):
            with open(path) as handle:
                return handle.read()
        raise FileNotFoundError(2, "No such file or directory", path)

    def file_stat(path):
        if path in files:
            return os.stat(__file__)  # a file owned by whoever runs the tests
        return os.stat(path)

    return Router(
        minimal_config(**config_fields),
        aliases=alias_lookup,
        maps={name: DictMap(table) for name, table in (maps or {}).items()},
        users=users.get,
        canonify=lambda name: None,
        read_text=read_text,
        file_stat=file_stat,
    )


def triples(expansion):
    return [(d.mailer, d.host, d.user) for d in expansion.deliveries]


def test_list_items_are_taken_last_first_and_include_lines_in_order():
    router = make_router(
        "team: :include:/lists/team\nsales: alice, bob\n",
        files={"/lists/team": "# members\nmallory\nbob, alice\n"},
    )
    assert triples(router.expand("sales")) == [("local", "", "bob"), ("local", "", "alice")]
    assert [d.user for d in router.expand("team").deliveries] == ["mallory", "alice", "bob"]


def test_each_target_gets_one_delivery():
    router = make_router("sales: alice, bob\nall: sales, alice, ALICE, bob@example.com\n")
    expansion = router.expand(["all", "alice"])
    assert sorted(d.user for d in expansion.deliveries) == ["alice", "bob"]
    assert expansion.exit_code() == 0


def test_programs_and_files_carry_their_controlling_user():
    router = make_router('log: "|/usr/bin/logger -t mail", /var/log/mail.copy\n')
    expansion = router.expand("log")
    assert [(d.mailer, d.user, d.controlling_user) for d in expansion.deliveries] == [
        ("*file*", "/var/log/mail.copy", MAILER_OWNER),
        ("prog", "|/usr/bin/logger -t mail", MAILER_OWNER),
    ]
    assert all(d.original == "log" for d in expansion.deliveries)


def test_programs_and_files_given_directly_are_refused():
    router = make_router()
    for typed, what in (('"|/bin/sh -c evil"', "programs"), ("/etc/passwd", "files")):
        expansion = router.expand(typed)
        assert expansion.deliveries == []
        (error,) = expansion.errors
        assert error.text == f"Cannot mail directly to {what}"
        assert error.error.status == "5.7.1"
    allowed = router.expand('"|/bin/true"', allow_programs=True)
    assert triples(allowed) == [("prog", "", "|/bin/true")]
    assert allowed.deliveries[0].controlling_user == ControllingUser("mail", 8, 8)


def test_error_target_reports_its_code():
    router = make_router("old: error:5.1.1:550 This address has moved\n")
    expansion = router.expand("old")
    (error,) = expansion.errors
    assert (error.text, error.error.status, error.error.reply_code) == (
        "This address has moved",
        "5.1.1",
        550,
    )
    assert expansion.exit_code() == ExitCode.NOUSER


def test_unknown_user_and_owner_list():
    router = make_router("owner-sales: alice\nsales: bob\n")
    assert triples(router.expand("owner-sales")) == [("local", "", "alice")]
    lines, status = verify(router, ["nosuchuser"])
    assert (lines, status) == (["nosuchuser... User unknown"], ExitCode.NOUSER)


def test_alias_loop_is_broken_with_sendmails_words():
    router = make_router("a: b\nb: a\n")
    lines, status = verify(router, ["a"])
    assert (lines, status) == (["aliasing/forwarding loop broken"], ExitCode.USAGE)
    # After a deliverable recipient the same loop is no error: a expands to nothing.
    lines, status = verify(router, ["alice", "a"])
    assert (lines, status) == (["alice... deliverable: mailer local, user alice"], 0)


def test_deep_aliasing_is_cut_at_ten_levels():
    chain = "".join(f"a{i}: a{i + 1}\n" for i in range(12))
    router = make_router(chain + "a12: alice\n")
    lines, status = verify(router, ["a0"])
    assert lines[0] == "a11... aliasing/forwarding loop broken (11 aliases deep; 10 max)"
    assert status == ExitCode.USAGE


def test_verbose_verify_says_what_was_aliased():
    router = make_router("sales: alice, bob\n")
    lines, _ = verify(router, ["sales"], verbose=True)
    assert lines == [
        "sales... aliased to alice, bob",
        "bob... deliverable: mailer local, user bob",
        "alice... deliverable: mailer local, user alice",
    ]


def test_plus_detail_aliases_fall_back_to_the_user():
    router = make_router("alice+lists: bob\n")
    assert triples(router.expand("alice+lists")) == [("local", "", "bob")]
    assert triples(router.expand("alice+other")) == [("local", "", "alice+other")]


def write_forward(home, user, text, mode=0o644):
    (home / user).mkdir(exist_ok=True)
    path = home / user / ".forward"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_forward_file_redirects_and_keeps_a_copy_with_backslash(tmp_path):
    write_forward(tmp_path, "alice", "bob@remote.example.net\n\\alice\n")
    router = make_router(home=tmp_path, options={"ForwardPath": "$z/.forward"})
    expansion = router.expand("alice")
    assert sorted(triples(expansion)) == [
        ("esmtp", "remote.example.net", "bob@remote.example.net"),
        ("local", "", "alice"),
    ]


def test_group_writable_forward_is_refused(tmp_path):
    write_forward(tmp_path, "alice", "mallory\n", mode=0o664)
    router = make_router(home=tmp_path, options={"ForwardPath": "$z/.forward"})
    expansion = router.expand("alice")
    assert triples(expansion) == [("local", "", "alice")]
    assert any("group/world writable" in e.text for e in expansion.events)


def test_forward_programs_run_as_the_user(tmp_path):
    write_forward(tmp_path, "bob", '"|/usr/bin/procmail"\n')
    router = make_router(home=tmp_path, options={"ForwardPath": "$z/.forward"})
    (delivery,) = router.expand("bob").deliveries
    assert delivery.mailer == "prog"
    assert delivery.controlling_user == ControllingUser("bob", 1002, 1002)


VIRTUAL = {
    "info@virtual.example.org": "alice",
    "list+*@virtual.example.org": "bob",
    "gone@virtual.example.org": "error:nouser 550 5.1.1 User has moved",
    "@virtual.example.org": "%1+%2@elsewhere.example.net",
    "@other.example.org": "catchall",
}


def virtual_router(**fields):
    local = frozenset({"mail.example.com", "virtual.example.org", "other.example.org"})
    return make_router(maps={"virtuser": VIRTUAL}, local_host_names=local, **fields)


def test_virtusertable_lookups():
    router = virtual_router()
    assert router.resolve("info@virtual.example.org") == Route("local", "", "alice")
    assert router.resolve("list+x@virtual.example.org") == Route("local", "", "bob")
    assert router.resolve("joe+tag@virtual.example.org") == Route(
        "esmtp", "elsewhere.example.net", "joe+tag@elsewhere.example.net"
    )
    assert router.resolve("anyone@other.example.org") == Route("local", "", "catchall")
    lines, status = verify(router, ["gone@virtual.example.org"])
    assert (lines, status) == (["gone@virtual.example.org... User has moved"], ExitCode.NOUSER)


MAILERTABLE = {
    "mt.example.com": "smtp:[127.0.0.1]",
    ".mt.example.com": "relay:gateway.example.net",
    "bad.example.com": "error:5.1.2:550 Host unknown (mailertable)",
    "tolocal.example.com": "local:alice",
    "keep.example.com": "local:",
    ".": "relay:fallback.example.net",
}


def test_mailertable_walks_the_domain_suffixes():
    router = make_router(maps={"mailertable": MAILERTABLE})
    assert router.resolve("u@mt.example.com") == Route("smtp", "[127.0.0.1]", "u@mt.example.com")
    assert router.resolve("u@a.b.mt.example.com") == Route(
        "relay", "gateway.example.net", "u@a.b.mt.example.com"
    )
    assert router.resolve("u@tolocal.example.com") == Route("local", "", "alice")
    assert router.resolve("u@keep.example.com") == Route("local", "u@keep.example.com", "u")
    assert router.resolve("u@anywhere.example.net") == Route(
        "relay", "fallback.example.net", "u@anywhere.example.net"
    )
    error = verify(router, ["u@bad.example.com"])
    assert error == (["u@bad.example.com... Host unknown"], ExitCode.NOHOST)


def test_smart_host_takes_every_remote_domain():
    router = make_router(smart_host="relay:[smarthost.example.net]")
    assert router.resolve("u@remote.example.net") == Route(
        "relay", "[smarthost.example.net]", "u@remote.example.net"
    )
    assert router.resolve("alice@mail.example.com") == Route("local", "", "alice")


def test_address_errors_name_the_address():
    router = make_router()
    assert verify(router, ["alice@"]) == (["alice@... Hostname required"], ExitCode.USAGE)
    assert verify(router, ['""']) == (['""... User address required'], ExitCode.USAGE)


def test_error_values_in_every_form():
    moved = error_from_value("nouser 550 5.1.1 User has moved")
    assert (moved.exit_code, moved.reply_code, moved.status, moved.text) == (
        ExitCode.NOUSER,
        550,
        "5.1.1",
        "User has moved",
    )
    later = error_from_value("4.7.1:451 Try again later")
    assert (later.is_temporary, later.exit_code) == (True, ExitCode.TEMPFAIL)
    plain = error_from_value("550 Go away")
    assert (plain.status, plain.text) == ("5.0.0", "Go away")


class QueuedRecipient:
    """The shape of the queue's recipient (qf R line with its C line)."""

    def __init__(self, address, controlling_user=None):
        self.address = address
        self.controlling_user = controlling_user


def test_queue_runner_interface():
    router = make_router("sales: alice, bob\n")
    assert [d.user for d in router.route(QueuedRecipient("sales"))] == ["bob", "alice"]
    # A |prog the queue kept with its controlling user (qf C line) is delivered as that user.
    (prog,) = router.route(QueuedRecipient('"|/bin/cat"', "alice:1001:1001:sales"))
    assert prog.controlling_user == ControllingUser("alice", 1001, 1001, "sales")
    with pytest.raises(UserUnknown):
        router.route(QueuedRecipient("nosuchuser"))
    with pytest.raises(UserUnknown, match="Cannot mail directly to programs"):
        router.route(QueuedRecipient('"|/bin/cat"'))


def test_missing_include_file_is_a_permanent_error_naming_the_file():
    router = make_router("team: :include:/lists/gone, alice\n")
    expansion = router.expand("team")
    (error,) = expansion.errors
    assert (error.address, error.text) == (
        ":include:/lists/gone",
        "Cannot open /lists/gone: No such file or directory",
    )
    assert error.error.status == "5.2.4"
    assert [d.user for d in expansion.deliveries] == ["alice"]


def test_verbose_verify_names_the_included_file():
    router = make_router("team: :include:/lists/team\n", files={"/lists/team": "bob\n"})
    lines, status = verify(router, ["team"], verbose=True)
    assert lines == [
        "team... aliased to :include:/lists/team",
        ":include:/lists/team... including file /lists/team",
        "bob... deliverable: mailer local, user bob",
    ]
    assert status == 0
