"""pysendmail-cf: translate, check, options, install-links, passwd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pysendmail import passwd
from pysendmail.cli.cftool import LINK_NAMES, main
from tests.conftest import subprocess_env

HOST = "mail.example.com"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_translate_prints_the_routing_facts(oracle_dir: Path, capsys) -> None:
    cf = oracle_dir / "configs/office/office_smarthost.cf"
    status, out, err = run(capsys, "translate", "-C", str(cf), "--hostname", HOST)
    assert (status, err) == (0, "")
    assert "smart host (DS)      relay:[smarthost.example.net]" in out
    assert "masquerade as (DM)   example.com" in out
    assert "relay domains (R)    partner.example.org relayed.example.net" in out
    assert "  MTA          inet   127.0.0.1:2601" in out
    assert "  MaxMessageSize = 100000" in out


def test_translate_json(oracle_dir: Path, capsys) -> None:
    cf = oracle_dir / "configs/debian/debian.cf"
    status, out, _ = run(capsys, "translate", "-C", str(cf), "--hostname", HOST, "--json")
    data = json.loads(out)
    assert status == 0
    assert data["hostname"] == HOST
    assert [(d["name"], d["port"], d["modifiers"]) for d in data["daemons"]] == [
        ("MTA-v4", 2603, ""),
        ("MSP-v4", 2604, "Ea"),
    ]
    assert data["options"]["PrivacyOptions"][0] == "needmailhelo"
    assert data["maps"]["access"]["class"] == "hash"
    assert data["diagnostics"] == []


def test_check_of_a_good_cf_says_nothing(oracle_dir: Path, capsys) -> None:
    cf = oracle_dir / "configs/nullclient/nullclient.cf"
    assert run(capsys, "check", "-C", str(cf), "--hostname", HOST, "--no-tables") == (0, "", "")
    # Debian's stock cf with its stock access file (bare `GreetPause:` default entries)
    # and aliases: nothing to say either.
    cf = oracle_dir / "configs/debian/debian.cf"
    assert run(capsys, "check", "-C", str(cf), "--hostname", HOST) == (0, "", "")


def test_check_prints_file_line_col_and_exits_78_on_an_error(tmp_path: Path, capsys) -> None:
    cf = tmp_path / "broken.cf"
    cf.write_text("V10/Berkeley\nO NoSuch=1\nR$* no tab\n")
    status, out, _ = run(capsys, "check", "-C", str(cf), "--hostname", HOST, "--no-tables")
    assert status == 78
    assert out.splitlines() == [
        f"{cf}:2:3: warning: unknown option NoSuch ignored",
        f"{cf}:3:1: error: bad rewriting rule: tab expected between left and right side",
    ]


def test_check_with_warnings_only_exits_0(tmp_path: Path, capsys) -> None:
    cf = tmp_path / "warn.cf"
    cf.write_text("V10/Berkeley\nO NoSuch=1\n")
    status, out, _ = run(capsys, "check", "-C", str(cf), "--hostname", HOST)
    assert status == 0 and "warning" in out


def test_check_tables_reads_the_alias_files_the_cf_names(tmp_path: Path, capsys) -> None:
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster: root\nthis line has no colon\n")
    cf = tmp_path / "aliased.cf"
    cf.write_text(f"V10/Berkeley\nO AliasFile={aliases}\n")
    assert run(capsys, "check", "-C", str(cf), "--hostname", HOST, "--no-tables") == (0, "", "")
    status, out, _ = run(capsys, "check", "-C", str(cf), "--hostname", HOST)
    assert status == 78
    assert out.splitlines() == [f"{aliases}:2:23: error: missing colon"]


def test_check_of_a_missing_cf_exits_78(tmp_path: Path, capsys) -> None:
    status, _, err = run(capsys, "check", "-C", str(tmp_path / "none.cf"))
    assert status == 78
    assert f"{tmp_path / 'none.cf'}:0:0: cannot open" in err


def test_check_exit_status_through_the_console_script(tmp_path: Path) -> None:
    cf = tmp_path / "broken.cf"
    cf.write_text("V10/Berkeley\nZap\n")
    result = subprocess.run(
        [sys.executable, "-m", "pysendmail.cli.cftool", "check", "--no-tables", "-C", str(cf)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 78
    assert result.stdout == f"{cf}:2:1: error: unknown configuration line 'Zap'\n"


def test_options_lists_the_registry(capsys) -> None:
    status, out, _ = run(capsys, "options", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert status == 0
    assert rows["MaxHopCount"] == {
        "name": "MaxHopCount",
        "letter": "h",
        "type": "int",
        "default": 25,
        "doc": rows["MaxHopCount"]["doc"],
    }
    assert rows["Timeout.queuereturn"]["default"] == 432000


def test_install_links_makes_every_link(tmp_path: Path, capsys) -> None:
    program = tmp_path / "bin/pysendmail"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    target = tmp_path / "sbin"
    target.mkdir()
    status, out, _ = run(capsys, "install-links", str(target), "--program", str(program))
    assert status == 0
    for name in LINK_NAMES:
        assert os.readlink(target / name) == str(program)
    assert f"{target / 'sendmail'}: linked to {program}" in out
    # A second run changes nothing and says so.
    status, out, _ = run(capsys, "install-links", str(target), "--program", str(program))
    assert status == 0 and "already a link" in out


def test_install_links_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    target = tmp_path / "sbin"
    target.mkdir()
    (target / "sendmail").write_text("the real sendmail\n")
    (target / "mailq").symlink_to("/usr/lib/sm.bin/sendmail")
    program = str(tmp_path / "pysendmail")
    status, _, err = run(capsys, "install-links", str(target), "--program", program)
    assert status == 73
    assert f"{target / 'sendmail'} exists (a file); not replaced (use --force)" in err
    assert "a link to /usr/lib/sm.bin/sendmail" in err
    assert (target / "sendmail").read_text() == "the real sendmail\n"
    assert os.readlink(target / "newaliases") == program  # the free names are linked

    status, out, _ = run(capsys, "install-links", str(target), "--program", program, "--force")
    assert status == 0
    assert f"{target / 'sendmail'}: replaced a file with a link to {program}" in out
    assert f"{target / 'mailq'}: replaced a link to /usr/lib/sm.bin/sendmail" in out
    assert os.readlink(target / "sendmail") == program


def test_passwd_reads_one_line_of_stdin(tmp_path: Path) -> None:
    cf = tmp_path / "sendmail.cf"
    cf.write_text("V10/Berkeley\n")
    result = subprocess.run(
        [sys.executable, "-m", "pysendmail.cli.cftool", "passwd", "alice", "-C", str(cf)],
        env=subprocess_env(),
        input="open sesame\nignored second line\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path / "pysendmail.passwd"
    assert result.stdout == f"password of alice set in {path}\n"
    assert passwd.verify("alice", "open sesame", path=path)


def test_passwd_refuses_an_empty_password_and_a_bad_name(tmp_path: Path) -> None:
    cf = tmp_path / "sendmail.cf"
    cf.write_text("V10/Berkeley\n")
    base = [sys.executable, "-m", "pysendmail.cli.cftool", "passwd"]
    empty = subprocess.run(
        [*base, "alice", "-C", str(cf)], env=subprocess_env(), input=b"\n", capture_output=True
    )
    bad = subprocess.run(
        [*base, "a:b", "-C", str(cf)], env=subprocess_env(), input=b"x\n", capture_output=True
    )
    assert (empty.returncode, bad.returncode) == (65, 64)
    assert not (tmp_path / "pysendmail.passwd").exists()
