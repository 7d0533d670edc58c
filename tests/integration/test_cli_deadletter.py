"""dead.letter: what `sendmail -odi` does with a message whose delivery failed, by
ErrorMode, run as this checkout's `sendmail` on the recorded case
submit_odi_unknown_host (a domain in neither the hosts file nor DNS: exit 68).

The record saves the message in root's home (/root/dead.letter, root's home directory in
the password file); these tests keep whatever file is there and put it back after.
"""

from __future__ import annotations

import pwd
import re
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


@pytest.fixture
def root_dead_letter(tmp_path: Path) -> Iterator[Path]:
    path = Path(pwd.getpwuid(0).pw_dir) / "dead.letter"
    kept = tmp_path / "kept-dead.letter"
    if path.exists():
        shutil.move(path, kept)
    yield path
    path.unlink(missing_ok=True)
    if kept.exists():
        shutil.move(kept, path)


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
    oracle_dir: Path, tmp_path: Path, root_dead_letter: Path
) -> None:
    case = cli_case(oracle_dir, "submit_odi_unknown_host")
    result, queue = run(oracle_dir, tmp_path)
    want_stdout = case["stdout"].replace("/root/", f"{root_dead_letter.parent}/")
    assert result.stdout.decode() == want_stdout
    assert (result.stderr, result.returncode) == (b"", case["exit_code"])
    assert list(queue.iterdir()) == []  # saved, so neither queued nor reported
    got = root_dead_letter.read_text()
    want = case["collected_files"]["/root/dead.letter"]
    qid = re.search(r" id (\w+)\n", got).group(1)
    want_qid = re.search(r" id (\w+)\n", want).group(1)
    from_line = re.compile(r"^From root \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n")
    assert from_line.match(got) and from_line.match(want)
    assert mask(from_line.sub("", got), qid) == mask(from_line.sub("", want), want_qid)
    assert got.endswith("line two\n\n")


def test_second_failure_appends_to_dead_letter(
    oracle_dir: Path, tmp_path: Path, root_dead_letter: Path
) -> None:
    run(oracle_dir, tmp_path)
    run(oracle_dir, tmp_path)
    assert root_dead_letter.read_text().count("\nFrom root ") == 1  # the second From_ line
    assert root_dead_letter.stat().st_mode & 0o077 == 0


def test_oem_mails_the_report_instead(
    oracle_dir: Path, tmp_path: Path, root_dead_letter: Path, boxes: Path
) -> None:
    result, queue = run(oracle_dir, tmp_path, "-oem")
    assert (result.stdout, result.returncode) == (b"", 68)
    assert not root_dead_letter.exists()
    report = (boxes / "alice").read_text()  # root's mail goes to alice (aliases)
    assert "Subject: Returned mail: see transcript for details" in report
    assert "user@nodns.example.net" in report
    assert list(queue.iterdir()) == []


def test_oeq_returns_nothing(
    oracle_dir: Path, tmp_path: Path, root_dead_letter: Path, boxes: Path
) -> None:
    result, queue = run(oracle_dir, tmp_path, "-oeq")
    assert (result.stdout, result.returncode) == (b"", 68)
    assert not root_dead_letter.exists()
    assert list(boxes.iterdir()) == []
    assert list(queue.iterdir()) == []


def test_sender_without_home_gets_the_report_mailed(
    oracle_dir: Path, tmp_path: Path, root_dead_letter: Path, boxes: Path
) -> None:
    # bob exists but has no home directory (useradd -M): sendmail mails the report.
    assert not Path(pwd.getpwnam("bob").pw_dir).is_dir()
    result, _ = run(oracle_dir, tmp_path, "-f", "bob")
    assert (result.stdout, result.returncode) == (b"", 68)
    assert not root_dead_letter.exists()
    assert "Returned mail: see transcript for details" in (boxes / "bob").read_text()
