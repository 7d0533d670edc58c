"""A runner assembled from the office fixture's sendmail.cf: real translation, real
routing (aliases, the local mailer program), the queue sendmail left behind."""

import os
import shutil

import pytest

from pysendmail.config.translate import translate
from pysendmail.delivery.result import DeliveryResult
from pysendmail.dns import DnsTempFailure, ResolverSettings
from pysendmail.queue import service
from pysendmail.queue.deliverers import RemoteDeliverer
from pysendmail.record import replace
from pysendmail.routing import LocalUser, Router
from tests.conftest import cli_case
from tests.integration.test_queue_sendmail_queue import recorded_run_time


class Unreachable:
    def deliver(self, message, deliveries):
        return [
            DeliveryResult.deferred(
                d.user, f"Deferred: {d.host}.: Network is unreachable", "4.4.1", mailer="esmtp"
            )
            for d in deliveries
        ]


def _users(name):
    uids = {"alice": 1001, "bob": 1002, "mallory": 1003}
    if name not in uids:
        return None
    return LocalUser(name, os.getuid(), os.getgid(), "/nonexistent")


def test_runner_for_the_office_config_delivers_sendmails_queue(oracle_dir, tmp_path):
    office = tmp_path / "configs" / "office"
    shutil.copytree(oracle_dir / "configs" / "office", office)
    for path in office.rglob("*"):
        if path.is_file():
            path.write_bytes(
                path.read_bytes().replace(str(oracle_dir).encode(), str(tmp_path).encode())
            )
    (office / "bin" / "deliver").chmod(0o755)
    # the session-wide oracle copy may hold what other tests delivered there
    shutil.rmtree(office / "mailboxes", ignore_errors=True)
    (office / "mailboxes").mkdir()
    queue_dir = tmp_path / "mqueue"
    queue_dir.mkdir()
    before = cli_case(oracle_dir, "bp_four_queued")
    for name, entry in before["queue_files"].items():
        raw = entry["text"].replace("\\x81", "\udc81").encode("utf-8", "surrogateescape")
        (queue_dir / name).write_bytes(raw)
    config = translate(office / "office.cf", hostname="mail.example.com")
    options = {**config.options, "QueueDirectory": str(queue_dir)}
    config = replace(config, options=options)
    # Remote recipients must not leave the machine: the office hosts file maps them to
    # 192.0.2.x, so the SMTP mailers are replaced by one that defers.
    keep_local = {name: Unreachable() for name in ("esmtp", "smtp", "smtp8", "dsmtp", "relay")}
    runner = service.runner_for_config(
        config, router=Router(config, users=_users), extra_deliverers=keep_local
    )
    runner.clock = lambda: recorded_run_time(before)
    assert isinstance(service.deliverers_for_config(config)["esmtp"], RemoteDeliverer)
    summary = runner.run()
    assert summary.attempted == 5
    after = cli_case(oracle_dir, "queue_run_q")
    for user, box in after["mailboxes"].items():
        assert (office / "mailboxes" / user).read_text() == box["text"], user
    # The remote recipients wait, with sendmail's bookkeeping.
    left = sorted(p.name for p in queue_dir.iterdir())
    assert left == sorted(after["queue_files"])


def test_loopback_only_mode_never_hands_out_another_address():
    class Fixed:
        settings = ResolverSettings(host_sources=("files",))

        def host_addresses(self, host):
            return {"far": ["192.0.2.41"], "near": ["127.0.0.1", "192.0.2.1"]}[host]

        def resolve_mx(self, domain):
            return ["mx"]

    guarded = service.LoopbackOnlyResolver(Fixed())
    assert guarded.host_addresses("near") == ["127.0.0.1"]
    with pytest.raises(DnsTempFailure):
        guarded.host_addresses("far")
    assert guarded.resolve_mx("example.com") == ["mx"]  # no DNS in use: files only
    Fixed.settings = ResolverSettings(host_sources=("dns",), nameservers=("10.0.0.1",))
    with pytest.raises(DnsTempFailure):
        guarded.resolve_mx("example.com")


def test_the_test_suite_runs_in_loopback_only_mode(oracle_dir):
    assert os.environ.get(service.LOOPBACK_ONLY_ENV)
    config = translate(oracle_dir / "configs" / "office" / "office.cf", hostname="mail.example.com")
    remote = service.deliverers_for_config(config)["esmtp"]
    assert isinstance(remote.settings.resolver, service.LoopbackOnlyResolver)


COMPAT_RULES = """
LOCAL_RULESETS
Scheck_compat
R$* $| $* @ blocked . example\t$#error $@ 5.7.1 $: "550 Local rule: no mail to blocked.example"
R$* $| $* @ later . example\t$#error $@ 4.4.5 $: "451 Local rule: later"
R$* $| $* @ quiet . example\t$#discard $: discard
R$* $| $*\t\t\t$@ OK
"""


class Recorder:
    def __init__(self):
        self.addresses = []

    def deliver(self, message, deliveries):
        self.addresses.extend(d.address for d in deliveries)
        return [DeliveryResult.sent(d.address, mailer="esmtp") for d in deliveries]


def test_check_compat_runs_before_each_delivery(oracle_dir, tmp_path):
    from pysendmail.envelope import Envelope, Recipient
    from pysendmail.headers import Header

    cf = tmp_path / "compat.cf"
    cf.write_text((oracle_dir / "configs/debian/debian.cf").read_text() + COMPAT_RULES)
    queue_dir = tmp_path / "mqueue"
    queue_dir.mkdir(mode=0o700)
    config = translate(cf, hostname="mail.example.com")
    config = replace(config, options={**config.options, "QueueDirectory": str(queue_dir)})
    recorder = Recorder()
    mailers = {name: recorder for name in ("esmtp", "smtp", "smtp8", "dsmtp", "relay")}
    runner = service.runner_for_config(config, extra_deliverers=mailers)
    store = runner.store
    rcpts = ["bob@blocked.example", "carol@later.example", "dave@quiet.example"]
    rcpts.append("erin@example.org")
    envelope = Envelope(sender="alice@example.org", recipients=[Recipient(r) for r in rcpts])
    qid = store.enqueue(
        envelope, [Header("Subject", "compat")], b"body\n", hostname="mail.example.com"
    )
    runner.run()
    assert recorder.addresses == ["erin@example.org"]  # refused, deferred, discarded: kept back
    left = store.read(qid)  # carol waits for a later run
    assert [r.address for r in left.recipients] == ["carol@later.example"]
    bounces = [store.read(other) for other in store.queue_ids() if other != qid]
    assert [[r.address for r in b.recipients] for b in bounces] == [["alice@example.org"]]
    report = (queue_dir / f"df{bounces[0].qid}").read_text()
    assert "no mail to blocked.example" in report and "bob@blocked.example" in report
    assert "dave@quiet.example" not in report
