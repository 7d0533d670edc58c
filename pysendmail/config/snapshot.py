"""A Config as `marshal` data: how the configuration cache stores it.

`marshal` loads with no import at all and in C, where `pickle` costs `sendmail -t -i`
its `_pickle`, `functools` and `collections` imports (bench/README.md). marshal holds
only plain values, so `encode()` turns every record into a tagged tuple (its class by
index in a table of classes, its attribute names and values) and `decode()` rebuilds it;
containers that hold only plain values are stored as they are, and cost nothing to
decode.

The raw cf (`Config.cf`) and the rulesets are most of a Config and a submission reads
neither (unless the cf has routing rules of its own): `freeze()` stores them apart, and
`thaw()` returns a Config that decodes them when one of them is first read.

What cannot be stored (a value of a type this module does not know) raises
`SnapshotError`; the cache is then simply not written.
"""

from __future__ import annotations

import marshal
import os

from pysendmail.config.model import Config, FrozenMap

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bump when the encoding changes: an old file is then a cache miss. A record class whose
# fields changed since the file was written also makes it a miss (`_resolve`).
SNAPSHOT_FORMAT = 1
# Config fields decoded only when first read.
LAZY_FIELDS = ("cf", "rulesets")

_PLAIN = (type(None), bool, int, float, str, bytes)
_RECORD, _MAP, _TUPLE, _LIST, _DICT, _FROZENSET, _SET, _PATH = range(8)


class SnapshotError(ValueError):
    """A value in the Config that the snapshot format cannot hold."""


class _Encoder:
    def __init__(self) -> None:
        self.classes: list[tuple[str, str, tuple[str, ...]]] = []
        self._class_index: dict[type, int] = {}
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._done: dict[int, tuple[object, Any]] = {}  # id -> (value, encoded): shared once

    def encode(self, value: Any) -> Any:
        kind = type(value)
        if kind in _PLAIN:
            return value
        known = self._done.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        encoded = self._encode_object(value, kind)
        self._done[id(value)] = (value, encoded)
        return encoded

    def _encode_object(self, value: Any, kind: type) -> Any:
        if hasattr(kind, "__record_fields__"):
            return (_RECORD, self._class(kind), *self._attributes(value))
        if kind is FrozenMap:
            return (_MAP, self._container(dict, value))
        if kind is tuple:
            return self._maybe_plain(_TUPLE, value)
        if kind is list:
            return self._maybe_plain(_LIST, value)
        if kind is dict:
            return self._maybe_plain(_DICT, value)
        if kind is frozenset:
            return self._maybe_plain(_FROZENSET, value)
        if kind is set:
            return self._maybe_plain(_SET, value)
        if isinstance(value, os.PathLike) and kind.__module__ == "pathlib":
            return (_PATH, os.fspath(value))
        if isinstance(value, str | int) and hasattr(kind, "_by_value"):  # constants
            return (_RECORD, self._class(kind), None, value.value)
        raise SnapshotError(f"cannot store a {kind.__qualname__} in the configuration cache")

    def _class(self, kind: type) -> int:
        index = self._class_index.get(kind)
        if index is None:
            index = self._class_index[kind] = len(self.classes)
            self.classes.append((kind.__module__, kind.__qualname__, _field_names(kind)))
        return index

    def _attributes(self, value: Any) -> tuple[tuple[str, ...], tuple]:
        names = tuple(value.__dict__)
        names = self._keys.setdefault(names, names)
        return names, tuple(self.encode(item) for item in value.__dict__.values())

    def _maybe_plain(self, tag: int, value: Any) -> Any:
        if _all_plain(value):
            return value if tag != _TUPLE else (_TUPLE, value)
        return (tag, self._container(type(value), value))

    def _container(self, kind: type, value: Any) -> Any:
        if kind is dict or isinstance(value, dict):
            return {self.encode(k): self.encode(v) for k, v in value.items()}
        return tuple(self.encode(item) for item in value)


def _all_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(type(k) in _PLAIN and type(v) in _PLAIN for k, v in value.items())
    return all(type(item) in _PLAIN for item in value)


