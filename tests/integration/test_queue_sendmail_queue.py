"""The queue sendmail 8.17 left behind is delivered by pysendmail's runner through the
office config's own local mailer (the fixture's bin/deliver program), and the mailboxes
match what sendmail's `-q -v` run delivered, byte for byte."""

import os
import shutil
from dataclasses import dataclass

from pysendmail.config.cfparse import read_cf
from pysendmail.config.model import MailerSpec
from pysendmail.delivery.local import LocalSettings
from pysendmail.delivery.prog import ProgramSettings, RunIdentity
from pysendmail.delivery.result import DeliveryResult
from pysendmail.queue.deliverers import LocalDeliverer
from pysendmail.queue.runner import QueueRunner
from pysendmail.queue.store import QueueStore
from tests.conftest import cli_case


@dataclass
class Routed:
    mailer: str
    address: str
    host: str = ""
    user: str = ""


def route(rcpt, message):
    addr = rcpt.bare_address
    local, _, domain = addr.partition("@")
    if domain and domain != "mail.example.com":
        return [Routed("esmtp", addr, host=domain + ".")]
    return [Routed("local", addr, user=local)]


class Unreachable:
    def deliver(self, message, deliveries):
        return [
            DeliveryResult.deferred(
                d.address, f"Deferred: {d.host}: Network is unreachable", "4.4.1", mailer="esmtp"
            )
            for d in deliveries
        ]


def _me(name: str) -> RunIdentity:
    return RunIdentity(name, os.getuid(), os.getgid(), "/tmp")


def recorded_run_time(case: dict) -> float:
    """When sendmail's recorded queue run happened: just after the last message was queued
    (the latest qf `T` line). Runs in these tests use it as their clock, so the result does
    not depend on today's date (4 hours later a real clock would send delay DSNs)."""
    queued = [
        int(line[1:])
        for entry in case["queue_files"].values()
        for line in entry["text"].splitlines()
        if line[:1] == "T" and line[1:].isdigit()
    ]
    return max(queued) + 60.0


def test_sendmails_queue_is_delivered_as_sendmail_delivered_it(oracle_dir, tmp_path):
    before = cli_case(oracle_dir, "bp_four_queued")
    after = cli_case(oracle_dir, "queue_run_q")
    queue_dir = tmp_path / "mqueue"
    queue_dir.mkdir()
    for name, entry in before["queue_files"].items():
        # The JSON writes the macro byte 0x81 as the text "\\x81".
        raw = entry["text"].replace("\\x81", "\udc81").encode("utf-8", "surrogateescape")
        (queue_dir / name).write_bytes(raw)
    (tmp_path / "bin").mkdir()
    (tmp_path / "mailboxes").mkdir()
    deliver = tmp_path / "bin" / "deliver"
    shutil.copy(oracle_dir / "configs" / "office" / "bin" / "deliver", deliver)
    deliver.chmod(0o755)
    cf = read_cf(oracle_dir / "configs" / "office" / "office.cf")
    spec = next(m for m in cf.mailers if m.name == "local")
    local_mailer = MailerSpec(spec.name, {**spec.fields, "P": str(deliver)}, spec.location)
    settings = LocalSettings(
        spool_dir=tmp_path / "spool",
        user_lookup=_me,
        program=ProgramSettings(default_user=_me("nobody")),
    )
    runner = QueueRunner(
        QueueStore(queue_dir),
        route=route,
        deliverers={"local": LocalDeliverer(settings, local_mailer), "esmtp": Unreachable()},
        hostname="mail.example.com",
        clock=lambda: recorded_run_time(before),
    )
    summary = runner.run()
    assert summary.attempted == 5
    for user, box in after["mailboxes"].items():
        assert (tmp_path / "mailboxes" / user).read_text() == box["text"], user
    assert sorted(p.name for p in queue_dir.iterdir()) == sorted(after["queue_files"])
