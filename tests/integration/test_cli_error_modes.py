"""-oew and -oee as sendmail 8.17 does them, run as this checkout's `sendmail` on the
recorded case submit_odi_unknown_host (a domain in neither the hosts file nor DNS).

-oew (savemail's ESM_REPORT): the errors go to the caller's terminal when ttypath()
finds one (standard error's, else output's, else input's), others may write it (`mesg
y`) and the user is logged in there (getlogin()); the message is then saved in
~/dead.letter. Without such a terminal the report is mailed (ESM_MAIL). The terminal
here is a real pseudo-terminal; "logged in" is the child's audit login uid, which is
what glibc's getlogin() reads first.

-oee (EM_BERKNET): the report is mailed and the exit status is 0 whatever happened
(finis()). Both hold the errors sendmail would otherwise print (HoldErrs).
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_case, command, subprocess_env
from tests.integration import cli_support
from tests.integration import test_cli_deadletter as deadletter

fixture_users = cli_support.fixture_users
sender = deadletter.sender
boxes = deadletter.boxes
run = deadletter.run
pytestmark = pytest.mark.usefixtures("fixture_users")


def _log_in(uid: int) -> None:
    """In the child: set the audit login uid, which getlogin() reads."""
    with open("/proc/self/loginuid", "w") as loginuid:
        loginuid.write(str(uid))


def can_log_in() -> bool:
    probe = subprocess.run(
        ["sh", "-c", "echo 0 > /proc/self/loginuid"], capture_output=True, check=False
    )
    return probe.returncode == 0


def run_on_terminal(
    oracle_dir: Path,
    tmp_path: Path,
    extra: list[str],
    *,
    mode: int,
    logged_in: bool,
    case_name: str = "submit_odi_unknown_host",
) -> tuple[int, bytes, bytes, Path]:
    """Run the case with standard output on a new pseudo-terminal of `mode` (standard
    error, where the mail log goes here, is a pipe, so ttypath() takes standard output's
    terminal): (exit status, what reached the terminal, standard error, queue)."""
    case = cli_case(oracle_dir, case_name)
    argv = [a for a in case["argv"] if a != "-oem"]
    queue = Path(next(a for a in argv if a.startswith("QueueDirectory=")).split("=", 1)[1])
    shutil.rmtree(queue, ignore_errors=True)
    queue.mkdir(parents=True)
    argv[-1:-1] = extra
    master, slave = os.openpty()
    os.chmod(os.ttyname(slave), mode)
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    try:
        child = subprocess.Popen(
            [*command(argv[0]), *argv[1:]],
            stdin=subprocess.PIPE,
            stdout=slave,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=(lambda: _log_in(0)) if logged_in else None,
        )
        os.close(slave)
        child.stdin.write(case["stdin"].encode())
        child.stdin.close()
        seen = bytearray()
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            seen += data
        status = child.wait(timeout=120)
        errors = child.stderr.read()
    finally:
        os.close(master)
    return status, bytes(seen), errors, queue


def test_oew_writes_the_errors_on_the_terminal_and_saves_dead_letter(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path], boxes: Path
) -> None:
    if not can_log_in():
        pytest.skip("this machine does not let a process set its login uid (getlogin)")
    name, home = sender
    (home / "dead.letter").unlink(missing_ok=True)
    status, seen, _, queue = run_on_terminal(
        oracle_dir, tmp_path, ["-oew", "-f", name], mode=0o622, logged_in=True
    )
    text = seen.decode().replace("\r", "")  # the terminal adds a CR to each LF
    assert status == 68
    assert text.startswith("\nMessage from MAILER-DAEMON...\nErrors occurred while sending mail.\n")
    assert "Transcript follows:\n" in text
    assert "nodns.example.net" in text.split("Transcript follows:\n", 1)[1]
    dead = home / "dead.letter"
    assert text.endswith(
        f"Original message will be saved in dead.letter.\n{dead}... Saved message in {dead}\n"
    )
    assert dead.read_text().startswith(f"From {name} ")
    assert list(boxes.iterdir()) == []  # saved, so not mailed
    assert list(queue.iterdir()) == []
    dead.unlink()


@pytest.mark.parametrize(
    ("mode", "logged_in", "why"),
    [(0o620, True, "mesg n: others may not write it"), (0o622, False, "not logged in there")],
)
def test_oew_mails_the_report_when_the_terminal_will_not_do(
    oracle_dir: Path,
    tmp_path: Path,
    sender: tuple[str, Path],
    boxes: Path,
    mode: int,
    logged_in: bool,
    why: str,
) -> None:
    if logged_in and not can_log_in():
        pytest.skip("this machine does not let a process set its login uid (getlogin)")
    name, home = sender
    (home / "dead.letter").unlink(missing_ok=True)
    status, seen, _, queue = run_on_terminal(
        oracle_dir, tmp_path, ["-oew", "-f", name], mode=mode, logged_in=logged_in
    )
    assert (status, seen) == (68, b""), why
    assert not (home / "dead.letter").exists()
    assert "Returned mail: see transcript for details" in (boxes / name).read_text()
    assert list(queue.iterdir()) == []


def test_oew_without_any_terminal_mails_the_report(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path], boxes: Path
) -> None:
    name, home = sender
    result, _ = run(oracle_dir, tmp_path, "-oew", "-f", name)
    assert (result.stdout, result.returncode) == (b"", 68)
    assert not (home / "dead.letter").exists()
    assert "Returned mail: see transcript for details" in (boxes / name).read_text()


def test_oee_mails_the_report_and_exits_zero(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path], boxes: Path
) -> None:
    name, home = sender
    result, queue = run(oracle_dir, tmp_path, "-oee", "-f", name)
    assert (result.stdout, result.returncode) == (b"", 0)
    assert not (home / "dead.letter").exists()
    assert "Returned mail: see transcript for details" in (boxes / name).read_text()
    assert list(queue.iterdir()) == []


@pytest.mark.parametrize(("flag", "status"), [("-oee", 0), ("-oew", 67), ("-oep", 67)])
def test_refused_recipients_are_held_but_in_print_mode(
    oracle_dir: Path, tmp_path: Path, flag: str, status: int
) -> None:
    """An unknown user at submission: printed with -oep only; -oee still exits 0."""
    case = cli_case(oracle_dir, "submit_odi_nosuchuser_oem")
    argv = [a for a in case["argv"] if a != "-oem"]
    queue = Path(next(a for a in argv if a.startswith("QueueDirectory=")).split("=", 1)[1])
    shutil.rmtree(queue, ignore_errors=True)
    queue.mkdir(parents=True)
    argv[-1:-1] = [flag, "-odq"]
    result = subprocess.run(
        [*command(argv[0]), *argv[1:]],
        input=case["stdin"].encode(),
        capture_output=True,
        env=subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC"),
        timeout=120,
    )
    printed = b"nosuchuser... User unknown\n" if flag == "-oep" else b""
    assert (result.stdout, result.returncode) == (printed, status)
    assert any(queue.glob("qf*"))  # the report to the sender is queued in every mode


def test_oew_reports_refused_recipients_on_the_terminal_at_once(
    oracle_dir: Path, tmp_path: Path, sender: tuple[str, Path], boxes: Path
) -> None:
    """An unknown user at submission (-odq: no delivery at all): the error is held, then
    written on the terminal and the message saved, instead of a report being queued."""
    if not can_log_in():
        pytest.skip("this machine does not let a process set its login uid (getlogin)")
    name, home = sender
    dead = home / "dead.letter"
    dead.unlink(missing_ok=True)
    status, seen, _, queue = run_on_terminal(
        oracle_dir,
        tmp_path,
        ["-oew", "-odq", "-f", name],
        mode=0o622,
        logged_in=True,
        case_name="submit_odi_nosuchuser_oem",
    )
    text = seen.decode().replace("\r", "")
    assert status == 67
    assert text == (
        "\nMessage from MAILER-DAEMON...\nErrors occurred while sending mail.\n"
        "Transcript follows:\n550 5.1.1 nosuchuser... User unknown\n"
        "Original message will be saved in dead.letter.\n"
        f"{dead}... Saved message in {dead}\n"
    )
    assert dead.read_text().startswith(f"From {name} ")
    assert list(queue.iterdir()) == []  # no report queued: the user has it already
    dead.unlink()
