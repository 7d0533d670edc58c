"""translate(): the values the fixture .mc files asked for, overrides, diagnostics."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysendmail.config.model import Overrides
from pysendmail.config.translate import (
    DEFAULT_HELPFILE,
    DefaultEnvironment,
    parse_daemon_options,
    resolve_cf_path,
    translate,
)

HOST = "mail.example.com"


@pytest.fixture(scope="module")
def configs(oracle_dir: Path) -> Path:
    return oracle_dir / "configs"


def messages(config) -> list[str]:
    return [str(d) for d in config.diagnostics]


@pytest.mark.parametrize(
    "name",
    [
        "office/office.cf",
        "office/office_smarthost.cf",
        "nullclient/nullclient.cf",
        "debian/debian.cf",
    ],
)
def test_fixture_cfs_translate_without_diagnostics(configs: Path, name: str) -> None:
    config = translate(configs / name, hostname=HOST)
    assert messages(config) == []
    assert config.cf_path == str(configs / name)


@pytest.mark.parametrize(
    ("name", "routing"),
    [
        ("office/office.cf", "cf"),  # LOCAL_RULE_3 rewrites old.example.com
        ("office/office_smarthost.cf", "cf"),
        ("nullclient/nullclient.cf", "stock"),
        ("debian/debian.cf", "stock"),
    ],
)
def test_translate_decides_who_routes(configs: Path, name: str, routing: str) -> None:
    assert translate(configs / name, hostname=HOST).routing_rules == routing


def test_a_cf_without_ruleset_0_routes_by_the_tables(tmp_path: Path) -> None:
    cf = tmp_path / "bare.cf"
    cf.write_text("V10/Berkeley\nDjmail.example.com\n")
    assert translate(cf).routing_rules == "tables"


def test_hand_written_routing_rules_are_run(configs: Path, tmp_path: Path) -> None:
    text = (configs / "debian/debian.cf").read_text()
    cf = tmp_path / "local.cf"
    assert "\nSParse0\n" in text
    cf.write_text(text.replace("\nSParse0\n", "\nSParse0\nR$* <@ legacy > $*\t$#local $: $1\n"))
    assert translate(cf, hostname=HOST).routing_rules == "cf"


def test_office_local_names_relay_domains_and_masquerading(configs: Path) -> None:
    config = translate(configs / "office/office.cf", hostname=HOST)
    assert config.hostname == HOST
    assert (config.macros["w"], config.macros["m"]) == ("mail", "example.com")
    assert config.local_host_names == {
        "localhost", "mail", "mail.example.com", "example.com",
        "virtual.example.org", "other.example.org", "strict.example.org",
    }  # fmt: skip
    assert config.relay_domains == {"relayed.example.net", "partner.example.org"}
    assert config.masquerade_as == "example.com"
    assert config.masquerade_domains == {"mail.example.com"}
    assert config.generics_domains == {"mail.example.com", "localhost"}
    assert config.smart_host is None
    assert config.trusted_users == {"root", "daemon", "uucp"}


def test_office_options_daemon_and_maps(configs: Path) -> None:
    office = configs / "office"
    config = translate(office / "office.cf", hostname=HOST)
    (daemon,) = config.daemons
    assert (daemon.name, daemon.addr, daemon.port, daemon.family) == (
        "MTA",
        "127.0.0.1",
        2601,
        "inet",
    )
    assert config.option("MaxMessageSize") == 100000
    assert config.option("PrivacyOptions") == ("authwarnings",)
    assert config.option("AliasFile") == (str(office / "aliases"),)
    assert config.option("QueueDirectory") == str(office / "mqueue")
    assert config.option("HelpFile") == str(office / "helpfile")
    assert config.option("Timeout.ident") == 0
    assert config.option("Timeout.queuereturn") == 5 * 86400
    assert config.option("Timeout.queuewarn") == 4 * 3600
    assert config.option("MaxHopCount") == 25
    assert config.option("TempFileMode") == 0o600
    assert config.option("OperatorChars") == ".:%@!^/[]+"
    assert config.option("DeliveryMode") == "background"
    assert config.option("MeToo") is True
    assert config.maps["virtuser"].file == str(office / "virtusertable")
    assert config.maps["mailertable"].file == str(office / "mailertable")
    assert config.maps["access"].flags == {"-T": "<TMPF>"}
    assert config.mailers["local"].path == str(office / "bin/deliver")
    assert "*file*" in config.mailers and "*include*" in config.mailers


def test_office_rulesets_by_name_and_number_with_the_local_rules_merged(configs: Path) -> None:
    config = translate(configs / "office/office.cf", hostname=HOST)
    assert config.rulesets["canonify"] is config.rulesets["3"]
    assert config.rulesets["parse"] is config.rulesets["0"]
    local = config.rulesets["Local_check_rcpt"]
    assert [rule.lhs for rule in local.rules] == ["$* spamtrap $*"]
    # LOCAL_RULE_3 lands in Canonify2 (96), the bottom half of ruleset 3.
    canonify2 = config.rulesets["Canonify2"]
    assert canonify2 is config.rulesets["96"]
    lr3 = [rule for rule in canonify2.rules if rule.comment == "oracle LR3"]
    assert lr3 and lr3[0].lhs == "$* < @ old . example . com > $*"


def test_office_smarthost_has_its_smart_host(configs: Path) -> None:
    config = translate(configs / "office/office_smarthost.cf", hostname=HOST)
    assert config.smart_host == "relay:[smarthost.example.net]"


def test_nullclient_sends_everything_to_the_hub(configs: Path) -> None:
    config = translate(configs / "nullclient/nullclient.cf", hostname=HOST)
    assert config.smart_host == "smarthost.example.net"
    assert config.mail_hub == "smarthost.example.net"
    # FEATURE(nullclient) masquerades as the hub, whatever MASQUERADE_AS said.
    assert config.masquerade_as == "smarthost.example.net"
    assert config.local_host_names == {"localhost", "mail", "mail.example.com"}
    assert config.relay_domains == set()  # its relay-domains file is optional and absent
    assert [(d.addr, d.port) for d in config.daemons] == [("127.0.0.1", 2602)]


def test_debian_daemons_and_options(configs: Path) -> None:
    config = translate(configs / "debian/debian.cf", hostname=HOST)
    assert [(d.name, d.addr, d.port, d.modifiers) for d in config.daemons] == [
        ("MTA-v4", "127.0.0.1", 2603, frozenset()),
        ("MSP-v4", "127.0.0.1", 2604, frozenset("Ea")),
    ]
    assert config.option("PrivacyOptions") == (
        "needmailhelo", "needexpnhelo", "needvrfyhelo", "restrictqrun",
        "restrictexpand", "nobodyreturn", "authwarnings",
    )  # fmt: skip
    assert config.option("ConnectionRateThrottle") == 15
    assert config.option("ConnectionRateWindowSize") == 600
    assert config.option("MaxHopCount") == 100
    assert config.option("QueueFileMode") == 0o640
    assert config.option("TrustedUser") == "smmta"
    assert config.option("RejectNUL") is True
    assert config.option("Timeout.ident") == 5
    assert config.option("Timeout.command") == 300
    assert config.local_host_names >= {"localhost", "mail.example.com"}


def test_host_name_comes_from_dj_or_the_argument(configs: Path, tmp_path: Path) -> None:
    cf = tmp_path / "plain.cf"
    cf.write_text("V10/Berkeley\nCwlocalhost\n")
    config = translate(cf, hostname="box.example.org")
    assert (config.hostname, config.macros["w"], config.macros["m"]) == (
        "box.example.org",
        "box",
        "example.org",
    )
    assert "box.example.org" in config.local_host_names
    office = translate(configs / "office/office.cf", hostname="other.example.net")
    assert office.hostname == "mail.example.com"  # Dj wins for $j ...
    assert office.macros["w"] == "other"  # ... but $w is still the machine's


def test_command_line_options_win_over_the_file(configs: Path) -> None:
    overrides = Overrides(
        options={
            "QueueDirectory": "/tmp/q",
            "AliasFile": "/tmp/aliases",
            "i": "",
            "e": "m",
            "Z": "9",  # a known letter (RetryFactor)
            "W": "x",  # an unknown letter: ignored, as sendmail does
            "Timeout": "queuewarn=1h",
        }
    )
    config = translate(configs / "office/office.cf", overrides, hostname=HOST)
    assert config.option("QueueDirectory") == "/tmp/q"
    assert config.option("AliasFile") == ("/tmp/aliases",)
    assert config.option("IgnoreDots") is True
    assert config.option("ErrorMode") == "m"
    assert config.option("RetryFactor") == 9
    assert config.option("Timeout.queuewarn") == 3600
    assert messages(config) == []


def test_macro_overrides(configs: Path) -> None:
    config = translate(
        configs / "office/office.cf",
        Overrides(options={"M": "{client_addr}127.0.0.9"}, macros={"j": "relay.example.org"}),
        hostname=HOST,
    )
    assert config.hostname == "relay.example.org"
    assert config.macros["client_addr"] == "127.0.0.9"


def test_unknown_and_bad_options_name_their_line(tmp_path: Path) -> None:
    cf = tmp_path / "bad.cf"
    cf.write_text("V10/Berkeley\nO NoSuchOption=1\nO MaxMessageSize=big\nOW7\n")
    config = translate(cf, Overrides(options={"AlsoUnknown": "1"}), hostname=HOST)
    assert messages(config) == [
        "command line:0:0: warning: unknown option AlsoUnknown ignored",
        f"{cf}:2:3: warning: unknown option NoSuchOption ignored",
        f"{cf}:3:3: error: option MaxMessageSize: invalid number 'big'",
        f"{cf}:4:2: warning: unknown option letter 'W' ignored",
    ]
    assert config.option("MaxMessageSize") == 0  # the default stays


def test_repeated_list_options_add_up_but_scalars_are_replaced(tmp_path: Path) -> None:
    cf = tmp_path / "lists.cf"
    cf.write_text(
        "V10/Berkeley\nO PrivacyOptions=noexpn\nO PrivacyOptions=novrfy,goaway\n"
        "O AliasFile=/a\nO AliasFile=/b\nO MaxHopCount=30\nO MaxHopCount=40\n"
        "O DaemonPortOptions=Name=A, Port=2525\nO DaemonPortOptions=Name=B, Port=2526\n"
    )
    config = translate(cf, hostname=HOST)
    assert config.option("PrivacyOptions") == ("noexpn", "novrfy", "goaway")
    assert config.option("AliasFile") == ("/a", "/b")
    assert config.option("MaxHopCount") == 40
    assert [(d.name, d.port) for d in config.daemons] == [("A", 2525), ("B", 2526)]


def test_class_files_scanf_patterns_and_missing_files(tmp_path: Path) -> None:
    names = tmp_path / "names"
    names.write_text("# comment\nOne.Example  two.example # trailing\n\nthree.example\n")
    cf = tmp_path / "classes.cf"
    cf.write_text(
        f"V10/Berkeley\nFw{names} %[^#]\nF{{First}}{names}\nFR-o {tmp_path}/absent\n"
        f"FX{tmp_path}/missing\nF{{P}}|/bin/list\n"
    )
    config = translate(cf, hostname=HOST)
    assert {"one.example", "two.example", "three.example"} <= config.local_host_names
    assert config.classes["First"] == {"one.example", "three.example"}  # %s: first word
    assert config.relay_domains == set()
    assert messages(config) == [
        f"{cf}:5:1: error: class X: cannot open {tmp_path}/missing: No such file or directory",
        f"{cf}:6:1: error: class P: /bin/list: cannot run: No such file or directory",
    ]


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory every user can read: a class program run by root runs as DefaultUser."""
    path = Path(tempfile.mkdtemp(prefix="pysendmail-classprog-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_program_classes_take_the_words_the_program_prints(public_dir: Path) -> None:
    tmp_path = public_dir
    program = tmp_path / "list-domains"
    program.write_text("#!/bin/sh\necho \"$1.example\"\necho '# skipped'\necho Other.Example x\n")
    program.chmod(0o755)
    failing = tmp_path / "fails"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    cf = tmp_path / "prog.cf"
    cf.write_text(
        f"V10/Berkeley\nFw|{program} first\nF{{Q}}|{failing}\nF{{O}}-o |{failing}\n"
        "F{R}|relative/prog\n"
    )
    config = translate(cf, hostname=HOST)
    assert {"first.example", "other.example"} <= config.local_host_names
    assert "x" not in config.local_host_names
    assert messages(config) == [
        f"{cf}:3:1: error: class Q: {failing}: exit status 3",
        f"{cf}:4:1: warning: class O: {failing}: exit status 3",
        f"{cf}:5:1: error: class R: relative/prog: the program must be named by its full path",
    ]


def test_a_program_class_runs_as_the_default_user_and_at_every_start(
    public_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the program as another user")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    program = public_dir / "whoami"
    program.write_text('#!/bin/sh\necho "uid$(id -u)"\n')
    program.chmod(0o755)
    cf = public_dir / "who.cf"
    cf.write_text(f"V10/Berkeley\nO DefaultUser=4242:4242\nF{{U}}|{program}\n")
    from pysendmail.config.cache import load_config

    first = load_config(cf, hostname=HOST)
    assert "uid4242" in first.classes["U"], [str(d) for d in first.diagnostics]
    assert "|" + str(program) in first.source_files
    assert not list((tmp_path / "cache").rglob("config-*.pickle"))  # never cached


def test_constructs_pysendmail_does_not_support_are_reported(tmp_path: Path) -> None:
    cf = tmp_path / "odd.cf"
    cf.write_text(
        "V10/Berkeley\nKldap_map ldap -k uid\nQslow, Path=/var/spool/slow\n"
        "Xfilter, S=local:/run/f.sock\nS1\nR$*\t$@ one\nS1\nR$+\t$@ two\n"
    )
    config = translate(cf, hostname=HOST)
    assert messages(config) == [
        f"{cf}:2:1: warning: map ldap_map: map class ldap is not supported; "
        "lookups in it find nothing",
        f"{cf}:3:1: warning: queue group slow: queue groups are not supported; "
        "its mail uses the main queue",
        f"{cf}:4:1: warning: milter filter: milters are not supported and are ignored",
        f"{cf}:7:1: warning: ruleset 1 has multiple definitions; the rules are added to the first",
    ]
    assert [rule.rhs for rule in config.rulesets["1"].rules] == ["$@ one", "$@ two"]


def test_a_map_whose_file_is_missing_is_reported_unless_optional(tmp_path: Path) -> None:
    (tmp_path / "present").write_text("key value\n")
    cf = tmp_path / "maps.cf"
    cf.write_text(
        f"V10/Berkeley\nKhere hash {tmp_path}/present\nKgone hash {tmp_path}/gone\n"
        f"Kmaybe hash -o {tmp_path}/gone\nKdb hash {tmp_path}/present.db\n"
    )
    config = translate(cf, hostname=HOST)
    assert messages(config) == [
        f"{cf}:3:1: warning: map gone: neither {tmp_path}/gone nor a compiled form of it "
        "exists; lookups in it find nothing"
    ]
    assert set(config.maps) == {"here", "gone", "maybe", "db"}


def test_daemon_options_parsing() -> None:
    spec = parse_daemon_options("Family=inet6, Name=MSA, Port=submission, Addr=::1, M=Ea", 0)
    assert (spec.family, spec.name, spec.port, spec.addr) == ("inet6", "MSA", 587, "::1")
    assert parse_daemon_options("", 3).name == "Daemon3"
    assert parse_daemon_options("", 3).port == 25
    assert parse_daemon_options("Modifiers=Ea", 0).modifiers == frozenset("Ea")
    for bad in ("Port=99999", "Family=ipx", "Port"):
        with pytest.raises(ValueError):
            parse_daemon_options(bad)


def test_bad_daemon_options_are_an_error_on_their_line(tmp_path: Path) -> None:
    cf = tmp_path / "d.cf"
    cf.write_text("V10/Berkeley\nO DaemonPortOptions=Port=nosuchservice\n")
    config = translate(cf, hostname=HOST)
    assert messages(config) == [f"{cf}:2:3: error: DaemonPortOptions: invalid port 'nosuchservice'"]
    assert config.daemons == ()


def test_embedded_default_as_root_uses_sendmails_paths() -> None:
    config = translate(None, hostname=HOST, default_environment=DefaultEnvironment(True, None))
    assert config.cf_path is None and config.state_dir is None
    assert config.errors == ()
    assert [(d.addr, d.port) for d in config.daemons] == [("127.0.0.1", 25)]
    assert config.option("QueueDirectory") == "/var/spool/mqueue"
    assert config.option("HelpFile") == str(DEFAULT_HELPFILE)
    assert config.mailbox_dir == "/var/mail"
    assert config.smart_host is None and config.relay_domains == set()
    assert "127.0.0.1:25" in (config.startup_note or "")


def test_embedded_default_as_a_user_lives_in_the_state_dir(tmp_path: Path) -> None:
    environment = DefaultEnvironment.current({"XDG_STATE_HOME": str(tmp_path)}, euid=1000)
    config = translate(None, hostname=HOST, default_environment=environment)
    state = tmp_path / "pysendmail"
    assert config.state_dir == state
    assert [(d.addr, d.port) for d in config.daemons] == [("127.0.0.1", 2525)]
    assert config.option("QueueDirectory") == str(state / "mqueue")
    assert config.option("AliasFile") == (str(state / "aliases"),)
    assert config.mailbox_dir == str(state / "mail")
    assert str(state) in (config.startup_note or "")
    assert "127.0.0.1:2525" in (config.startup_note or "")


def test_state_dir_defaults_to_local_state_in_home(tmp_path: Path) -> None:
    environment = DefaultEnvironment.current({"HOME": str(tmp_path)}, euid=1000)
    assert environment.state_dir == tmp_path / ".local/state/pysendmail"


def test_command_line_wins_over_the_embedded_default_too(tmp_path: Path) -> None:
    environment = DefaultEnvironment(False, tmp_path)
    config = translate(
        None,
        Overrides(options={"DaemonPortOptions": "Addr=127.0.0.1, Port=3025"}),
        hostname=HOST,
        default_environment=environment,
    )
    assert [d.port for d in config.daemons] == [3025]


def test_resolve_cf_path(tmp_path: Path) -> None:
    assert resolve_cf_path(tmp_path / "x.cf") == str(tmp_path / "x.cf")
    expected = "/etc/mail/sendmail.cf" if Path("/etc/mail/sendmail.cf").exists() else None
    assert resolve_cf_path(None) == expected


def test_config_is_immutable(configs: Path) -> None:
    config = translate(configs / "office/office.cf", hostname=HOST)
    with pytest.raises(TypeError):
        config.options["MaxMessageSize"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.hostname = "x"  # type: ignore[misc]
