"""The sendmail command's refusals and its dispatch, run as a real subprocess."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import command, subprocess_env


def run(argv0: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(
        [*command(argv0), *args], input=stdin, capture_output=True, env=subprocess_env(), timeout=60
    )


def test_unknown_mode_message_on_stdout_exit_64():
    res = run("/usr/sbin/sendmail", "-bx")
    assert (res.stdout, res.stderr, res.returncode) == (b"Invalid operation mode x\n", b"", 64)


def test_unknown_flag_is_getopts_message_on_stderr():
    res = run("/usr/sbin/sendmail", "-z", "alice")
    assert res.stderr == b"/usr/sbin/sendmail: invalid option -- 'z'\n"
    assert res.returncode == 64


@pytest.mark.parametrize(
    "args",
    [
        ("-oi", "--", "-oQ/tmp/x", "alice"),
        ("alice", "-X/tmp/shell.php"),
    ],
)
def test_recipient_that_looks_like_a_flag_is_refused(args):
    res = run("sendmail", *args, stdin=b"Subject: x\n\nbody\n")
    assert res.returncode == 64
    assert b"Recipient address may not begin with '-'" in res.stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("-f", "a@b\r\nRCPT TO:<x>", "alice"), b"-f: sender address may not contain CR or LF"),
        (("-F", "Joe\nBcc: x", "alice"), b"-F: full name may not contain CR or LF"),
        (("alice\nbob",), b"alice\\nbob... Recipient address may not contain CR or LF"),
    ],
)
def test_line_breaks_in_sender_name_or_recipient_are_refused(args, text):
    res = run("sendmail", *args, stdin=b"Subject: x\n\nbody\n")
    assert res.returncode == 64
    assert text in res.stdout


def test_a_mode_this_version_lacks_says_so_and_exits_69():
    # -ba (ARPANET FTP mode) is not implemented by pysendmail: never a fake success.
    res = run("sendmail", "-ba")
    assert res.returncode == 69
    assert b"not available" in res.stderr
    assert res.stdout == b""


def test_closed_standard_descriptors_are_filled_as_sendmail_fills_them(tmp_path):
    """GNU mailutils' mail runs sendmail with its standard output closed: the message is
    queued, nothing is printed into a queue file, and the exit status is 0."""
    import os

    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700)
    (tmp_path / "aliases").write_text("postmaster: root\n")
    argv = [*command("sendmail"), "-O", f"QueueDirectory={queue}"]
    argv += ["-O", f"AliasFile={tmp_path / 'aliases'}", "-odq", "-v", "-t", "-i"]

    def close_output() -> None:
        os.close(1)
        os.close(2)

    message = b"From: root\nTo: root\nSubject: closed\n\nbody\n"
    result = subprocess.run(
        argv,
        input=message,
        env=subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
        preexec_fn=close_output,
        timeout=60,
    )
    assert result.returncode == 0
    [qf] = queue.glob("qf*")
    assert qf.read_bytes().endswith(b"\n.\n")
    assert (queue / f"df{qf.name[2:]}").read_bytes() == b"body\n"
