"""Helpers for the delivery tests: directories any uid can enter, mailer specs read
from a fixture cf's `M` lines (until the config parser provides them), test users."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pysendmail.config.model import CfFile, Config, MailerSpec
from pysendmail.errors import Location

IS_ROOT = os.geteuid() == 0
NOBODY_UID = 65534


@contextmanager
def world_enterable_dir(prefix: str = "pysendmail-delivery-") -> Iterator[Path]:
    """A temp dir that a switched-to uid can reach (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def mailers_from_cf(cf_text: str, cf_name: str = "test.cf") -> dict[str, MailerSpec]:
    """The `M` lines of a cf (with their continuation lines), split into fields."""
    mailers: dict[str, MailerSpec] = {}
    lines = cf_text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        index += 1
        if not line.startswith("M"):
            continue
        while index < len(lines) and lines[index][:1] in (" ", "\t"):
            line += " " + lines[index].strip()
            index += 1
        name, _, rest = line[1:].partition(",")
        fields: dict[str, str] = {}
        for part in re.split(r",\s*(?=[A-Za-z/]=)", rest.strip()):
            key, _, value = part.partition("=")
            fields[key.strip()] = value.strip()
        mailers[name.strip()] = MailerSpec(name.strip(), fields, Location(cf_name, number))
    return mailers


def make_config(
    options: dict[str, object] | None = None,
    *,
    e_lines: tuple[str, ...] = (),
    mailers: dict[str, MailerSpec] | None = None,
    hostname: str = "mail.example.com",
    local_host_names: frozenset[str] = frozenset(),
) -> Config:
    """A translated Config holding only what delivery reads (no cf parser needed)."""
    here = Location("test.cf", 1)
    cf = CfFile(
        path="test.cf",
        version=(),
        macros=(),
        class_sources=(),
        options=(),
        mailers=(),
        maps=(),
        rulesets=(),
        headers=(),
        priorities=(),
        trusted_users=(),
        other=tuple(("E", text, here) for text in e_lines),
    )
    return Config(
        None,
        cf,
        {},
        {},
        dict(options or {}),
        dict(mailers or {}),
        {},
        {},
        (),
        (),
        hostname=hostname,
        local_host_names=local_host_names,
    )
