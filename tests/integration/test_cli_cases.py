"""sendmail 8.17's recorded command lines (cli_cases.jsonl), run as subprocesses of this
checkout: stdout, stderr and the exit status must be the same, byte for byte, and the
queue files the same once times, dates and queue IDs are masked.

The records were made on a machine with users alice (uid 1001), bob (1002) and mallory
(1003); these tests create them with useradd when they are absent (CI runs as root),
without home directories. The configuration cache goes to a temporary XDG_CACHE_HOME.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES_SRC, command, subprocess_env
from tests.integration import cli_support
from tests.integration.test_cli_submit_fixtures import mask

CASES = {
    json.loads(line)["name"]: json.loads(line)
    for line in (FIXTURES_SRC / "cli" / "cli_cases.jsonl").read_text().splitlines()
    if line.strip()
}

# Every case whose parts exist and need nothing but the recorded input. Left out, and why:
# version_d0.1 and bs_* (their own tests below: masked dates and build words),
# queue_run_q and bp_four_queued* (they start from sendmail's queue: see the queue tests),
# newaliases_argv0 (its alias file: see the tables tests), submit_odi_* and
# t_to_cc_bcc_deliver (immediate delivery through the fixture's mailer; the unknown host
# and its dead.letter in test_cli_deadletter), untrusted_*
# (run as mallory: see test_cli_handoff and test_cli_submit_fixtures).
OUTPUT_CASES = [
    name
    for name in CASES
    if name.startswith("bv_")
    or name
    in {
        "mailq_argv0_empty",
        "bp_nonexistent_qdir",
        "unknown_mode",
        "bad_o_option",
        "bad_d_flag",
        "bD_with_bv",
        "bh",
        "nullclient_bv",
        "submit_no_recipients",
        "t_no_recipients",
    }
]
QUEUE_CASES = [
    "submit_odq_local",
    "submit_odq_noheaders",
    "submit_odq_dsn",
    "dot_oi",
    "no_trailing_newline",
    "crlf_input",
    "long_line",
    "eight_bit",
    "t_resent",
    "t_group_syntax",
]


# Every test here needs the records' users (alice, bob, mallory).
fixture_users = cli_support.fixture_users
pytestmark = pytest.mark.usefixtures("fixture_users")


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return subprocess_env(XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")), TZ="UTC")


def run_case(case: dict, oracle_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    argv = [a.replace("@ORACLE@", str(oracle_dir)) for a in case["argv"]]
    for arg in argv:
        if arg.startswith("HostStatusDirectory="):
            # The records were made with an (empty) host status directory in place.
            status_dir = Path(arg.split("=", 1)[1])
            shutil.rmtree(status_dir, ignore_errors=True)
            status_dir.mkdir(parents=True)
        if arg.startswith("QueueDirectory=") and not arg.endswith("nonexistent"):
            queue = Path(arg.split("=", 1)[1])
            queue.mkdir(parents=True, exist_ok=True)
            for old in queue.iterdir():
                old.unlink()
    return subprocess.run(
        [*command(argv[0]), *argv[1:]],
        input=case["stdin"].encode(),
        capture_output=True,
        env=env,
        timeout=120,
    )


def expected_text(case: dict, key: str, oracle_dir: Path) -> bytes:
    return case[key].replace("@ORACLE@", str(oracle_dir)).encode()


@pytest.mark.parametrize("name", OUTPUT_CASES)
def test_output_and_status_match_sendmail(name, oracle_dir, env):
    case = CASES[name]
    result = run_case(case, oracle_dir, env)
    assert result.stdout == expected_text(case, "stdout", oracle_dir)
    assert result.stderr == expected_text(case, "stderr", oracle_dir)
    assert result.returncode == case["exit_code"]


@pytest.mark.parametrize("name", QUEUE_CASES)
def test_submission_matches_sendmail(name, oracle_dir, env):
    case = CASES[name]
    result = run_case(case, oracle_dir, env)
    assert result.stdout == expected_text(case, "stdout", oracle_dir)
    assert result.stderr == b""
    assert result.returncode == case["exit_code"]
    queue = next(
        Path(a.split("=", 1)[1].replace("@ORACLE@", str(oracle_dir)))
        for a in case["argv"]
        if a.startswith("QueueDirectory=")
    )
    want_qid = next(f for f in case["queue_files"] if f.startswith("qf"))[2:]
    want_qf = case["queue_files"][f"qf{want_qid}"]["text"].replace("@ORACLE@", str(oracle_dir))
    want_df = case["queue_files"][f"df{want_qid}"]["text"].encode()
    originals = [
        p.name[2:]
        for p in queue.iterdir()
        if p.name.startswith("qf") and "\nS<>\n" not in p.read_text(errors="replace")
    ]
    [qid] = originals
    qf = (queue / f"qf{qid}").read_bytes().decode("utf-8", "surrogateescape")
    assert mask(qf.replace("\udc81", "\\x81"), qid) == mask(want_qf, want_qid)
    assert (queue / f"df{qid}").read_bytes() == want_df


@pytest.fixture
def boxes(oracle_dir: Path):
    """configs/office/mailboxes/, where the office cf's local mailer (bin/deliver) appends
    to USER: empty for the test, and removed after it (the fixture tree is shared)."""
    path = oracle_dir / "configs" / "office" / "mailboxes"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_odi_delivers_before_exiting(oracle_dir, env, boxes):
    case = CASES["submit_odi_local"]
    result = run_case(case, oracle_dir, env)
    assert (result.stdout, result.stderr, result.returncode) == (b"", b"", 0)
    for user, box in case["mailboxes"].items():
        got = (boxes / user).read_text()
        qid = re.search(r" id (\w+);", got).group(1)
        want_qid = re.search(r" id (\w+);", box["text"]).group(1)
        assert mask(got, qid) == mask(box["text"], want_qid)
    assert sorted(p.name for p in boxes.iterdir()) == sorted(case["mailboxes"])


@pytest.mark.parametrize("name", ["submit_odi_nosuchuser", "submit_odi_nosuchuser_oem"])
def test_odi_unknown_user_is_reported_and_bounced(name, oracle_dir, env, boxes):
    # -oep prints the error, -oem does not; both mail the report to the sender (bob, or
    # root whose alias is alice). The report's own text is the DSN builder's.
    case = CASES[name]
    result = run_case(case, oracle_dir, env)
    assert result.stdout == expected_text(case, "stdout", oracle_dir)
    assert result.returncode == case["exit_code"]
    [(user, box)] = case["mailboxes"].items()
    got = (boxes / user).read_text()
    assert "Subject: Returned mail: see transcript for details" in got
    human = box["text"].split("   ----- The following addresses", 1)[1].split("--", 1)[0]
    assert human in got


def test_q_delivers_what_odq_queued(oracle_dir, env, boxes):
    case = CASES["submit_odq_local"]
    assert run_case(case, oracle_dir, env).returncode == 0
    argv = [a.replace("@ORACLE@", str(oracle_dir)) for a in case["argv"]]
    queue = Path(next(a for a in argv if a.startswith("QueueDirectory=")).split("=", 1)[1])
    assert len(list(queue.glob("qf*"))) == 1
    run_argv = [a for a in argv[1:] if a not in ("-odq", "alice")] + ["-q", "-v"]
    result = subprocess.run(
        [*command("sendmail"), *run_argv], capture_output=True, env=env, timeout=120
    )
    assert result.returncode == 0
    assert b"alice... Sent" in result.stdout
    assert list(queue.iterdir()) == []
    assert "Subject: oracle test message" in (boxes / "alice").read_text()


def test_d0_1_prints_version_identity_then_test_mode(oracle_dir, env):
    # The "Compiled with:" words are what pysendmail has, not sendmail's build options;
    # $k is the node name of the machine (uname), which the records' machine had as FQDN.
    case = CASES["version_d0.1"]
    result = run_case(case, oracle_dir, env)
    compiled = re.compile(r" Compiled with:.*?\n\n|\(node name\) \$k = [^\n]*\n", re.S)
    want = expected_text(case, "stdout", oracle_dir).decode()
    assert compiled.sub("<compiled>", result.stdout.decode()) == compiled.sub("<compiled>", want)
    assert (result.stderr, result.returncode) == (b"", case["exit_code"])


def test_bt_answers_on_stdin(oracle_dir, env):
    argv = ["-C", str(oracle_dir / "configs" / "office" / "office.cf"), "-bt"]
    result = subprocess.run(
        [*command("sendmail"), *argv], input=b"$j\n", capture_output=True, env=env, timeout=120
    )
    assert result.returncode == 0
    assert result.stdout.startswith(b"ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\n")
    assert b"mail.example.com\n" in result.stdout


@pytest.mark.parametrize("name", ["bs_eof", "bs_pipelined_errors"])
def test_bs_speaks_smtp_on_stdin(name, oracle_dir, env):
    # Everything is written at once (a pipe), as in the records; only the greeting's date
    # differs from run to run.
    case = CASES[name]
    result = run_case(case, oracle_dir, env)
    want = expected_text(case, "stdout", oracle_dir).decode()
    assert mask(result.stdout.decode(), "-") == mask(want, "-")
    assert (result.stderr, result.returncode) == (b"", case["exit_code"])
