"""Mailers of the cf whose P= is a program other than local and prog (FEATURE(procmail)'s
`Mprocmail`, a site's own script) are run by the queue, with `$h $u $f` in their A=, one
run per recipient or one per host with F=m, and their exit code mapped as sendmail maps
it; before, such mail waited in the queue for ever."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pysendmail.config.model import MailerSpec
from pysendmail.envelope import Envelope, Recipient
from pysendmail.errors import Location
from pysendmail.headers import Header
from pysendmail.queue import service
from pysendmail.queue.deliverers import ProgramMailerDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from tests.delivery_support import make_config, world_enterable_dir


@pytest.fixture
def out_dir() -> Iterator[Path]:
    with world_enterable_dir() as path:
        yield path


def _script(out_dir: Path) -> Path:
    """A mailer program: stores its input as OUT/<host>-<user>-<sender>, 67 for nosuch."""
    script = out_dir / "mailer.sh"
    script.write_text(
        "#!/bin/sh\n"
        'host="$1"; sender="$2"; shift 2\n'
        'for user in "$@"; do [ "$user" = nosuch ] && exit 67; done\n'
        f'cat > "{out_dir}/$host-$(echo "$@" | tr " " +)-$sender"\n'
    )
    script.chmod(0o755)
    return script


@dataclass
class Routed:
    mailer: str
    host: str
    user: str
    address: str = ""


def _run(tmp_path: Path, mailer: MailerSpec, rcpts: list[tuple[str, str]]):
    store = QueueStore(tmp_path)
    qid = store.enqueue(
        Envelope(
            sender="<alice@example.com>", recipients=[Recipient(f"<{u}@{h}>") for u, h in rcpts]
        ),
        [Header("Subject", "through a program mailer")],
        b"the body\n",
        hostname="mail.example.com",
    )
    config = make_config(mailers={mailer.name: mailer})
    deliverer = service.deliverers_for_config(config)[mailer.name]
    assert isinstance(deliverer, ProgramMailerDeliverer)

    def route(rcpt, message):
        user, host = rcpt.bare_address.split("@")
        return [Routed(mailer.name, host, user, rcpt.bare_address)]

    runner = QueueRunner(
        store, route=route, deliverers={mailer.name: deliverer}, hostname="mail.example.com"
    )
    return runner.run_one(qid)


def test_a_program_mailer_runs_once_per_recipient(tmp_path, out_dir):
    mailer = MailerSpec(
        "procmail",
        {"P": str(_script(out_dir)), "F": "SPhnu9", "A": "procmail $h $f $u"},
        Location("test.cf", 1),
    )
    outcome = _run(tmp_path, mailer, [("bob", "one.test"), ("carol", "two.test"),
                                      ("nosuch", "one.test")])  # fmt: skip
    assert sorted(outcome.sent) == ["<bob@one.test>", "<carol@two.test>"]
    assert outcome.bounced == ["<nosuch@one.test>"]  # exit 67: user unknown
    bob = (out_dir / "one.test-bob-alice@example.com").read_text()
    assert bob.startswith("Return-Path: <alice@example.com>\n")  # F=P, no From line (F=n)
    assert bob.endswith("\nthe body\n")
    assert (out_dir / "two.test-carol-alice@example.com").exists()


def test_f_m_runs_once_per_host_for_all_its_recipients(tmp_path, out_dir):
    mailer = MailerSpec(
        "batch",
        {"P": str(_script(out_dir)), "F": "mSn", "A": "batch $h $f $u"},
        Location("test.cf", 1),
    )
    outcome = _run(tmp_path, mailer, [("bob", "one.test"), ("carol", "one.test"),
                                      ("dan", "two.test")])  # fmt: skip
    assert len(outcome.sent) == 3
    names = sorted(p.name for p in out_dir.iterdir() if p.name != "mailer.sh")
    assert names == ["one.test-bob+carol-alice@example.com", "two.test-dan-alice@example.com"]
