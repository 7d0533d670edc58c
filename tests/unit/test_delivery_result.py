"""DeliveryResult: sendmail's mapping of mailer exit codes and typed errors."""

from __future__ import annotations

import pytest

from pysendmail.delivery.result import DeliveryResult, Outcome, exit_outcome
from pysendmail.errors import TempFailure, UserUnknown


@pytest.mark.parametrize(
    ("code", "outcome", "status", "text"),
    [
        (0, Outcome.SENT, "2.0.0", "Sent"),
        (75, Outcome.DEFERRED, "4.0.0", "Deferred"),
        (74, Outcome.DEFERRED, "4.0.0", "Deferred: I/O error"),
        (71, Outcome.DEFERRED, "4.0.0", "Deferred: Operating system error"),
        (67, Outcome.BOUNCED, "5.1.1", "User unknown"),
        (68, Outcome.BOUNCED, "5.1.2", "Host unknown"),
        (69, Outcome.BOUNCED, "5.0.0", "Service unavailable"),
        (73, Outcome.BOUNCED, "5.0.0", "Can't create output"),
        (77, Outcome.BOUNCED, "5.0.0", "Insufficient permission"),
        (1, Outcome.BOUNCED, "5.3.0", "unknown mailer error 1"),
    ],
)
def test_exit_codes_map_as_sendmail_maps_them(
    code: int, outcome: Outcome, status: str, text: str
) -> None:
    result = DeliveryResult.from_exit("bob@example.com", code, mailer="prog")
    assert (result.outcome, result.status, result.text) == (outcome, status, text)
    assert result.mailer == "prog"
    assert exit_outcome(code) is outcome


def test_detail_text_is_kept() -> None:
    deferred = DeliveryResult.from_exit("b", 75, "mailbox busy")
    assert deferred.text == "Deferred: mailbox busy"
    assert deferred.is_temporary and not deferred.is_permanent
    bounced = DeliveryResult.from_exit("b", 67, "no such user")
    assert bounced.text == "User unknown (no such user)"
    assert bounced.is_permanent and not bounced.is_success


def test_typed_errors_decide_temporary_or_permanent() -> None:
    temp = DeliveryResult.from_error("b", TempFailure("disk full", status="4.3.1"))
    assert (temp.outcome, temp.status) == (Outcome.DEFERRED, "4.3.1")
    assert temp.text == "Deferred: disk full"
    perm = DeliveryResult.from_error("b", UserUnknown("User unknown"), mailer="local")
    assert (perm.outcome, perm.status, perm.exit_code) == (Outcome.BOUNCED, "5.1.1", 67)
