"""How long a message may wait: the per-class `Timeout.queuewarn.*` and
`Timeout.queuereturn.*`, and the class of a queued message.

As sendmail decides it: a bounce or other DSN is class `dsn`; otherwise a
`Priority: urgent|normal|non-urgent` header names the class, else the sign of the
message's precedence (the `Precedence:` header looked up in the cf's `P` lines: above
0 urgent, below 0 non-urgent, unknown or 0 normal). The plain `Timeout.queuereturn`
(and the old `T` option) sets every class that the cf does not set on its own.
Pure functions of the configuration and the queued message.
"""

from __future__ import annotations

from collections.abc import Mapping

from pysendmail.config.options import defaults
from pysendmail.record import record

CLASSES = ("normal", "urgent", "non-urgent", "dsn")
_DEFAULTS = defaults()


def _seconds(value: object, fallback: float) -> float:
    if isinstance(value, int | float):
        return float(value)
    return fallback


@record(frozen=True)
class QueueTimeouts:
    warn: Mapping[str, float]  # class -> seconds before a delay DSN
    give_up: Mapping[str, float]  # class -> seconds before the bounce

    @classmethod
    def uniform(cls, warn: float, give_up: float) -> QueueTimeouts:
        return cls({c: warn for c in CLASSES}, {c: give_up for c in CLASSES})

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> QueueTimeouts:
        """From a Config's options (which hold the registry's defaults for unset ones)."""
        return cls(_per_class(options, "queuewarn"), _per_class(options, "queuereturn"))

    def for_class(self, timeout_class: str) -> tuple[float, float]:
        """(queuewarn, queuereturn) for a class name of CLASSES."""
        key = timeout_class if timeout_class in self.warn else "normal"
        return self.warn[key], self.give_up[key]


def _per_class(options: Mapping[str, object], kind: str) -> dict[str, float]:
    generic_name = f"Timeout.{kind}"
    generic = options.get(generic_name, _DEFAULTS[generic_name])
    generic_set = generic != _DEFAULTS[generic_name]
    found: dict[str, float] = {}
    for name in CLASSES:
        option = f"Timeout.{kind}.{name}"
        default = _DEFAULTS[option]
        value = options.get(option, default)
        if value == default and generic_set:
            value = generic  # the plain option covers what the cf leaves to it
        found[name] = _seconds(value, _seconds(default, 0.0))
    return found


def header_value(headers: object, name: str) -> str | None:
    """The first header `name` of a qf's header list (objects with name and value)."""
    for header in headers or ():  # type: ignore[attr-defined]
        if str(getattr(header, "name", "")).lower() == name:
            return " ".join(str(header.value).split())
    return None


def timeout_class(headers: object, priorities: Mapping[str, int], *, is_dsn: bool) -> str:
    """The class whose timeouts a queued message gets (see the module's docstring)."""
    if is_dsn:
        return "dsn"
    priority = (header_value(headers, "priority") or "").lower()
    if priority in ("urgent", "normal", "non-urgent"):
        return priority
    precedence = (header_value(headers, "precedence") or "").lower()
    value = {k.lower(): v for k, v in priorities.items()}.get(precedence, 0)
    if value > 0:
        return "urgent"
    if value < 0:
        return "non-urgent"
    return "normal"
