"""What rewriting addresses per mailer costs at delivery: addresses per second through
`MailerAddresses` on the office fixture's cf, by the tables (the cf without its
LOCAL_RULE_3: every ruleset stock) and by the rules engine (the cf as it is), cold (every
address new) and warm (the cache a queue run keeps), and the headers of one message
rewritten for the smtp mailer.

    python bench/delivery_rewrite.py [--rounds N]

Addresses: those of the recorded office -bt cases (about 110), each as an envelope
sender, a header sender and a header recipient, for the esmtp and local mailers.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pysendmail.config.translate import translate  # noqa: E402
from pysendmail.delivery.rewrite import rewrite_headers  # noqa: E402
from pysendmail.headers import Header  # noqa: E402
from pysendmail.rewriting import MailerAddresses  # noqa: E402
from pysendmail.routing import Router  # noqa: E402
from tests.conftest import FIXTURES_SRC  # noqa: E402

KINDS = ((True, False), (True, True), (False, True))
MAILERS = ("esmtp", "local")


def office(dest: Path, *, stock: bool) -> Path:
    target = dest / "sendmail-8.17"
    if not target.exists():
        shutil.copytree(FIXTURES_SRC, target)
        for path in target.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                path.write_bytes(data.replace(b"@ORACLE@", str(target).encode()))
    cf = target / "configs" / "office" / "office.cf"
    if not stock:
        return cf
    stock_cf = cf.with_name("office_stock.cf")
    stock_cf.write_text(re.sub(r"(?m)^R\$\* < @ old .*\n", "", cf.read_text()))
    return stock_cf


def addresses() -> list[str]:
    found = []
    for line in (FIXTURES_SRC / "bt" / "bt_office.jsonl").read_text().splitlines():
        case = json.loads(line)
        if case["kind"] == "try_sender":
            found.append(case["input"].rstrip("\n").split("\n")[-1].split(" ", 2)[2])
    return found


def measure(cf: Path, rounds: int) -> dict[str, float]:
    config = translate(cf, hostname="mail.example.com")
    work = [
        (address, mailer, sender, header)
        for address in addresses()
        for mailer in MAILERS
        for sender, header in KINDS
    ]
    cold = warm = 0.0
    for _ in range(rounds):
        rewriting = MailerAddresses(config, Router(config))
        rewriting.rewrite("warm-up", "esmtp", sender=True, header=False)
        started = time.process_time()
        for address, mailer, sender, header in work:
            rewriting.rewrite(address, mailer, sender=sender, header=header)
        cold += time.process_time() - started
        started = time.process_time()
        for address, mailer, sender, header in work:
            rewriting.rewrite(address, mailer, sender=sender, header=header)
        warm += time.process_time() - started
    headers = [
        Header("From", "Alice Smith <alice@mail.example.com>"),
        Header("To", "someone@remote.example.net, bob, carol@mail.example.com"),
        Header("Cc", '"Dave D." <dave@mail.example.com>'),
        Header("Subject", "bench"),
        Header("Message-Id", "<bench@mail.example.com>"),
    ]
    rewrite = MailerAddresses(config, Router(config)).for_mailer("esmtp")
    count = 2000
    started = time.process_time()
    for _ in range(count):
        rewrite_headers(headers, rewrite)
    per_message = (time.process_time() - started) / count
    return {
        "cold": len(work) * rounds / cold,
        "warm": len(work) * rounds / warm,
        "message_us": per_message * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for label, stock in (
            ("tables (stock office cf)", True),
            ("rules engine (office cf)", False),
        ):
            figures = measure(office(Path(tmp), stock=stock), args.rounds)
            print(
                f"{label}: {figures['cold']:,.0f} addresses/s cold, "
                f"{figures['warm']:,.0f} addresses/s cached, "
                f"{figures['message_us']:.0f} us CPU for one message's headers (cached)"
            )


if __name__ == "__main__":
    main()
