"""The installed command (cli.main.main() without argv) ends a finished submission with
os._exit: what it printed is flushed, the queue files are there, the exit status is the
submission's, and the interpreter's teardown (atexit handlers included) is skipped. A
caller that passes argv, and an -odi submission, get the ordinary return."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env

DEFAULT_CF = Path(__file__).resolve().parents[2] / "pysendmail" / "config" / "default.cf"
MESSAGE = b"To: nosuchuser-zz9, bob@example.com\nSubject: s\n\nbody\n"


def run(
    tmp_path: Path, entry: str, *flags: str, message: bytes = MESSAGE
) -> subprocess.CompletedProcess:
    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700, exist_ok=True)
    (tmp_path / "aliases").write_text('postmaster: root\nsink: "|/bin/cat > /dev/null"\n')
    code = (
        "import atexit, sys; atexit.register(lambda: print('teardown ran')); "
        f"sys.argv[0] = 'sendmail'; from pysendmail.cli.main import main; sys.exit({entry})"
    )
    options = ["-C", str(DEFAULT_CF), "-O", f"QueueDirectory={queue}"]
    options += ["-O", f"AliasFile={tmp_path / 'aliases'}"]
    return subprocess.run(
        [sys.executable, "-c", code, *options, *flags, "-t", "-i"],
        input=message,
        capture_output=True,
        env=subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache")),
        timeout=60,
    )


def queued(tmp_path: Path) -> list[str]:
    return sorted(p.name[:2] for p in (tmp_path / "mqueue").iterdir())


@pytest.mark.parametrize(
    ("mode", "status", "printed"),
    [
        ("-odq", 67, b"nosuchuser-zz9... User unknown\n"),  # users checked before queueing
        ("-odd", 0, b""),  # DeliveryMode=defer: every lookup left to the queue run
    ],
)
def test_the_installed_command_ends_a_submission_at_once(
    tmp_path: Path, mode: str, status: int, printed: bytes
) -> None:
    done = run(tmp_path, "main()", mode)
    assert (done.returncode, done.stdout, done.stderr) == (status, printed, b"")
    assert "qf" in queued(tmp_path)  # the message durable before the exit


def test_an_interactive_delivery_ends_the_ordinary_way(tmp_path: Path) -> None:
    # A program alias: the attempt stays on this machine (no mailbox, no network).
    message = b"To: sink\nSubject: s\n\nbody\n"
    done = run(tmp_path, "main()", "-odi", "-oeq", message=message)  # -oeq: no dead.letter
    # Whatever the attempt's outcome (the program runs as DefaultUser, who may not reach
    # the test's directory), the process ended through the interpreter's teardown.
    assert done.stdout == b"teardown ran\n", done.stderr


def test_a_caller_with_argv_gets_the_ordinary_return(tmp_path: Path) -> None:
    done = run(tmp_path, "main(sys.argv)", "-odq")
    assert done.returncode == 67
    assert done.stdout == b"nosuchuser-zz9... User unknown\nteardown ran\n"
    assert queued(tmp_path).count("qf") == 2  # the message and the report of the refusal
