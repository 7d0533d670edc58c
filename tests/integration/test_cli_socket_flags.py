"""Every command-line flag gives the same queue files whether a user's message goes
through the daemon's command-line socket or straight into the queue.

One real daemon (`sendmail -bD`, root) runs for the module. Each case runs the same
`sendmail` command line twice as the unprivileged user `pysendmail-test`, with the same
message: first while the queue belongs to root (the user cannot write it, so the message
goes over the daemon's socket), then with the queue handed to the user (the user's
sendmail writes it directly, as root's does). The two qf/df pairs must be equal once
the queue IDs, the dates and the df's inode are masked. The cf keeps everything queued
(DeliveryMode=queue) so the files can be read.
"""

from __future__ import annotations

import io
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cli_support import unprivileged_user
from tests.integration.test_cli_socket_submit import sendmail_as, start_daemon
from tests.integration.test_mailhost_e2e import Host

PLAIN = b"Subject: both ways\nTo: root\n\nline one\n..dot-stuffed\nlast line\n"


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to create and become an unprivileged user")
    return unprivileged_user()


@pytest.fixture(scope="module")
def host(user: pwd.struct_passwd) -> Iterator[Host]:
    base = Path(tempfile.mkdtemp(prefix="pysendmail-flags-", dir="/tmp"))
    base.chmod(0o755)
    made = Host(user, base)
    made.write_cf()
    with made.cf.open("a") as cf:
        cf.write("O DeliveryMode=queue\n")
    made.queue_dir.mkdir(mode=0o700)
    (base / "hoststat").mkdir(mode=0o777)
    (base / "aliases").write_text("postmaster: root\n")
    made.maildir.mkdir(parents=True)
    user_cache = base / "user-cache"
    user_cache.mkdir()
    os.chown(user_cache, user.pw_uid, user.pw_gid)
    try:
        start_daemon(made)
        yield made
    finally:
        made.stop()
        shutil.rmtree(base)


def take_queue(host: Host) -> tuple[list[str], list[str]]:
    """The queue's qf and df texts (in queue-ID order), masked, removed from the queue."""
    texts_by_qid = {p.name[2:]: p.read_text(errors="replace") for p in host.queue_dir.glob("qf*")}
    # The message first, then any report: queue IDs do not sort in the order made.
    qids = sorted(texts_by_qid, key=lambda qid: "\nS<>\n" in texts_by_qid[qid])
    texts = [texts_by_qid[qid] for qid in qids]
    bodies = [(host.queue_dir / f"df{qid}").read_bytes().decode(errors="replace") for qid in qids]
    for path in host.queue_dir.iterdir():
        path.unlink()
    return [mask(qf, qids) for qf in texts], [mask(df, qids) for df in bodies]


def mask(text: str, qids: list[str]) -> str:
    """A queue file with what differs between any two submissions masked: the queue
    IDs, dates and times, the df's device/inode, the Message-Id's time stamp."""
    for number, qid in enumerate(qids):
        text = text.replace(qid, f"QID{number}")
    text = re.sub(r"^T\d+$", "T<time>", text, flags=re.M)
    text = re.sub(r"^I\d+/\d+/\d+$", "I<inode>", text, flags=re.M)
    text = re.sub(
        r"\w{3}, [ \d]?\d \w{3} \d{4} \d\d:\d\d:\d\d (?:[-+]\d{4}|[A-Z]{3})", "<date>", text
    )
    text = re.sub(r"(QID\d)\.\d+/", r"\1.<time>/", text)  # MIME boundaries
    return re.sub(r"<\d{12}\.QID", "<STAMP.QID", text)


def both_ways(
    user: pwd.struct_passwd, host: Host, argv: list[str], message: bytes
) -> tuple[tuple, tuple]:
    """(status, printed, masked qfs, dfs) of the socket's way, then of the direct way."""
    assert not any(host.queue_dir.iterdir())
    results = []
    for owner in (0, user.pw_uid):
        os.chown(host.queue_dir, owner, -1)
        try:
            status, printed = sendmail_as(user, host, argv, message)
        finally:
            os.chown(host.queue_dir, 0, -1)
        results.append((status, printed, *take_queue(host)))
    by_socket, direct = results
    assert by_socket[2], f"nothing queued by the socket's way: {by_socket}"
    return by_socket, direct


