"""The sendmail command line as getopt and sendmail's own pre-pass read it."""

from __future__ import annotations

import pytest

from pysendmail.cli.options import ArgumentError, OptionSetting, parse_args, parse_duration


def parse(*args: str, program: str = "/usr/sbin/sendmail"):
    return parse_args([program, *args], environ={})


def test_default_mode_is_deliver_with_recipients():
    inv = parse("alice", "bob@example.com")
    assert inv.mode == "m"
    assert inv.recipients == ["alice", "bob@example.com"]


def test_clustered_flags_and_attached_values():
    inv = parse("-ti", "-fuser@example.com", "-FJoe User", "-odq")
    assert inv.read_recipients
    assert OptionSetting("i", None, "T") in inv.settings
    assert inv.sender == "user@example.com"
    assert inv.full_name == "Joe User"
    assert OptionSetting("d", None, "q") in inv.settings


def test_separate_values():
    inv = parse("-f", "bob", "-F", "Bob B", "-C", "/etc/x.cf", "-B", "8BITMIME", "carol")
    assert (inv.sender, inv.full_name, inv.config_file, inv.body_type) == (
        "bob",
        "Bob B",
        "/etc/x.cf",
        "8BITMIME",
    )
    assert inv.recipients == ["carol"]


def test_r_is_the_old_spelling_of_f_and_a_second_sender_is_an_error():
    assert parse("-r", "bob").sender_flag == "r"
    assert parse("-f", "a", "-f", "b").errors == ['More than one "from" person']


def test_double_dash_ends_options_mutt_style():
    inv = parse("-oem", "-oi", "--", "alice", "bob")
    assert inv.recipients == ["alice", "bob"]
    assert OptionSetting("e", None, "m") in inv.settings


def test_options_stop_at_first_operand():
    inv = parse("alice", "-t")
    assert not inv.read_recipients
    assert inv.recipients == ["alice", "-t"]


def test_unknown_flag_is_getopts_message():
    with pytest.raises(ArgumentError, match=r"^/usr/sbin/sendmail: invalid option -- 'z'$"):
        parse("-z")


def test_missing_value_is_getopts_message():
    with pytest.raises(ArgumentError, match="option requires an argument -- 'f'"):
        parse("-f")


def test_invalid_and_frozen_modes():
    assert parse("-bx").errors == ["Invalid operation mode x"]
    assert parse("-bz").errors == ["Frozen configurations unsupported"]


def test_last_mode_wins():
    assert parse("-bv", "-bp").mode == "p"


@pytest.mark.parametrize(
    ("argv0", "mode"),
    [
        ("/usr/bin/newaliases", "i"),
        ("mailq", "p"),
        ("/usr/sbin/hoststat", "h"),
        ("purgestat", "H"),
        ("/usr/lib/sendmail", "m"),
    ],
)
def test_argv0_personalities(argv0, mode):
    assert parse(program=argv0).mode == mode


def test_bare_q_runs_once_and_takes_no_operand_starting_with_dash():
    inv = parse("-q", "-v")
    assert inv.mode == "q"
    assert inv.queue_run is not None and inv.queue_run.interval is None
    assert inv.verbose


def test_q_interval_and_limits():
    inv = parse("-q30m")
    assert inv.queue_run.interval == "30m"
    inv = parse("-qRalice", "-q!Ifoo", "-qSbob", "-qQspam")
    run = inv.queue_run
    assert run.recipients == [("alice", False)]
    assert run.ids == [("foo", True)]
    assert run.senders == [("bob", False)]
    assert run.quarantine_reasons == [("spam", False)]


def test_bad_q_interval():
    assert parse("-qxyz").errors == ["Invalid time unit `xyz'"]


def test_q_with_incompatible_mode():
    assert parse("-bv", "-q").errors == ["Can not use -q with -bv"]
    assert parse("-bp", "-q").mode == "p"


def test_bare_C_means_sendmail_cf_and_bare_d_all_categories():
    inv = parse("-C", "-d")
    assert inv.config_file == "sendmail.cf"
    assert inv.debug_flags == ["0-99.1"]


def test_d_never_takes_the_next_word():
    inv = parse("-d", "0.1")
    assert inv.debug_flags == ["0-99.1"]
    assert inv.recipients == ["0.1"]


def test_debug_levels_ignore_malformed_flags():
    inv = parse("-d0.1", "-dxyz", "-d8-9.4,21")
    assert inv.debug_levels() == {0: 1, 8: 4, 9: 4, 21: 1}


def test_o_and_O_settings_keep_their_order():
    inv = parse("-oQ/var/q", "-O", "QueueDirectory=/other", "-oZ")
    assert inv.settings == [
        OptionSetting("Q", None, "/var/q"),
        OptionSetting(None, "QueueDirectory", "/other"),
        OptionSetting("Z", None, ""),
    ]


def test_M_and_p_define_macros():
    inv = parse("-Mrsmtp", "-M{client_addr}10.0.0.1", "-p", "ESMTP:client.example.net")
    assert inv.macros == {"r": "ESMTP", "client_addr": "10.0.0.1", "s": "client.example.net"}


def test_dsn_flags():
    inv = parse("-N", "success,failure", "-R", "hdrs", "-V", "envid-42")
    assert (inv.notify, inv.ret, inv.envid) == ("success,failure", "hdrs", "envid-42")
    assert inv.errors == []
    assert parse("-N", "sometimes").errors == ["Invalid -N argument"]
    assert parse("-R", "most").errors == ["Invalid -R value"]
    assert parse("-V", "a=b").errors == ["Invalid syntax in -V flag"]
    assert parse("-R", "full", "-R", "hdrs").errors == ["Duplicate -R flag"]


def test_hop_count():
    assert parse("-h", "17").hop_count == 17
    assert parse("-h", "x").errors == ["Bad hop count (x)"]


def test_Q_dot_refused():
    with pytest.raises(ArgumentError):
        parse("-Q.")


def test_full_name_from_environment_unless_given():
    assert parse_args(["sendmail"], environ={"NAME": "Env Name"}).full_name == "Env Name"
    assert parse_args(["sendmail", "-FX"], environ={"NAME": "Env Name"}).full_name == "X"


def test_gateway_flag_sets_daemon_flags():
    assert parse().daemon_flags == "c u"
    assert parse("-G").daemon_flags == "CC f"


def test_parse_duration():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("15") == 900
    assert parse_duration("2x") is None
