"""Quarantine (-Q, -qQ), lost items (-qL) and queue groups (-qG), run as this
checkout's `sendmail` on the office cf over messages it queued itself with -odq."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import command, subprocess_env
from tests.integration import cli_support

fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")

MESSAGE = b"From: root\nSubject: held\n\nbody\n"


class Queue:
    def __init__(self, oracle_dir: Path, tmp_path: Path) -> None:
        self.dir = tmp_path / "mqueue"
        self.dir.mkdir()
        self.cf = str(oracle_dir / "configs" / "office" / "office.cf")
        self.env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")

    def sendmail(self, *args: str, stdin: bytes = b"", argv0: str = "sendmail"):
        argv = ["-C", self.cf, "-O", f"QueueDirectory={self.dir}", *args]
        return subprocess.run(
            [*command(argv0), *argv],
            input=stdin,
            capture_output=True,
            env=self.env,
            timeout=120,
        )

    def submit(self, rcpt: str) -> str:
        before = set(self.files("qf"))
        assert self.sendmail("-odq", rcpt, stdin=MESSAGE).returncode == 0
        [qid] = set(self.files("qf")) - before
        return qid

    def files(self, prefix: str) -> list[str]:
        return sorted(p.name[2:] for p in self.dir.iterdir() if p.name.startswith(prefix))

    def listed(self, *args: str) -> str:
        result = self.sendmail("-bp", *args)
        assert result.returncode == 0
        return result.stdout.decode()


@pytest.fixture
def queue(oracle_dir: Path, tmp_path: Path) -> Queue:
    return Queue(oracle_dir, tmp_path)


def test_quarantine_hides_an_item_from_runs_and_release_restores_it(queue: Queue) -> None:
    held = queue.submit("alice")
    other = queue.submit("bob")
    original = (queue.dir / f"qf{held}").read_bytes()

    result = queue.sendmail("-Q", "spam suspect", f"-qI{held}", "-v")
    assert result.stdout.decode() == (
        f'Processing {queue.dir}:\n{held}: Quarantined with "spam suspect"\n1 change\n'
    )
    assert (queue.files("qf"), queue.files("hf")) == ([other], [held])
    hf = (queue.dir / f"hf{held}").read_bytes()
    assert b"\nqspam suspect\nS" in hf
    assert hf.replace(b"qspam suspect\n", b"") == original

    assert held not in queue.listed()
    quarantined = queue.listed("-qQ")
    assert f"{held} " in quarantined and other not in quarantined
    assert "\n    QUARANTINE: spam suspect\n" in quarantined

    # A normal run never touches a quarantined item.
    assert queue.sendmail("-q").returncode == 0
    assert (queue.files("qf"), queue.files("hf")) == ([], [held])

    released = queue.sendmail("-qQ", "-Q", "-v")
    assert released.stdout.decode() == (
        f'Processing {queue.dir}:\n{held}: Removed quarantine of "spam suspect"\n1 change\n'
    )
    assert (queue.dir / f"qf{held}").read_bytes() == original
    assert queue.files("hf") == []


def test_reason_limits_and_changes(queue: Queue) -> None:
    first, second = queue.submit("alice"), queue.submit("bob")
    queue.sendmail("-Q", "virus", f"-qI{first}")
    queue.sendmail("-Q", "spam", f"-qI{second}")
    only_virus = queue.listed("-qQvir")
    assert first in only_virus and second not in only_virus
    not_virus = queue.listed("-q!Qvir")
    assert second in not_virus and first not in not_virus

    changed = queue.sendmail("-qQspam", "-Q", "bulk", "-v").stdout.decode()
    assert f'{second}: Quarantine changed from "spam" to "bulk"\n' in changed
    same = queue.sendmail("-qQbulk", "-Q", "bulk", "-v").stdout.decode()
    assert same.endswith(f'{second}: Already quarantined with "bulk"\nNo changes\n')
    nothing = queue.sendmail("-qQnone", "-Q", "-v").stdout.decode()
    assert nothing == f"{queue.dir}: no matches\nNo changes\n"


def test_lost_items_are_listed_with_a_question_mark(queue: Queue) -> None:
    qid = queue.submit("alice")
    (queue.dir / f"qf{qid}").rename(queue.dir / f"Qf{qid}")
    assert "is empty" in queue.listed()
    lost = queue.listed("-qL")
    assert re.search(rf"^{qid}\? +\d+ ", lost, re.M)
    refused = queue.sendmail("-qL", "-Q", "x")
    assert (refused.stdout, refused.returncode) == (b"Can not use -Q with -qL\n", 64)


def test_queue_groups(queue: Queue) -> None:
    qid = queue.submit("alice")
    whole = queue.listed()
    group = queue.listed("-qGmqueue")
    assert whole.startswith(group) and whole[len(group) :] == "\t\tTotal requests: 1\n"
    assert qid in group
    unknown = queue.sendmail("-qGbulk")
    assert (unknown.stdout, unknown.returncode) == (b"Queue group bulk unknown\n", 0)
    assert queue.files("qf") == [qid]  # nothing was run
    assert queue.sendmail("-qGmqueue").returncode == 0
    assert queue.files("qf") == []  # the default group was run


def test_Q_is_refused_with_other_modes(queue: Queue) -> None:
    result = queue.sendmail("-bp", "-Q", "reason")
    assert (result.stdout, result.returncode) == (b"Can not use -Q with -bp\n", 64)


@pytest.fixture
def boxes(oracle_dir: Path):
    path = oracle_dir / "configs" / "office" / "mailboxes"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_qQ_run_delivers_quarantined_items_and_keeps_the_deferred_ones(
    queue: Queue, boxes: Path
) -> None:
    local = queue.submit("alice")
    remote = queue.submit("user@remote.example.net")  # deferred: nothing leaves loopback
    normal = queue.submit("bob")
    queue.sendmail("-Q", "held", f"-qI{local}")
    queue.sendmail("-Q", "held", f"-qI{remote}")

    result = queue.sendmail("-qQ", "-v")
    assert result.returncode == 0
    assert f"Running {queue.dir}/{local} (sequence" in result.stdout.decode()
    assert "body" in (boxes / "alice").read_text()
    assert not (boxes / "bob").exists()  # -qQ runs only the quarantined items
    assert queue.files("hf") == [remote]
    assert b"\nqheld\n" in (queue.dir / f"hf{remote}").read_bytes()
    assert queue.files("qf") == [normal]


def test_qL_run_takes_back_a_lost_item_that_reads_again(queue: Queue, boxes: Path) -> None:
    qid = queue.submit("alice")
    (queue.dir / f"qf{qid}").rename(queue.dir / f"Qf{qid}")
    assert queue.sendmail("-q").returncode == 0
    assert queue.files("Qf") == [qid]  # a normal run leaves lost items alone
    assert queue.sendmail("-qL").returncode == 0
    assert queue.files("Qf") == [] and queue.files("qf") == []
    assert "body" in (boxes / "alice").read_text()
