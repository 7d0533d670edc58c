"""From a parsed command line to the configuration the modes run with.

This module owns how the command line's settings become `Overrides` (`-oXvalue` by the
options registry's one-letter names, unknown letters ignored as sendmail ignores them;
`-O Name=value`; `-M` macros), which configuration file is read, and the small view of
the configuration a submission needs (`SubmitContext`).
"""

from __future__ import annotations

from pysendmail.cli.options import Invocation
from pysendmail.config.model import Config, Overrides

DEFAULT_CF = "/etc/mail/sendmail.cf"


def overrides_from(inv: Invocation) -> Overrides:
    """The command line's option settings and macros, later ones winning."""
    from pysendmail.config.options import MACRO_LETTER, canonical_name, option_by_letter

    options: dict[str, str] = {}
    macros: dict[str, str] = {}
    for setting in inv.settings:
        if setting.letter is not None:
            if setting.letter == MACRO_LETTER:
                name, value = setting.value[:1], setting.value[1:]
                if name:
                    macros[name] = value
                continue
            spec = option_by_letter(setting.letter)
            if spec is None:
                continue  # sendmail ignores option letters it does not know
            options[spec.name] = setting.value
        elif setting.name:
            options[canonical_name(setting.name) or setting.name] = setting.value
    macros.update(inv.macros)
    return Overrides(options=options, macros=macros)


def sets_option(inv: Invocation, name: str) -> bool:
    """Whether the command line set option `name` (by long name or by letter)."""
    return name in overrides_from(inv).options


def cf_path(inv: Invocation) -> str | None:
    """The configuration file to read: -C, else the system one, else None (embedded)."""
    import os

    if inv.config_file is not None:
        return inv.config_file
    return DEFAULT_CF if os.path.exists(DEFAULT_CF) else None


def load_config(inv: Invocation) -> Config:
    """The configuration for this run, from its cache when fresh. Raises Unavailable when
    this installation has no configuration loader."""
    from pysendmail.cli.sendmail import Unavailable

    try:
        from pysendmail.config.cache import load_config as load
    except ImportError as exc:
        raise Unavailable(inv.mode) from exc
    config = load(cf_path(inv), overrides_from(inv))
    if config.cf_path is None:
        # The embedded default on a fresh machine or account: make its directories.
        from pysendmail.config.statedir import prepare_state_dir

        prepare_state_dir(config)
    return config


def _mode_letter(value: object, default: str) -> str:
    text = str(value or "").strip()
    return text[:1].lower() if text else default


def _expander(config: Config, router: object | None):
    """Alias expansion and recipient checks by routing, built when first used."""
    made: list[object] = [router] if router is not None else []

    def expand(lists: list[str], allow_programs: bool):
        if not made:
            from pysendmail.routing import Router

            made.append(Router(config))
        return made[0].expand(lists, allow_programs=allow_programs)  # type: ignore[attr-defined]

    return expand


def submit_context(config: Config, inv: Invocation, *, router: object | None = None):
    """The part of `config` a submission uses. `router` replaces routing.Router(config)
    (tests inject one with their own user database)."""
    from pysendmail.cli.submit import SubmitContext

    # The command line's own settings win (they are in `config` already when it was
    # loaded with them; not when a handed-over submission is taken in).
    own = overrides_from(inv).options
    ignore_dots = config.option("IgnoreDots", False)
    if "IgnoreDots" in own:
        from pysendmail.config.options import parse_bool

        ignore_dots = parse_bool(own["IgnoreDots"])
    delivery_mode = own.get("DeliveryMode", config.option("DeliveryMode"))
    error_mode = own.get("ErrorMode", config.option("ErrorMode"))
    trusted = set(config.trusted_users) | set(config.classes.get("t", frozenset()))
    return SubmitContext(
        hostname=config.hostname,
        queue_dir=str(config.option("QueueDirectory", "/var/spool/mqueue")),
        templates=tuple(config.headers),
        trusted_users=frozenset(trusted | {"root"}),
        local_domains=frozenset(config.local_host_names | config.classes.get("w", frozenset())),
        macros=dict(config.macros),
        ignore_dots=bool(ignore_dots),
        old_style_headers=bool(config.option("OldStyleHeaders", False)),
        delivery_mode=_mode_letter(delivery_mode, "b"),
        error_mode=_mode_letter(error_mode, "p"),
        queue_dir_from_command_line=sets_option(inv, "QueueDirectory"),
        config_from_command_line=inv.config_file,
        # DeliveryMode=defer leaves every lookup to the queue run, as in sendmail.
        expand=(
            None
            if inv.no_alias or _mode_letter(delivery_mode, "b") == "d"
            else _expander(config, router)
        ),
    )


def take_in_submissions(config: Config) -> list[str]:
    """Queue what users without access to the queue handed over (root only)."""
    from pysendmail.cli import handoff

    queue_dir = str(config.option("QueueDirectory", "/var/spool/mqueue"))

    def context_for(inv: Invocation):
        return submit_context(config, inv)

    return handoff.take_in(queue_dir, handoff.submit_as_owner(context_for))


def may_administer(config: Config, uid: int) -> bool:
    """Whether the user may run the daemon, rebuild aliases or purge host status: root,
    the TrustedUser, or (for aliases, as sendmail allows) a member of class t."""
    import pwd

    if uid == 0:
        return True
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    trusted_user = str(config.option("TrustedUser", "root") or "root")
    if name == trusted_user or str(uid) == trusted_user:
        return True
    return name in set(config.trusted_users) | set(config.classes.get("t", frozenset()))
