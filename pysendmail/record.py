"""Record classes: what `dataclasses` gives, without its cost at import time.

`dataclasses` writes each class's `__init__`, `__repr__`, `__eq__`, `__hash__` (and, for a
frozen class, `__setattr__` and `__delattr__`) as source text and compiles it when the
class statement runs: about half a millisecond a class on a small machine, plus `inspect`,
which it imports. `sendmail -t -i` runs once per message and imports some fifty classes,
so that was most of its start-up. `record` shares one `__repr__`, `__eq__`, `__hash__`
and frozen `__setattr__` among all classes; a class's `__init__` is a generic one until
the class has been called COMPILE_AFTER times, and only then compiled for it, so a
short-lived command compiles none and a daemon's hot classes still get a fast one.

The meaning is dataclasses' for what pysendmail uses: `@record`, `@record(frozen=True)`,
`field(default=, default_factory=, init=, repr=, compare=)`, `__post_init__`, a method
defined in the class body wins over the generated one, `replace()`, `fields()`,
`asdict()`. Records do not inherit fields from other records.
"""

from __future__ import annotations

from _operator import attrgetter  # operator.py itself only re-exports it: start-up time

# typing is not imported at run time: it is a sixth of `sendmail -t -i`'s start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_kwargs: object) -> Callable[[T], T]:
        return lambda decorated: decorated


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_FIELDS = "__record_fields__"


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class Field:
    """One field of a record: its name, default and what the generated methods do with it."""

    __slots__ = ("compare", "default", "default_factory", "init", "name", "repr")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        compare: bool = True,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | _Missing = MISSING,
    init: bool = True,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """Describe a field whose default, place in `__init__`, repr or comparison is special."""
    return Field(default, default_factory, init, repr, compare)


@dataclass_transform(field_specifiers=(field, Field))
def record(cls: type[T] | None = None, /, *, frozen: bool = False) -> Any:
    """Make `cls` a record: `__init__`, `__repr__`, `__eq__` (and `__hash__` when frozen)."""

    def wrap(cls: type[T]) -> type[T]:
        return _make_record(cls, frozen)

    return wrap if cls is None else wrap(cls)


def _make_record(cls: type[T], frozen: bool) -> type[T]:
    # Runs for every record class at every start of every command: kept lean (one pass
    # over the fields; plain defaults get a Field without the keyword checks).
    body = cls.__dict__
    record_fields = []
    init_names = []
    compared = []
    shown = []
    seen_default = False
    for name in body.get("__annotations__", ()):
        value = body.get(name, MISSING)
        if type(value) is Field:
            spec = value
            default = spec.default
            has_default = default is not MISSING or spec.default_factory is not MISSING
            if default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, default)
        else:
            spec = _plain_field(value)
            default = value
            has_default = value is not MISSING
        spec.name = name
        if spec.init:
            if has_default:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            init_names.append(name)
        if default is not MISSING and type(default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(default)} for field {name} is not allowed:"
                " use default_factory"
            )
        if spec.compare:
            compared.append(name)
        if spec.repr:
            shown.append(name)
        record_fields.append(spec)

    setattr(cls, _FIELDS, tuple(record_fields))
    cls.__match_args__ = tuple(init_names)  # type: ignore[attr-defined]
    cls.__record_key__ = _key_getter(compared)  # type: ignore[attr-defined]
    cls.__record_repr__ = tuple(shown)  # type: ignore[attr-defined]

    _RECORD_CLASSES[cls] = frozen
    if "__init__" not in body:
        cls.__init__ = _record_init  # type: ignore[misc]
    if "__repr__" not in body:
        cls.__repr__ = _record_repr  # type: ignore[assignment]
    if "__eq__" not in body:
        cls.__eq__ = _record_eq  # type: ignore[assignment]
    explicit_hash = "__hash__" in body and not (body["__hash__"] is None and "__eq__" in body)
    if not explicit_hash:
        cls.__hash__ = _record_hash if frozen else None  # type: ignore[assignment]
    if frozen:
        cls.__setattr__ = _frozen_setattr  # type: ignore[assignment]
        cls.__delattr__ = _frozen_delattr  # type: ignore[assignment]
    return cls


def _plain_field(default: Any) -> Field:
    """Field(default) without the call's keyword handling and checks."""
    spec = _new_field(Field)
    spec.default = default
    spec.default_factory = MISSING
    spec.init = spec.repr = spec.compare = True
    return spec


_new_field = object.__new__


def _key_getter(names: list[str]) -> Callable[[Any], tuple]:
    """The fields compared, as a tuple; stored on the class as it is: an attrgetter is no
    descriptor, and the functions are wrapped so that they do not bind (staticmethod)."""
    if not names:
        return staticmethod(lambda obj: ())  # type: ignore[return-value]
    if len(names) == 1:
        only = attrgetter(names[0])
        return staticmethod(lambda obj: (only(obj),))  # type: ignore[return-value]
    return attrgetter(*names)


def _record_repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_repr__)
    return f"{type(self).__qualname__}({shown})"


def _record_eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        key = self.__record_key__
        return key(self) == key(other)
    return NotImplemented


def _record_hash(self: Any) -> int:
    return hash(self.__record_key__(self))


def _frozen_setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


