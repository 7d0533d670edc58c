"""pysendmail.constants: IntEnum/StrEnum behaviour without `enum`, as ExitCode and the
envelope's DSN values use it."""

from __future__ import annotations

import copy
import pickle

import pytest

from pysendmail.constants import IntConstants, StrConstants
from pysendmail.envelope import BodyType, Notify
from pysendmail.sysexits import ExitCode


class Colour(StrConstants):
    RED = "red"
    GREEN = "green"
    _hidden = "not a member"
    lower = "not a member either"


def test_an_int_constant_is_its_number() -> None:
    assert ExitCode.TEMPFAIL == 75 and isinstance(ExitCode.TEMPFAIL, int)
    assert str(ExitCode.USAGE) == "64" and f"{ExitCode.USAGE}" == "64"
    assert f"{ExitCode.USAGE:>4}" == "  64"
    assert repr(ExitCode.USAGE) == "<ExitCode.USAGE: 64>"
    assert ExitCode.USAGE.name == "USAGE" and ExitCode.USAGE.value == 64
    assert type(ExitCode.USAGE.value) is int
    assert {75: "x"}[ExitCode.TEMPFAIL] == "x"
    assert not ExitCode.OK


def test_lookup_by_value_gives_the_one_member() -> None:
    assert ExitCode(75) is ExitCode.TEMPFAIL
    assert ExitCode["NOUSER"] is ExitCode.NOUSER
    assert Notify("NEVER") is Notify.NEVER
    with pytest.raises(ValueError, match="3 is not a valid ExitCode"):
        ExitCode(3)
    with pytest.raises(ValueError):
        Notify("never")


def test_members_in_the_order_written() -> None:
    assert [code.name for code in ExitCode][:3] == ["OK", "USAGE", "DATAERR"]
    assert len(ExitCode) == 16
    assert 64 in ExitCode and 3 not in ExitCode
    assert list(Colour) == ["red", "green"]
    assert Colour._hidden == "not a member" and Colour.lower == "not a member either"


def test_a_str_constant_is_its_text() -> None:
    assert BodyType.EIGHT_BIT_MIME == "8BITMIME"
    assert str(BodyType.EIGHT_BIT_MIME) == "8BITMIME"
    assert f"<{Notify.DELAY}>" == "<DELAY>"
    assert type(BodyType.SEVEN_BIT.value) is str
    assert {b.value for b in BodyType} == {"7BIT", "8BITMIME", "BINARYMIME"}
    assert "x".join([Colour.RED, Colour.GREEN]) == "redxgreen"


def test_members_survive_pickle_and_copy_as_themselves() -> None:
    for member in (ExitCode.IOERR, Notify.SUCCESS, Colour.GREEN):
        assert pickle.loads(pickle.dumps(member)) is member
        assert copy.copy(member) is member and copy.deepcopy(member) is member


def test_members_cannot_be_reassigned() -> None:
    with pytest.raises(AttributeError):
        ExitCode.OK = 1  # type: ignore[misc]


def test_the_temporary_codes() -> None:
    assert [c for c in ExitCode if c.is_temporary] == [
        ExitCode.OSERR,
        ExitCode.IOERR,
        ExitCode.TEMPFAIL,
    ]


def test_an_empty_constants_class() -> None:
    class Nothing(IntConstants):
        pass

    assert list(Nothing) == [] and len(Nothing) == 0
