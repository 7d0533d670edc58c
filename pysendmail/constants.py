"""Named constants that behave as `enum.IntEnum` and `enum.StrEnum` members, without `enum`.

`enum` (with the `functools`, `types` and `collections` it imports) costs `sendmail -t -i`
about a sixth of its start-up (bench/README.md), and the submission path needs only what
this module gives: a member is an int (or str) equal to its value, knows its `name`, is
the one instance for that value (`ExitCode(75) is ExitCode.TEMPFAIL`), and the class can
be iterated, indexed by name and called with a value (`ValueError` for an unknown one).
Members pickle by value. Class attributes whose names are upper case and whose values are
of the base type become the members, in the order written.
"""

from __future__ import annotations


class _ConstantsType(type):
    """The class of IntConstants and StrConstants: makes the members, finds them by value."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, object]):
        cls = super().__new__(mcls, name, bases, namespace)
        value_type = next((b for b in cls.__mro__ if b in (int, str)), None)
        members: dict[str, object] = {}
        by_value: dict[object, object] = {}
        for attribute, value in namespace.items():
            if value_type is None or not attribute.isupper() or attribute.startswith("_"):
                continue
            if type(value) is not value_type:
                continue
            member = value_type.__new__(cls, value)  # type: ignore[call-overload]
            member._name = attribute
            type.__setattr__(cls, attribute, member)
            members[attribute] = member
            by_value.setdefault(value, member)
        cls._members = members
        cls._by_value = by_value
        return cls

    def __call__(cls, value: object):
        try:
            return cls._by_value[value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

    def __iter__(cls):
        return iter(cls._members.values())

    def __len__(cls) -> int:
        return len(cls._members)

    def __getitem__(cls, name: str):
        return cls._members[name]

    def __contains__(cls, value: object) -> bool:
        try:
            return value in cls._by_value
        except TypeError:
            return False

    def __setattr__(cls, name: str, value: object) -> None:
        if name in cls.__dict__.get("_members", ()):
            raise AttributeError(f"cannot reassign member {name!r}")
        super().__setattr__(name, value)


class _Member:
    """What members of both kinds share: name, value, repr, pickling by value."""

    __slots__ = ()
    _name: str

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__}.{self._name}: {self.value!r}>"

    def __reduce__(self) -> tuple:
        return (type(self), (self.value,))

    def __copy__(self) -> object:
        return self

    def __deepcopy__(self, memo: object) -> object:
        return self


class IntConstants(_Member, int, metaclass=_ConstantsType):
    """Integer constants (as IntEnum): `str()` and formatting give the number."""

    @property
    def value(self) -> int:
        return int(self)

    __str__ = int.__repr__
    __format__ = int.__format__
    __hash__ = int.__hash__
    __eq__ = int.__eq__


class StrConstants(_Member, str, metaclass=_ConstantsType):
    """String constants (as StrEnum): `str()` and formatting give the value."""

    @property
    def value(self) -> str:
        return str.__str__(self)

    __str__ = str.__str__
    __format__ = str.__format__
    __hash__ = str.__hash__
    __eq__ = str.__eq__
