"""A queue runner assembled from a Config: the real router and the real mailers.

The command line (`-q`, `-qR…`, `-odi`) and the daemon (`-q30m`) call
`runner_for_config()`; tests build `QueueRunner` with fakes instead. Mailers: local,
prog and *file* as delivery/ does them, F=z ones by LMTP, other [IPC] ones by SMTP, any
other with a program in P= (procmail ...) by running it. A mailer the configuration
defines but this installation has no module for is given a deliverer that defers (the
mail waits in the queue, nothing bounces); a mailer the configuration does not define at
all bounces as "No such mailer".
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import IO, Any

from pysendmail.config.model import Config
from pysendmail.delivery.lmtp import LmtpSettings
from pysendmail.delivery.local import LocalSettings, is_builtin_local
from pysendmail.delivery.prog import ProgramSettings
from pysendmail.delivery.remote import AuthInfo, RemoteSettings, authinfo_lookup
from pysendmail.delivery.result import DeliveryResult
from pysendmail.dns import DnsTempFailure, Resolver, ResolverSettings
from pysendmail.log import MailLog
from pysendmail.queue.deliverers import (
    FileDeliverer,
    LmtpDeliverer,
    LocalDeliverer,
    ProgDeliverer,
    ProgramMailerDeliverer,
    RemoteDeliverer,
)
from pysendmail.queue.runner import (
    DEFAULT_QUEUERETURN,
    DEFAULT_QUEUEWARN,
    Deliverer,
    QueueRunner,
    parse_interval,
)
from pysendmail.queue.store import QueueStore
from pysendmail.queue.timeouts import QueueTimeouts
from pysendmail.rewriting import MailerAddresses
from pysendmail.routing import FILE_MAILER, PROG_MAILER, Router

DEFAULT_QUEUE_DIR = "/var/spool/mqueue"


def queue_dir(config: Config) -> str:
    return str(config.option("QueueDirectory", DEFAULT_QUEUE_DIR) or DEFAULT_QUEUE_DIR)


def store_for_config(config: Config) -> QueueStore:
    """The QueueStore of QueueDirectory; SuperSafe=false turns the fsyncs off."""
    super_safe = str(config.option("SuperSafe", "true")).strip().lower()
    return QueueStore(queue_dir(config), fsync=super_safe not in ("false", "f", "no", "0"))


LOOPBACK_ONLY_ENV = "PYSENDMAIL_LOOPBACK_ONLY"


class LoopbackOnlyResolver:
    """A resolver that answers only with loopback addresses (127.0.0.0/8, ::1).

    Set PYSENDMAIL_LOOPBACK_ONLY=1 (the test suite does) and no queue run can open a
    connection to any other address, whatever a fixture's hosts file says; recipients
    elsewhere are deferred instead."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolver, name)

    def resolve_mx(self, domain: str) -> Any:
        settings = self._resolver.settings
        if settings.uses_dns and not all(_is_loopback(s) for s in settings.nameservers or ["-"]):
            raise DnsTempFailure(f"{domain}: no DNS outside this machine (loopback-only mode)")
        return self._resolver.resolve_mx(domain)

    def host_addresses(self, host: str) -> list[str]:
        found = self._resolver.host_addresses(host)
        kept = [a for a in found if _is_loopback(a)]
        if not kept:
            raise DnsTempFailure(f"{host}: not on this machine (loopback-only mode)")
        return kept


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def smart_host_credentials(config: Config) -> Callable[[str, str], AuthInfo | None] | None:
    """AUTH credentials for remote hosts, as sendmail finds them: the `authinfo` map
    (FEATURE(authinfo)), else the access map's `AuthInfo:` entries."""
    spec = config.maps.get("authinfo") or config.maps.get("access")
    if spec is None:
        return None
    from pysendmail.config.compiled import open_map

    return authinfo_lookup(open_map(spec).lookup)


def _resolver_for(config: Config, resolver: Resolver | None) -> Resolver:
    resolver = resolver or Resolver(ResolverSettings.from_config(config))
    if os.environ.get(LOOPBACK_ONLY_ENV) and not isinstance(resolver, LoopbackOnlyResolver):
        resolver = LoopbackOnlyResolver(resolver)  # type: ignore[assignment]
    return resolver


def deliverers_for_config(
    config: Config,
    resolver: Resolver | None = None,
    *,
    addresses: MailerAddresses | None = None,
) -> dict[str, Deliverer]:
    """One deliverer per mailer; with `addresses`, each rewrites the envelope sender
    and the header addresses through its mailer's rulesets."""
    found = _deliverers(config, resolver)
    if addresses is not None:
        for name, deliverer in found.items():
            if hasattr(deliverer, "rewrite"):
                deliverer.rewrite = addresses.for_mailer(name)  # type: ignore[attr-defined]
    return found


