"""Makes `stock_rules.txt`, the fingerprints of every rule sendmail's m4 macros write.

Run by a developer where m4 and sendmail's cf macros are installed (Debian's
`sendmail-cf`), never at run time:

    python -m pysendmail.rules.stockgen [/usr/share/sendmail/cf] > pysendmail/rules/stock_rules.txt

It writes one small .mc per FEATURE (alone, and beside `access_db`), a few usual
combinations and the four fixture configurations' .mc files (without their LOCAL_
parts), runs m4 over each, parses the output as a cf and prints `ruleset<TAB>fingerprint`
for every rule found, sorted and without duplicates. `rules/stock.py` reads the file.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pysendmail.config.cfparse import parse_cf
from pysendmail.rules.stock import fingerprint, ruleset_key

DEFAULT_CF_DIR = "/usr/share/sendmail/cf"

# FEATUREs with the arguments a typical .mc gives them; "" for none.
FEATURES: tuple[tuple[str, str], ...] = (
    ("accept_unqualified_senders", ""),
    ("accept_unresolvable_domains", ""),
    ("allmasquerade", ""),
    ("always_add_domain", ""),
    ("authinfo", ""),
    ("badmx", ""),
    ("bestmx_is_local", ""),
    ("bitdomain", ""),
    ("blocklist_recipients", ""),
    ("block_bad_helo", ""),
    ("check_cert_altnames", ""),
    ("compat_check", ""),
    ("conncontrol", ""),
    ("conncontrol", "`nodelay', `terminate'"),
    ("delay_checks", ""),
    ("delay_checks", "`friend'"),
    ("delay_checks", "`hater'"),
    ("delay_checks", "`friend', `n'"),
    ("domaintable", ""),
    ("generics_entire_domain", ""),
    ("genericstable", ""),
    ("greet_pause", ""),
    ("greet_pause", "`1000'"),
    ("greet_pause", "`5000'"),
    ("ldap_routing", ""),
    ("limited_masquerade", ""),
    ("local_lmtp", ""),
    ("local_no_masquerade", ""),
    ("local_procmail", ""),
    ("lookupdotdomain", ""),
    ("loose_relay_check", ""),
    ("mailertable", ""),
    ("masquerade_entire_domain", ""),
    ("masquerade_envelope", ""),
    ("no_default_msa", ""),
    ("nocanonify", ""),
    ("nopercenthack", ""),
    ("notsticky", ""),
    ("nouucp", "`reject'"),
    ("nouucp", "`nospecial'"),
    ("preserve_local_plus_detail", ""),
    ("preserve_luser_host", ""),
    ("promiscuous_relay", ""),
    ("queuegroup", ""),
    ("ratecontrol", ""),
    ("ratecontrol", "`nodelay', `terminate'"),
    ("redirect", ""),
    ("relay_based_on_MX", ""),
    ("relay_entire_domain", ""),
    ("relay_hosts_only", ""),
    ("relay_local_from", ""),
    ("relay_mail_from", ""),
    ("relay_mail_from", "`domain'"),
    ("require_rdns", ""),
    ("smrsh", ""),
    ("stickyhost", ""),
    ("tls_failures", ""),
    ("tls_session_features", ""),
    ("use_client_ptr", ""),
    ("use_ct_file", ""),
    ("use_cw_file", ""),
    ("uucpdomain", ""),
    ("virtusertable", ""),
)

# Features that need access_db to say anything.
NEEDS_ACCESS = {"blocklist_recipients", "delay_checks", "conncontrol", "ratecontrol", "greet_pause"}

HEADER = """divert(0)dnl
include(`{cf}/m4/cf.m4')dnl
VERSIONID(`pysendmail stock rules')dnl
OSTYPE(`{ostype}')dnl
"""

MAILERS = "MAILER(`local')dnl\nMAILER(`smtp')dnl\nMAILER(`procmail')dnl\n"
MAILERS_UUCP = MAILERS + "MAILER(`uucp')dnl\n"


def _feature(name: str, args: str) -> str:
    return f"FEATURE(`{name}'{', ' + args if args else ''})dnl\n"


def mc_texts(cf_dir: str) -> Iterator[str]:
    """The .mc files whose output makes up the catalogue."""
    for ostype in ("debian", "linux"):
        head = HEADER.format(cf=cf_dir, ostype=ostype)
        yield head + MAILERS
        yield head + _feature("access_db", "") + MAILERS
        yield head + "define(`SMART_HOST', `relay:[smart.example]')dnl\n" + MAILERS_UUCP
        yield head + "define(`MAIL_HUB', `hub.example')dnl\n" + MAILERS
        yield head + "define(`LUSER_RELAY', `local:luser')dnl\n" + MAILERS
        yield head + "MASQUERADE_AS(`example.com')dnl\n" + MAILERS
        yield head + _feature("nullclient", "`smart.example'")
        yield head + _feature("msp", "")
        yield head + _feature("msp", "`[127.0.0.1]'")
        for name, args in FEATURES:
            extra = _feature("access_db", "") if name in NEEDS_ACCESS else ""
            yield head + extra + _feature(name, args) + MAILERS
            yield head + _feature("access_db", "") + _feature(name, args) + MAILERS_UUCP
        everything = "".join(
            _feature(name, args)
            for name, args in FEATURES
            if name not in {"nocanonify", "delay_checks", "promiscuous_relay", "nouucp"}
        )
        yield head + _feature("access_db", "") + everything + MAILERS_UUCP
        yield (
            head
            + _feature("access_db", "`hash -T<TMPF> /etc/mail/access'")
            + _feature("blocklist_recipients", "")
            + _feature("virtusertable", "")
            + _feature("mailertable", "")
            + _feature("genericstable", "")
            + "GENERICS_DOMAIN(`localhost')dnl\nMASQUERADE_AS(`example.com')dnl\n"
            + _feature("masquerade_envelope", "")
            + MAILERS
        )
    debian = Path(cf_dir) / "debian" / "sendmail.mc"
    if debian.exists():  # less its includes of /etc/mail/m4/*.m4 (site files, empty)
        lines = debian.read_text().splitlines()
        yield "\n".join(line for line in lines if "/etc/mail/m4/" not in line) + "\n"


def _without_local_parts(mc: str) -> str:
    keep: list[str] = []
    for line in mc.splitlines():
        if line.startswith(("LOCAL_RULE", "LOCAL_RULESETS")):
            break
        keep.append(line)
    return "\n".join(keep) + "\n"


def fixture_mcs(fixtures: Path) -> Iterator[str]:
    for mc in sorted(fixtures.glob("configs/*/*.mc")):
        yield _without_local_parts(mc.read_text()).replace("@ORACLE@", str(fixtures))


def catalogue(mcs: Iterator[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    with tempfile.TemporaryDirectory() as work:
        for index, mc in enumerate(mcs):
            if not mc.strip():
                continue
            path = Path(work) / f"stock{index}.mc"
            path.write_text(mc)
            made = subprocess.run(
                ["m4", str(path)], capture_output=True, text=True, cwd=work, check=False
            )
            if made.returncode != 0 or "Scheck_rcpt" not in made.stdout:
                print(f"# m4 failed for mc {index}: {made.stderr[:200]}", file=sys.stderr)
                continue
            cf = parse_cf(made.stdout, str(path))
            for ruleset in cf.rulesets:
                key = ruleset_key(ruleset)
                for rule in ruleset.rules:
                    found.add((key, fingerprint(key, rule.lhs, rule.rhs)))
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cf_dir = args[0] if args else DEFAULT_CF_DIR
    fixtures = Path(args[1]) if len(args) > 1 else None
    mcs = list(mc_texts(cf_dir))
    if fixtures is not None:
        mcs += list(fixture_mcs(fixtures))
    print("# ruleset<TAB>fingerprint of each rule sendmail's m4 macros write (rules/stockgen.py)")
    for key, print_ in sorted(catalogue(iter(mcs))):
        print(f"{key}\t{print_}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
