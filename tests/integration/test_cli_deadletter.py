"""dead.letter: what `sendmail -odi` does with a message whose delivery failed, by
ErrorMode, run as this checkout's `sendmail` on the recorded case
submit_odi_unknown_host (a domain in neither the hosts file nor DNS: exit 68).

The record saves root's message in root's home. These tests give the message a sender
of their own instead (`-f`, as root may): a user made for the module with useradd, whose
home is a fresh temporary directory, so that no file outside the test's directories is
written and test suites running side by side do not meet.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import cli_case, command, subprocess_env
from tests.integration import cli_support
from tests.integration.test_cli_submit_fixtures import mask

fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")


@pytest.fixture(scope="module")
def sender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(name, home) of a user made for these tests (CI runs as root)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to make a user with a home of its own")
    home = tmp_path_factory.mktemp("home")
    name = f"pysdl{secrets.token_hex(4)}"
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/usr/sbin/nologin", name], check=True)
    try:
        yield name, home
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def boxes(oracle_dir: Path) -> Iterator[Path]:
    path = oracle_dir / "configs" / "office" / "mailboxes"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(oracle_dir: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    case = cli_case(oracle_dir, "submit_odi_unknown_host")
    argv = list(case["argv"])
    queue = Path(next(a for a in argv if a.startswith("QueueDirectory=")).split("=", 1)[1])
    shutil.rmtree(queue, ignore_errors=True)
    queue.mkdir(parents=True)
    argv[-1:-1] = list(extra)
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    result = subprocess.run(
        [*command(argv[0]), *argv[1:]],
        input=case["stdin"].encode(),
        capture_output=True,
        env=env,
        timeout=120,
    )
    return result, queue


def test_failed_odi_message_is_saved_in_senders_dead_letter(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path]
) -> None:
    name, home = sender
    dead_letter = home / "dead.letter"
    case = cli_case(oracle_dir, "submit_odi_unknown_host")
    result, queue = run(oracle_dir, tmp_path, "-f", name)
    want_stdout = case["stdout"].replace("/root/", f"{home}/")
    assert result.stdout.decode() == want_stdout
    assert (result.stderr, result.returncode) == (b"", case["exit_code"])
    assert list(queue.iterdir()) == []  # saved, so neither queued nor reported
    got = dead_letter.read_text()
    # The record's sender was root; here it is `name` (the caller is root in both).
    want = case["collected_files"]["/root/dead.letter"]
    want = want.replace("From root ", f"From {name} ", 1)
    want = want.replace("Return-Path: <root>", f"Return-Path: <{name}>")
    qid = re.search(r" id (\w+)\n", got).group(1)
    want_qid = re.search(r" id (\w+)\n", want).group(1)
    from_line = re.compile(rf"^From {name} \w{{3}} \w{{3}} [ \d]\d \d\d:\d\d:\d\d \d{{4}}\n")
    assert from_line.match(got) and from_line.match(want)
    assert mask(from_line.sub("", got), qid) == mask(from_line.sub("", want), want_qid)
    assert got.endswith("line two\n\n")
    dead_letter.unlink()


def test_second_failure_appends_to_dead_letter(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path]
) -> None:
    name, home = sender
    run(oracle_dir, tmp_path, "-f", name)
    run(oracle_dir, tmp_path, "-f", name)
    dead_letter = home / "dead.letter"
    assert dead_letter.read_text().count(f"\nFrom {name} ") == 1  # the second From_ line
    assert dead_letter.stat().st_mode & 0o077 == 0
    dead_letter.unlink()


def test_oem_mails_the_report_instead(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path], boxes: Path
) -> None:
    name, home = sender
    result, queue = run(oracle_dir, tmp_path, "-oem", "-f", name)
    assert (result.stdout, result.returncode) == (b"", 68)
    assert not (home / "dead.letter").exists()
    report = (boxes / name).read_text()
    assert "Subject: Returned mail: see transcript for details" in report
    assert "user@nodns.example.net" in report
    assert list(queue.iterdir()) == []


def test_oeq_returns_nothing(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path], boxes: Path
) -> None:
    name, home = sender
    result, queue = run(oracle_dir, tmp_path, "-oeq", "-f", name)
    assert (result.stdout, result.returncode) == (b"", 68)
    assert not (home / "dead.letter").exists()
    assert list(boxes.iterdir()) == []
    assert list(queue.iterdir()) == []


def test_sender_without_home_gets_the_report_mailed(
    oracle_dir: Path, tmp_path: Path, boxes: Path
) -> None:
    # bob exists but has no home directory (useradd -M): sendmail mails the report.
    assert not Path(pwd.getpwnam("bob").pw_dir).is_dir()
    result, _ = run(oracle_dir, tmp_path, "-f", "bob")
    assert (result.stdout, result.returncode) == (b"", 68)
    assert "Returned mail: see transcript for details" in (boxes / "bob").read_text()
