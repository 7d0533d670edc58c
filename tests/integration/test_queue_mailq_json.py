"""`mailq --json` and `sendmail -bp --json` (our extension): the real command prints the
queue's facts as one JSON document, the same facts as the listing; `--json` with any
other mode is a usage error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pysendmail.envelope import Envelope, Recipient
from pysendmail.headers import Header
from pysendmail.queue.store import QueueStore
from tests.conftest import command, subprocess_env


def _run(argv0: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"), TZ="UTC")
    return subprocess.run(
        [*command(argv0), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_mailq_json_lists_the_queue(oracle_dir, tmp_path):
    queue = tmp_path / "mqueue"
    queue.mkdir(mode=0o700)
    qid = QueueStore(queue).enqueue(
        Envelope(sender="<alice@example.com>", recipients=[Recipient("<bob@remote.test>")]),
        [Header("From", "alice@example.com"), Header("Subject", "waiting")],
        b"hello\n",
        hostname="mail.example.com",
    )
    settings = ["-C", str(oracle_dir / "configs" / "office" / "office.cf")]
    settings += ["-O", f"QueueDirectory={queue}"]
    for argv0, args in (("mailq", ["--json"]), ("sendmail", ["-bp", "--json"])):
        run = _run(argv0, [*args, *settings], tmp_path)
        assert run.returncode == 0, run.stderr
        doc = json.loads(run.stdout)
        [message] = doc["messages"]
        assert message["id"] == qid and doc["total"] == 1
        assert message["sender"] == "<alice@example.com>"
        assert [r["address"] for r in message["recipients"]] == ["<bob@remote.test>"]
    plain = _run("mailq", settings, tmp_path)
    assert qid in plain.stdout and "Total requests: 1" in plain.stdout


def test_json_with_another_mode_is_a_usage_error(tmp_path):
    run = _run("sendmail", ["--json", "-bv", "bob"], tmp_path)
    assert run.returncode == 64
    assert "--json" in run.stderr