CASES = {
    "full_name_F": (["-F", "Ada Lovelace", "root"], PLAIN),
    "full_name_with_specials": (["-F", "Lovelace, Ada (Countess)", "root"], PLAIN),
    "sender_f_warns": (["-f", "someone@example.org", "root"], PLAIN),
    "sender_r_warns": (["-r", "other", "root"], PLAIN),
    "notify_N": (["-N", "success,delay", "root"], PLAIN),
    "ret_R": (["-R", "hdrs", "root"], PLAIN),
    "envid_V": (["-V", "env+2Did-1", "root"], PLAIN),
    "body_type_B": (["-B", "8BITMIME", "root"], b"Subject: 8 bit\n\ncaf\xc3\xa9\n"),
    "dot_ends_without_i": (["root"], b"Subject: dot\n\nbefore\n.\nafter\n"),
    "dot_kept_with_i": (["-i", "root"], b"Subject: dot\n\nbefore\n.\nafter\n"),
    "dot_kept_with_oi": (["-oi", "root"], b"Subject: dot\n\nbefore\n.\nafter\n"),
    "t_removes_bcc": (
        ["-t", "-i"],
        b"From: me\nTo: root\nBcc: postmaster\nCc: nobody-here@example.org\n\nbcc'd\n",
    ),
    "t_with_resent": (["-t"], b"To: x@example.org\nResent-To: root\nSubject: again\n\nbody\n"),
    "hop_count_h": (["-h", "5", "root"], PLAIN),
    "protocol_p": (["-p", "UUCP:relay.example.org", "root"], PLAIN),
    "macros_Mr_Ms": (["-Mrlocal-test", "-Msbox.example.org", "root"], PLAIN),
    "crlf_and_no_final_newline": (["-i", "root"], b"Subject: crlf\r\n\r\nline\r\nno newline"),
    "name_from_environment": (["root"], PLAIN),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_socket_and_direct_submission_queue_the_same(user, host: Host, case: str) -> None:
    argv, message = CASES[case]
    argv = ["-C", str(host.cf), *argv]
    if case == "name_from_environment":
        os.environ["NAME"] = "Named By Environment"
    try:
        by_socket, direct = both_ways(user, host, argv, message)
    finally:
        os.environ.pop("NAME", None)
    assert by_socket == direct


def test_full_name_reaches_from_header_by_the_socket(user, host: Host) -> None:
    by_socket, _ = both_ways(user, host, ["-C", str(host.cf), "-F", "Ada Lovelace", "root"], PLAIN)
    [qf] = by_socket[2]
    assert "\nH?F?From: Ada Lovelace <pysendmail-test>\n" in qf


def test_other_sender_gets_the_using_f_warning_by_the_socket(user, host: Host) -> None:
    argv = ["-C", str(host.cf), "-f", "someone@example.org", "root"]
    by_socket, _ = both_ways(user, host, argv, PLAIN)
    [qf] = by_socket[2]
    assert "\nSsomeone@example.org\n" in qf
    assert " pysendmail-test set sender to someone@example.org using -f\n" in qf


def test_refusals_are_printed_alike(user, host: Host) -> None:
    """An unknown local user among good ones: the same message, status and report."""
    argv = ["-C", str(host.cf), "nosuchuser", "root"]
    by_socket, direct = both_ways(user, host, argv, PLAIN)
    assert by_socket[:2] == (67, b"nosuchuser... User unknown\n")
    assert by_socket == direct


def on_terminal_as_user(user: pwd.struct_passwd, host: Host, argv: list[str]) -> tuple[int, str]:
    """Run sendmail as `user` with standard output and error on a new world-writable
    pseudo-terminal, logged in (its audit login uid set, which getlogin() reads):
    (exit status, what reached the terminal)."""
    import select
    import sys

    from tests.integration.test_cli_socket_submit import warm_up

    master, slave = os.openpty()
    os.chmod(os.ttyname(slave), 0o622)
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            os.close(master)
            with open("/proc/self/loginuid", "w") as loginuid:
                loginuid.write(str(user.pw_uid))
            os.environ["XDG_CACHE_HOME"] = str(host.base / "user-cache")
            warm_up(host)
            from pysendmail.cli import deadletter  # noqa: F401 (imported as root)

            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            os.dup2(slave, 1)
            os.dup2(slave, 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (pytest replaced it)
            sys.stdin = io.TextIOWrapper(io.BytesIO(PLAIN))
            from pysendmail.cli.main import main

            status = main(["sendmail", *argv])
            sys.stdout.flush()
        finally:
            os._exit(status)
    os.close(slave)
    seen = bytearray()
    while select.select([master], [], [], 60)[0]:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child's end is closed
            break
        if not data:
            break
        seen += data
    os.close(master)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode().replace("\r", "")


def test_oew_reaches_the_users_terminal_through_the_socket(user, host: Host) -> None:
    """-oew by a user whose mail goes through the daemon: the user's terminal goes along
    with the submission, so the refused recipient is written there as by the direct way
    (no dead.letter: this user has no home, so the report is mailed after all)."""
    probe = subprocess.run(["sh", "-c", "echo 0 > /proc/self/loginuid"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this machine does not let a process set its login uid (getlogin)")
    argv = ["-C", str(host.cf), "-oew", "nosuchuser", "root"]
    results = []
    for owner in (0, user.pw_uid):
        os.chown(host.queue_dir, owner, -1)
        try:
            status, seen = on_terminal_as_user(user, host, argv)
        finally:
            os.chown(host.queue_dir, 0, -1)
        results.append((status, seen, *take_queue(host)))
    by_socket, direct = results
    assert by_socket[:2] == (
        67,
        "\nMessage from MAILER-DAEMON...\nErrors occurred while sending mail.\n"
        "Transcript follows:\n550 5.1.1 nosuchuser... User unknown\n"
        "Original message will be saved in dead.letter.\n",
    )
    assert len(by_socket[2]) == 2  # the message for root and the report to the user
    assert by_socket == direct


def test_odi_through_the_socket_is_delivered_before_the_answer(user, host: Host) -> None:
    """-odi by a user whose mail goes through the daemon: the daemon delivers it before it
    answers, and the answer carries the delivery's exit status."""
    status, printed = sendmail_as(user, host, ["-C", str(host.cf), "-odi", "root"], PLAIN)
    assert (status, printed) == (0, b"")
    assert not any(host.queue_dir.iterdir())  # delivered, so gone from the queue
    [delivered] = [p for p in (host.base / "maildirs" / "root" / "new").iterdir()]
    text = delivered.read_text()
    assert "Subject: both ways" in text and text.endswith("..dot-stuffed\nlast line\n")
    assert "Received: (from pysendmail-test@localhost)" in text
