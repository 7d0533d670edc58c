"""sendmail's slow-downs for abusive SMTP clients, as pure arithmetic (no clock, no sleep).

sendmail counts, per session, the commands a mail client needs few of: HELO/EHLO
(MAXHELOCOMMANDS, 3), VRFY/EXPN (MAXVRFYCOMMANDS, 6), ETRN (MAXETRNCOMMANDS, 8) and
NOOP/VERB (MaxNOOPCommands, 20). From the limit on, each further command waits before
its answer: count // limit seconds at once, then up to 2**(count - limit) seconds in all,
never more than MAXTIMEOUT (4 minutes). With MaxDaemonChildren set, a client reaching
twice the limit is disconnected (`421 4.7.0 ... Too many bad commands`).

ConnectionRateThrottle: a daemon accepts that many connections in a second (and one
more, as sendmail counts); before each further one in the same second it waits a second.

BadRcptThrottle: once a session has had that many recipients refused, each further RCPT
waits BadRcptThrottleDelay seconds (1 by default) first.

The session turns these numbers into `Pause` events; the daemon does the waiting.
"""

from __future__ import annotations

from pysendmail.record import record

MAX_HELO_COMMANDS = 3
MAX_VRFY_COMMANDS = 6
MAX_ETRN_COMMANDS = 8
MAX_NOOP_COMMANDS = 20
MAX_ATTACK_DELAY = 4 * 60  # sendmail's MAXTIMEOUT
MAX_SHIFT = 8


@record(frozen=True)
class AttackDelay:
    """The waits for one counted command: `now` before anything else, `later` either at
    once too (commands answered after waiting) or after the answer (VRFY/EXPN), and
    whether the client is to be disconnected instead of answered."""

    now: int = 0
    later: int = 0
    disconnect: bool = False


def attack_delay(count: int, limit: int, *, children_limited: bool = False) -> AttackDelay:
    """The wait for the `count`-th command of a kind limited to `limit` per session."""
    if limit <= 0 or count < limit:
        return AttackDelay()
    shift = count - limit
    total = 1 << shift if shift <= MAX_SHIFT else MAX_ATTACK_DELAY
    total = min(total, MAX_ATTACK_DELAY)
    now = count // limit
    later = total - now
    if later >= MAX_ATTACK_DELAY or later < 0:
        later = MAX_ATTACK_DELAY  # sendmail's own clamp, kept as it is
    return AttackDelay(now, later, children_limited and count >= 2 * limit)


class CommandCounters:
    """The per-session counts behind the slow-downs."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.bad_recipients = 0

    def count(self, kind: str, limit: int, *, children_limited: bool) -> AttackDelay:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return attack_delay(self.counts[kind], limit, children_limited=children_limited)

    def rcpt_delay(self, throttle: int, delay: int) -> int:
        """Seconds to wait before handling a RCPT (0: none), as BadRcptThrottle says."""
        if throttle <= 0 or self.bad_recipients < throttle:
            return 0
        if self.bad_recipients == throttle:
            self.bad_recipients += 1  # sendmail logs the flood once, then counts past it
        return delay


class ConnectionRate:
    """The ConnectionRateThrottle count of one daemon (per wall-clock second)."""

    def __init__(self) -> None:
        self.second: int | None = None
        self.count = 0

    def admit(self, limit: int, now: float) -> int:
        """Seconds to wait before serving a connection accepted at `now` (0: none)."""
        if limit <= 0:
            return 0
        second = int(now)
        if second != self.second:
            self.second, self.count = second, 1
            return 0
        before, self.count = self.count, self.count + 1
        return 1 if before > limit else 0
