"""pysendmail.record: dataclasses' meaning for the features the project uses."""

from __future__ import annotations

import copy
import pickle

import pytest

from pysendmail.record import (
    COMPILE_AFTER,
    FrozenInstanceError,
    asdict,
    field,
    fields,
    is_record,
    record,
    replace,
)


@record(frozen=True)
class Point:
    """A frozen record with a plain default."""

    x: int
    y: int = 0


@record
class Bag:
    """A mutable record with factories, a hidden field and a field left out of comparison."""

    name: str
    items: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)
    secret: str = field(default="hidden", repr=False)
    count: int = field(init=False, default=0)


@record(frozen=True)
class Derived:
    """A frozen record whose __post_init__ fills a field that __init__ does not take."""

    words: tuple[str, ...]
    length: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "length", len(self.words))


@record(frozen=True)
class Nested:
    """Records inside containers, for asdict."""

    point: Point
    points: tuple[Point, ...] = ()
    by_name: dict[str, Point] = field(default_factory=dict)


def test_init_takes_positional_and_keyword_arguments_with_defaults():
    assert Point(1).y == 0
    assert Point(1, 2) == Point(x=1, y=2)
    with pytest.raises(TypeError):
        Point()
    with pytest.raises(TypeError):
        Point(1, 2, 3)
    with pytest.raises(TypeError):
        Point(1, z=3)


def test_factories_give_each_instance_its_own_value():
    first, second = Bag("a"), Bag("b")
    first.items.append("x")
    assert second.items == []
    assert Bag("c", ["y"]).items == ["y"]


def test_fields_outside_init_take_their_default_and_post_init_runs():
    bag = Bag("a")
    assert bag.count == 0
    with pytest.raises(TypeError):
        Bag("a", count=3)
    assert Derived(("a", "b")).length == 2


def test_frozen_records_refuse_assignment_and_deletion():
    point = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        point.x = 5
    with pytest.raises(FrozenInstanceError):
        del point.y
    with pytest.raises(AttributeError):
        point.z = 1
    mutable = Bag("a")
    mutable.name = "b"
    assert mutable.name == "b"


def test_equality_is_by_class_and_compared_fields():
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert Bag("a", note="one") == Bag("a", note="two")
    assert Bag("a") != Bag("b")
    assert Point(1, 2) != (1, 2)


def test_frozen_records_hash_by_their_fields_and_mutable_ones_do_not_hash():
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1, 2), Point(1, 2), Point(3)}) == 2
    with pytest.raises(TypeError):
        hash(Bag("a"))


def test_repr_names_the_class_and_the_shown_fields():
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    assert repr(Bag("a")) == "Bag(name='a', items=[], note='', count=0)"


def test_methods_written_in_the_class_win():
    @record(frozen=True)
    class Custom:
        value: int

        def __repr__(self) -> str:
            return "custom"

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 7

    assert repr(Custom(1)) == "custom"
    assert Custom(1) == Custom(2)
    assert hash(Custom(1)) == 7


def test_replace_makes_a_changed_copy_through_init():
    point = Point(1, 2)
    moved = replace(point, y=5)
    assert moved == Point(1, 5) and point == Point(1, 2)
    assert replace(Derived(("a",)), words=("a", "b", "c")).length == 3
    with pytest.raises(ValueError):
        replace(Bag("a"), count=2)
    with pytest.raises(TypeError):
        replace(object())


def test_fields_and_is_record():
    assert [f.name for f in fields(Bag)] == ["name", "items", "note", "secret", "count"]
    assert is_record(Point) and is_record(Point(1)) and not is_record(3)
    with pytest.raises(TypeError):
        fields(3)


def test_asdict_recurses_through_containers():
    nested = Nested(Point(1), (Point(2, 3),), {"a": Point(4)})
    assert asdict(nested) == {
        "point": {"x": 1, "y": 0},
        "points": ({"x": 2, "y": 3},),
        "by_name": {"a": {"x": 4, "y": 0}},
    }


def test_pickle_and_copy_keep_the_fields_and_frozenness():
    for original in (Point(1, 2), Derived(("a", "b")), Nested(Point(1), (Point(2),))):
        again = pickle.loads(pickle.dumps(original))
        assert again == original
        assert copy.deepcopy(original) == original
    restored = pickle.loads(pickle.dumps(Point(1, 2)))
    with pytest.raises(FrozenInstanceError):
        restored.x = 3


def test_a_class_gets_a_compiled_init_only_once_it_is_called_often():
    @record(frozen=True)
    class Late:
        value: int
        extra: tuple[str, ...] = field(default_factory=tuple)

    generic_init = Late.__dict__["__init__"]
    restored = pickle.loads(pickle.dumps(Point(1, 2)))
    assert restored.x == 1
    for number in range(COMPILE_AFTER):
        assert Late(number).value == number
    assert Late.__dict__["__init__"] is generic_init
    assert Late(7, ("a",)) == Late(value=7, extra=("a",))
    assert Late.__dict__["__init__"] is not generic_init
    assert Late(8).extra == ()


@pytest.mark.parametrize("compiled", [False, True], ids=["generic", "compiled"])
def test_generic_and_compiled_init_agree(compiled):
    @record
    class Sample:
        name: str
        items: list[str] = field(default_factory=list)
        size: int = 3
        seen: int = field(init=False, default=0)
        log: list[str] = field(init=False, default_factory=list)

        def __post_init__(self) -> None:
            self.log.append(self.name)

    if compiled:
        for _ in range(COMPILE_AFTER + 1):
            Sample("warm")
        assert Sample.__init__.__code__.co_varnames[:4] == ("self", "name", "items", "size")
    made = Sample("a", size=5)
    assert (made.name, made.items, made.size, made.seen, made.log) == ("a", [], 5, 0, ["a"])
    assert Sample("b", ["x"]).items == ["x"]
    for bad in ((), ("a", [], 1, 2), ("a",)):
        kwargs = {"name": "b"} if bad == ("a",) else {}
        with pytest.raises(TypeError):
            Sample(*bad, **kwargs)
    with pytest.raises(TypeError):
        Sample("a", seen=1)
    with pytest.raises(TypeError):
        Sample("a", colour="red")


def test_declaration_errors_match_dataclasses():
    with pytest.raises(ValueError):

        @record
        class MutableDefault:
            items: list[str] = []  # noqa: RUF012

    with pytest.raises(TypeError):

        @record
        class DefaultFirst:
            a: int = 0
            b: int

    with pytest.raises(ValueError):
        field(default=1, default_factory=int)