# A class called this many times gets an `__init__` compiled for it; before that a
# generic one serves, so a short-lived command compiles nothing.
COMPILE_AFTER = 50


class _InitPlan:
    """What the generic `__init__` of one record class needs, made at its first call."""

    __slots__ = ("accepted", "calls", "fields", "frozen", "names", "owner", "post_init")

    def __init__(self, owner: type) -> None:
        self.owner = owner
        self.fields: tuple[Field, ...] = owner.__dict__[_FIELDS]
        self.frozen = _RECORD_CLASSES[owner]
        self.names = tuple([spec.name for spec in self.fields if spec.init])
        self.accepted = frozenset(self.names)
        self.post_init = hasattr(owner, "__post_init__")
        self.calls = 0


# Every record class (-> frozen), and the init plans made so far (by class called).
_RECORD_CLASSES: dict[type, bool] = {}
_PLANS: dict[type, _InitPlan] = {}


def _plan(cls: type) -> _InitPlan:
    owner = next(k for k in cls.__mro__ if k in _RECORD_CLASSES)
    return _PLANS.setdefault(cls, _InitPlan(owner))


def _record_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """The `__init__` every record class shares until it has been called COMPILE_AFTER
    times (one function for all: making a closure per class cost every command's start)."""
    plan = _PLANS.get(type(self)) or _plan(type(self))
    plan.calls += 1
    if plan.calls > COMPILE_AFTER:
        owner = plan.owner
        compiled = _compile_init(owner, plan.fields, plan.frozen)
        owner.__init__ = compiled  # type: ignore[misc]
        compiled(self, *args, **kwargs)
        return
    names = plan.names
    if len(args) > len(names):
        raise TypeError(
            f"{plan.owner.__qualname__}.__init__() takes {len(names) + 1} positional"
            f" arguments, {len(args) + 1} given"
        )
    values = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in plan.accepted:
            where = f"{plan.owner.__qualname__}.__init__()"
            raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
        if key in values:
            where = f"{plan.owner.__qualname__}.__init__()"
            raise TypeError(f"{where} got multiple values for argument {key!r}")
        values[key] = value
    target = self.__dict__
    frozen = plan.frozen
    for spec in plan.fields:
        name = spec.name
        if spec.init and name in values:
            value = values[name]
        elif spec.default_factory is not MISSING:
            value = spec.default_factory()
        elif spec.default is not MISSING:
            value = spec.default
        elif spec.init:
            where = f"{plan.owner.__qualname__}.__init__()"
            raise TypeError(f"{where} missing required argument: {name!r}")
        else:
            continue
        if frozen:
            target[name] = value
        else:
            setattr(self, name, value)
    if plan.post_init:
        self.__post_init__()


def _compile_init(cls: type, fields_tuple: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """The class's real `__init__`, compiled from source as dataclasses would make it."""
    scope: dict[str, Any] = {"MISSING": MISSING}
    params = ["self"]
    lines = ["_d = self.__dict__"] if frozen else []
    for spec in fields_tuple:
        name = spec.name
        if spec.default_factory is not MISSING:
            scope[f"_factory_{name}"] = spec.default_factory
            if spec.init:
                params.append(f"{name}=MISSING")
                value = f"_factory_{name}() if {name} is MISSING else {name}"
            else:
                value = f"_factory_{name}()"
        elif spec.init:
            if spec.default is MISSING:
                params.append(name)
            else:
                scope[f"_default_{name}"] = spec.default
                params.append(f"{name}=_default_{name}")
            value = name
        elif spec.default is not MISSING:
            scope[f"_default_{name}"] = spec.default
            value = f"_default_{name}"
        else:
            continue
        lines.append(f"_d[{name!r}] = {value}" if frozen else f"self.{name} = {value}")
    if hasattr(cls, "__post_init__"):
        lines.append("self.__post_init__()")
    source = f"def __init__({', '.join(params)}):\n" + "".join(
        f"    {line}\n" for line in lines or ["pass"]
    )
    exec(source, scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def is_record(obj: object) -> bool:
    """True for a record class or an instance of one."""
    return hasattr(obj if isinstance(obj, type) else type(obj), _FIELDS)


def fields(obj: object) -> tuple[Field, ...]:
    """The fields of a record class or instance, in order."""
    try:
        return getattr(obj, _FIELDS)
    except AttributeError:
        raise TypeError("fields() needs a record class or instance") from None


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record `obj` with `changes` made, through its `__init__`."""
    for spec in fields(obj):
        if not spec.init:
            if spec.name in changes:
                raise ValueError(f"field {spec.name} cannot be changed with replace()")
            continue
        if spec.name not in changes:
            changes[spec.name] = getattr(obj, spec.name)
    return type(obj)(**changes)


def asdict(obj: object) -> Any:
    """A record as a dict, recursively (records in lists, tuples and dicts too)."""
    if is_record(obj) and not isinstance(obj, type):
        return {spec.name: asdict(getattr(obj, spec.name)) for spec in fields(obj)}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*[asdict(item) for item in obj])
    if isinstance(obj, list | tuple):
        return type(obj)(asdict(item) for item in obj)
    if isinstance(obj, dict):
        return type(obj)((asdict(key), asdict(value)) for key, value in obj.items())
    return obj