class _Decoder:
    def __init__(self, classes: list[type]) -> None:
        self.classes = classes
        self._done: dict[int, Any] = {}  # marshal shares equal encodings: decode each once

    def decode(self, value: Any) -> Any:
        if type(value) is not tuple:
            return value  # a plain value, or a plain list, dict or set
        known = self._done.get(id(value))
        if known is not None:
            return known[1]
        decoded = self._decode_tagged(value)
        self._done[id(value)] = (value, decoded)  # keeps `value` alive: ids stay unique
        return decoded

    def _decode_tagged(self, value: tuple) -> Any:
        tag = value[0]
        if tag == _RECORD:
            cls = self.classes[value[1]]
            if value[2] is None:  # a constant, by its value
                return cls(value[3])
            obj = cls.__new__(cls)
            obj.__dict__.update(zip(value[2], map(self.decode, value[3]), strict=True))
            return obj
        if tag == _TUPLE:
            return tuple(map(self.decode, value[1]))
        if tag in (_MAP, _DICT):
            items = {self.decode(k): self.decode(v) for k, v in value[1].items()}
            return FrozenMap(items) if tag == _MAP else items
        if tag == _LIST:
            return list(map(self.decode, value[1]))
        if tag == _FROZENSET:
            return frozenset(map(self.decode, value[1]))
        if tag == _SET:
            return set(map(self.decode, value[1]))
        if tag == _PATH:
            from pathlib import Path

            return Path(value[1])
        raise SnapshotError(f"unknown tag {tag!r} in the configuration cache")


def _field_names(kind: type) -> tuple[str, ...]:
    return tuple(spec.name for spec in getattr(kind, "__record_fields__", ()))


def _resolve(classes: list[tuple[str, str, tuple[str, ...]]]) -> list[type]:
    """The classes a snapshot names; SnapshotError when one is gone or its fields changed
    since the snapshot was written (by another version of pysendmail)."""
    import sys

    resolved = []
    for module_name, qualname, field_names in classes:
        __import__(module_name)
        found: Any = sys.modules[module_name]
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if not isinstance(found, type) or _field_names(found) != field_names:
            raise SnapshotError(f"{module_name}.{qualname} is not the class that was stored")
        resolved.append(found)
    return resolved


def freeze(config: Config, header: object) -> bytes:
    """`header` (plain values) and `config`, as bytes for `thaw()`."""
    encoder = _Encoder()
    lazy = {name: encoder.encode(getattr(config, name)) for name in LAZY_FIELDS}
    eager = encoder.encode(config)
    names, values = eager[2], list(eager[3])
    for name in LAZY_FIELDS:
        values[names.index(name)] = None
    lazy_blob = marshal.dumps(lazy)
    payload = (SNAPSHOT_FORMAT, header, encoder.classes, names, tuple(values), lazy_blob)
    return marshal.dumps(payload)


def read_header(data: bytes) -> tuple[object, tuple] | None:
    """The header stored by `freeze()` and what `thaw()` needs; None for another format."""
    try:
        payload = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    if type(payload) is not tuple or len(payload) != 6 or payload[0] != SNAPSHOT_FORMAT:
        return None
    return payload[1], payload


def thaw(payload: tuple) -> Config:
    """The Config of a payload from `read_header()`; its cf and rulesets decoded later."""
    _, _, class_names, names, values, lazy_blob = payload
    classes = _resolve(class_names)
    decoder = _Decoder(classes)
    config = _LazyConfig.__new__(_LazyConfig)
    state = config.__dict__
    state.update(zip(names, map(decoder.decode, values), strict=True))
    for name in LAZY_FIELDS:
        del state[name]
    state["_snapshot_lazy"] = (classes, lazy_blob)
    return config


class _LazyConfig(Config):
    """A Config whose LAZY_FIELDS are decoded when one is first read; it then becomes a
    plain Config (its class is switched), equal to the one that was stored."""

    def __getattr__(self, name: str) -> Any:
        if name not in LAZY_FIELDS:
            raise AttributeError(name)
        state = self.__dict__
        pending = state.get("_snapshot_lazy")
        if pending is not None:
            classes, blob = pending
            parts = marshal.loads(blob)
            decoder = _Decoder(classes)
            for field_name in LAZY_FIELDS:
                state.setdefault(field_name, decoder.decode(parts[field_name]))
            state.pop("_snapshot_lazy", None)
            object.__setattr__(self, "__class__", Config)
        try:
            return state[name]
        except KeyError:
            raise AttributeError(name) from None

    def __eq__(self, other: object) -> Any:
        self.__getattr__(LAZY_FIELDS[0])  # now a plain Config
        return self == other

    __hash__ = Config.__hash__