def _deliverers(config: Config, resolver: Resolver | None) -> dict[str, Deliverer]:
    program = ProgramSettings.from_config(config)
    local_spec = config.mailers.get("local")
    found: dict[str, Deliverer] = {
        "local": LocalDeliverer(LocalSettings.from_config(config), local_spec),
        PROG_MAILER: ProgDeliverer(program, config.mailers.get(PROG_MAILER)),
        FILE_MAILER: FileDeliverer(program, config.mailers.get(FILE_MAILER)),
    }
    remote: RemoteSettings | None = None
    lmtp: LmtpSettings | None = None
    for name, spec in config.mailers.items():
        is_local = name == "local"
        if "z" in spec.flags and not (is_local and is_builtin_local(spec)):
            # F=z: LMTP, to a program or over [IPC] (mail.local itself stays built in)
            if lmtp is None:
                resolver = _resolver_for(config, resolver)
                lmtp = LmtpSettings(config.hostname, program, resolver)
            found[name] = LmtpDeliverer(lmtp, spec, local=is_local)
        elif spec.path == "[IPC]" and name not in found:
            if remote is None:
                resolver = _resolver_for(config, resolver)
                remote = RemoteSettings.from_config(
                    config, resolver, auth_lookup=smart_host_credentials(config)
                )
            found[name] = RemoteDeliverer(remote, spec)
    for name, spec in config.mailers.items():
        if name not in found and spec.path.startswith("/"):
            found[name] = ProgramMailerDeliverer(program, spec)  # procmail, scripts ...
        found.setdefault(name, Unavailable(name))
    return found


class Unavailable:
    """A configured mailer without a delivery module here: its mail stays queued."""

    def __init__(self, mailer: str) -> None:
        self.mailer = mailer

    def deliver(self, message: Any, deliveries: list[Any]) -> list[DeliveryResult]:
        text = f"Deferred: no delivery agent for mailer {self.mailer} in this installation"
        return [
            DeliveryResult.deferred(
                str(getattr(d, "address", "")), text, "4.3.5", mailer=self.mailer
            )
            for d in deliveries
        ]


def runner_for_config(
    config: Config,
    *,
    verbose: IO[str] | None = None,
    mail_log: MailLog | None = None,
    router: Router | None = None,
    resolver: Resolver | None = None,
    extra_deliverers: dict[str, Deliverer] | None = None,
) -> QueueRunner:
    """A QueueRunner for the configuration's queue, router and mailers."""
    route = router or Router(config)
    deliverers = deliverers_for_config(config, resolver, addresses=MailerAddresses(config, route))
    deliverers.update(extra_deliverers or {})
    return QueueRunner(
        store_for_config(config),
        route=route.route,
        deliverers=deliverers,
        hostname=config.hostname,
        queuewarn=parse_interval(config.option("Timeout.queuewarn"), DEFAULT_QUEUEWARN),
        queuereturn=parse_interval(config.option("Timeout.queuereturn"), DEFAULT_QUEUERETURN),
        timeouts=QueueTimeouts.from_options(config.options),
        priorities=config.priorities,
        min_queue_age=parse_interval(config.option("MinQueueAge"), 0.0),
        sort_order=str(config.option("QueueSortOrder", "priority") or "priority"),
        mail_log=mail_log,
        verbose=verbose,
        compat=compat_check(config),
    )


def compat_check(config: Config) -> Callable[[str, Any], DeliveryResult | None]:
    """sendmail's check_compat before each delivery, when the cf has its own rules there
    (LOCAL_RULESETS): `$#error` bounces that delivery, a 4xx error defers it, `$#discard`
    drops it as delivered. The rules are compiled at the first delivery, and only for a
    cf whose check_compat is not stock."""
    checks: list[Any] = []  # [RuleChecks | None] once decided

    def check(sender: str, delivery: Any) -> DeliveryResult | None:
        if not checks:
            from pysendmail.rules.smtpchecks import checks_for_config

            made = checks_for_config(config)
            checks.append(made if made is not None and made.runs("check_compat") else None)
        if checks[0] is None:
            return None
        recipient = getattr(delivery, "address", "") or str(getattr(delivery, "original", ""))
        verdict = checks[0].compat(sender, recipient)
        if verdict is None or verdict.accepted:
            return None
        if verdict.action == "discard":
            return DeliveryResult.sent(recipient, "discarded")
        code, _, rest = (verdict.reply or "550 5.7.1 Rejected").partition(" ")
        status = verdict.status or ("4.7.1" if code.startswith("4") else "5.7.1")
        text = rest.partition(" ")[2] if rest[:1].isdigit() else rest
        if code.startswith("4") or verdict.action == "tempfail":
            return DeliveryResult.deferred(recipient, f"Deferred: {text}", status)
        return DeliveryResult.bounced(recipient, text, status)

    return check
