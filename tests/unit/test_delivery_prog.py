"""prog.py: program mailers run with argv only, a cleared environment, the controlling
user's identity (never root), a timeout, and sendmail's exit-code mapping."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pysendmail.config.model import MailerSpec
from pysendmail.delivery.message import OutgoingMessage
from pysendmail.delivery.prog import (
    ProgramSettings,
    ProgramTarget,
    RunIdentity,
    deliver_prog,
    expand_argv,
    mailer_environment,
    run_mailer,
)
from pysendmail.delivery.result import Outcome
from pysendmail.envelope import ControllingUser
from pysendmail.errors import Location
from tests.delivery_support import IS_ROOT, NOBODY_UID, make_config, world_enterable_dir

MESSAGE = OutgoingMessage.from_bytes(
    "<alice@example.com>", b"Subject: hi\nFrom: a@example.com\n\nFrom here\nline two\n"
)
HERE = Location("test.cf", 1)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    with world_enterable_dir() as path:
        yield path


def settings(timeout: float = 30.0, **env: str) -> ProgramSettings:
    return ProgramSettings(timeout=timeout, environment={"AGENT": "sendmail", **env})


def nobody() -> ControllingUser:
    return ControllingUser("nobody", NOBODY_UID, NOBODY_UID)


def test_pipe_target_gets_the_message_with_a_unix_from_line(open_dir: Path) -> None:
    out = open_dir / "out"
    result = deliver_prog(MESSAGE, f"|cat > {out}", "|cat", nobody(), settings())
    assert result.outcome is Outcome.SENT, result
    data = out.read_bytes()
    # the prog mailer has no F=n (so a From line) and no F=E (no escaping), like sendmail
    assert data.startswith(b"From alice@example.com ")
    assert data.split(b"\n", 1)[1] == b"Subject: hi\nFrom: a@example.com\n\nFrom here\nline two\n"


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_program_runs_as_the_controlling_user(open_dir: Path) -> None:
    out = open_dir / "id"
    deliver_prog(MESSAGE, f"id -u > {out}; id -G >> {out}", "r", nobody(), settings())
    uid, groups = out.read_text().split("\n")[:2]
    assert int(uid) == NOBODY_UID
    assert "0" not in groups.split()


@pytest.mark.skipif(not IS_ROOT, reason="switching uid needs root")
def test_root_controlled_program_runs_as_the_default_user_not_root(open_dir: Path) -> None:
    out = open_dir / "id"
    root = ControllingUser("root", 0, 0)
    default = RunIdentity("nobody", NOBODY_UID, NOBODY_UID, "/")
    config = ProgramSettings(environment={"AGENT": "sendmail"}, default_user=default)
    result = deliver_prog(MESSAGE, f"id -u > {out}", "r", root, config)
    assert result.is_success
    assert int(out.read_text()) == NOBODY_UID
    assert deliver_prog(MESSAGE, f"id -u > {out}", "r", None, config).is_success
    assert int(out.read_text()) == NOBODY_UID


def test_environment_is_cleared(open_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("IFS", "x")
    out = open_dir / "env"
    deliver_prog(MESSAGE, f"/usr/bin/env > {out}", "r", nobody(), settings(TZ="UTC"))
    names = {line.split("=", 1)[0] for line in out.read_text().splitlines()}
    # the shell itself may add PWD, SHLVL, OLDPWD and _; nothing else of ours passes
    assert names - {"PWD", "SHLVL", "OLDPWD", "_"} == {"AGENT", "TZ"}


def test_environment_from_config_timezone_and_e_lines() -> None:
    parent = {"TZ": "Europe/Paris", "HOME": "/root", "KEEP": "kept"}
    config = make_config({"TimeZoneSpec": "PST8PDT"}, e_lines=("FOO=bar", "KEEP", "EMPTY="))
    assert mailer_environment(config, parent) == {
        "AGENT": "sendmail",
        "TZ": "PST8PDT",
        "FOO": "bar",
        "KEEP": "kept",
        "EMPTY": "",
    }
    assert mailer_environment(make_config({"TimeZoneSpec": ""}), parent)["TZ"] == ("Europe/Paris")
    assert "TZ" not in mailer_environment(make_config({}), parent)


@pytest.mark.parametrize(
    ("code", "outcome", "status"),
    [
        (0, Outcome.SENT, "2.0.0"),
        (75, Outcome.DEFERRED, "4.0.0"),
        (67, Outcome.BOUNCED, "5.1.1"),
        (68, Outcome.BOUNCED, "5.1.2"),
        (1, Outcome.BOUNCED, "5.3.0"),
    ],
)
def test_exit_status_maps_through_sysexits(code: int, outcome: Outcome, status: str) -> None:
    result = deliver_prog(MESSAGE, f"echo reason {code}; exit {code}", "r", nobody(), settings())
    assert (result.outcome, result.status) == (outcome, status)
    assert result.mailer == "prog"
    if code:
        assert result.diagnostic_code == f"X-Unix; reason {code}"


def test_hanging_program_is_killed_and_deferred(open_dir: Path) -> None:
    pidfile = open_dir / "pid"
    command = f"sleep 60 & echo $! > {pidfile}; wait"
    result = deliver_prog(MESSAGE, command, "r", nobody(), settings(timeout=0.5))
    assert result.outcome is Outcome.DEFERRED
    assert result.status == "4.4.1"
    child = int(pidfile.read_text())
    for _ in range(100):  # the whole process group got SIGKILL: the sleep dies too
        if not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the program's child survived the timeout")


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def test_program_that_does_not_read_its_input_is_judged_by_its_exit() -> None:
    big = OutgoingMessage("a@b", b"Subject: big\n", b"x" * 5_000_000)
    assert deliver_prog(big, "exit 0", "r", nobody(), settings()).is_success
    assert deliver_prog(big, "exit 75", "r", nobody(), settings()).is_temporary


def test_missing_program_bounces() -> None:
    spec = MailerSpec("odd", {"P": "/nonexistent/prog", "F": "n", "A": "prog $u"}, HERE)
    target = ProgramTarget("bob", "bob", controlling_user=nobody())
    [result] = run_mailer(MESSAGE, [target], spec, settings())
    assert result.is_permanent
    assert "Cannot exec prog" in result.text


def test_addresses_never_reach_a_shell(open_dir: Path) -> None:
    """A procmail-like mailer gets hostile sender and user strings as single argv words."""
    script = open_dir / "argv.sh"
    out = open_dir / "argv"
    script.write_text(
        '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$OUT"\ncat >/dev/null\n'
    )
    script.chmod(0o755)
    spec = MailerSpec(
        "procmail", {"P": str(script), "F": "SPhnu9", "A": "procmail -f $f -a $h $u"}, HERE
    )
    hostile_sender = '"x;touch /tmp/pwned-sender"@evil.example'
    hostile_user = "$(touch /tmp/pwned-user)`id`"
    message = OutgoingMessage(hostile_sender, b"Subject: x\n", b"body\n")
    target = ProgramTarget("r", hostile_user, host="h;ls", controlling_user=nobody())
    [result] = run_mailer(message, [target], spec, settings(OUT=str(out)))
    assert result.is_success, result
    assert out.read_text().splitlines() == ["-f", hostile_sender, "-a", "h;ls", hostile_user]
    assert not Path("/tmp/pwned-sender").exists()
    assert not Path("/tmp/pwned-user").exists()


def test_expand_argv_multi_recipient_word() -> None:
    assert expand_argv(["mail.local", "-f", "$f", "$u"], {"f": "a b"}, ["x", "y"]) == [
        "mail.local",
        "-f",
        "a b",
        "x",
        "y",
    ]
    assert expand_argv(["sh", "-c", "$u"], {}, ["echo $HOME; ls"]) == ["sh", "-c", "echo $HOME; ls"]


def test_f_m_mailer_runs_once_for_all_recipients(open_dir: Path) -> None:
    script = open_dir / "m.sh"
    script.write_text('#!/bin/sh\necho "$@" >> "$OUT"\ncat > /dev/null\n')
    script.chmod(0o755)
    out = open_dir / "runs"
    spec = MailerSpec("multi", {"P": str(script), "F": "mn", "A": "m -d $u"}, HERE)
    ctl = nobody()
    targets = [ProgramTarget(u, u, controlling_user=ctl) for u in ("alice", "bob")]
    results = run_mailer(MESSAGE, targets, spec, settings(OUT=str(out)))
    assert [r.is_success for r in results] == [True, True]
    assert out.read_text() == "-d alice bob\n"


def test_program_mailer_flags_shape_the_stream(open_dir: Path) -> None:
    out = open_dir / "stream"
    spec = MailerSpec(
        "shaped", {"P": "/bin/sh", "F": "nPE7", "E": "\\r\\n", "A": f"sh -c cat>{out}"}, HERE
    )
    message = OutgoingMessage.from_bytes("<s@x>", b"Subject: \xe9t\xe9\n\nFrom me\n")
    [result] = run_mailer(
        message, [ProgramTarget("r", "r", controlling_user=nobody())], spec, settings()
    )
    assert result.is_success
    assert out.read_bytes() == b"Return-Path: <s@x>\r\nSubject: iti\r\n\r\n>From me\r\n"
    assert os.stat(out).st_size == len(out.read_bytes())
