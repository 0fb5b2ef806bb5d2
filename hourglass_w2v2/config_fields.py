"""Config fields that check themselves: the type from the annotation, the range from ``checked``.

Both config dataclasses are checked this way: the experiment config's sections
(``training/config.py``) and ``ModelConfig``. A bad value raises :class:`ConfigError` naming
the key, e.g. ``config key 'optim.lr' = -0.001 is out of range: must be > 0``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A config value of the wrong type or out of its range; ``key`` is its dotted name and
    ``detail`` what is wrong with it (the message is ``config key 'KEY' DETAIL``)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"config key '{key}' {detail}")
        self.key, self.detail = key, detail

    def at(self, where: str) -> ConfigError:
        """The same error saying where the value came from."""
        return ConfigError(self.key, f"{self.detail} ({where})")


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The allowed values of a config field: a numeric range and/or a set of choices.

    For a list or tuple field the range applies to each element.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None

    def allows(self, x: Any) -> bool:
        """Whether the scalar ``x`` is inside the bounds (NaN never is, when a range is set)."""
        if self.choices is not None and x not in self.choices:
            return False
        # written as "not inside" so that NaN fails every comparison
        return not (
            (self.ge is not None and not x >= self.ge)
            or (self.gt is not None and not x > self.gt)
            or (self.le is not None and not x <= self.le)
            or (self.lt is not None and not x < self.lt)
        )

    def describe(self) -> str:
        """The bounds in words, e.g. ``must be >= 0 and < 1``."""
        if self.choices is not None:
            return "is not one of " + ", ".join(self.choices)
        ops = [(">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)]
        return "is out of range: must be " + " and ".join(
            f"{op} {v:g}" for op, v in ops if v is not None
        )


def checked(default: Any, **bounds: Any) -> Any:
    """A dataclass field with a default and the :class:`Bounds` its values must meet.

    Mutable defaults (lists, dicts) are copied per instance, as ``default_factory`` would.
    """
    meta = {"bounds": Bounds(**bounds)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def shown(value: Any) -> str:
    """A value as a config error shows it: strings quoted, NaN as ``nan``."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value) if isinstance(value, str) else str(value)


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` converted to the annotated type ``tp``; ``ConfigError`` naming ``key`` when it
    is not of that type (ints are accepted for floats, integral floats such as 4e5 for ints)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    wrong = f"= {shown(value)} ({type(value).__name__})"
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(value, inner, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"{wrong} is not a boolean (true/false)")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"{wrong} is not an int")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"{wrong} is not a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"{wrong} is not a string")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"{wrong} is not a list, e.g. [{shown(value)}]")
        if origin is list:
            return [coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if len(value) != len(args):
            raise ConfigError(key, f"= {list(value)} must be a list of {len(args)} values")
        pairs = enumerate(zip(value, args, strict=True))
        return tuple(coerce(v, a, f"{key}[{i}]") for i, (v, a) in pairs)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"{wrong} is not a mapping")
        return value
    raise TypeError(f"config key '{key}': no check for type {tp}")


def check_bounds(value: Any, bounds: Bounds, key: str) -> None:
    """Raise ``ConfigError`` when ``value`` (or an element of it) is outside ``bounds``."""
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_bounds(v, bounds, f"{key}[{i}]")
        return
    if not bounds.allows(value):
        raise ConfigError(key, f"= {shown(value)} {bounds.describe()}")


@functools.cache
def _fields(cls: type) -> dict[str, tuple[Any, Bounds | None]]:
    """Each field of the dataclass ``cls``: its resolved annotation and its bounds, if any."""
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.metadata.get("bounds")) for f in dataclasses.fields(cls)}


def checked_value(cls: type, name: str, value: Any, key: str | None = None) -> Any:
    """``value`` for the field ``name`` of the dataclass ``cls``: coerced to the field's type and
    checked against its :func:`checked` bounds; ``ConfigError`` naming ``key`` (default: the
    field's name) when it is neither."""
    key = key or name
    tp, bounds = _fields(cls)[name]
    value = coerce(value, tp, key)
    if bounds is not None:
        check_bounds(value, bounds, key)
    return value


def check_fields(obj: Any) -> None:
    """Coerce and check every field of the dataclass instance ``obj`` in place (the first bad
    one raises ``ConfigError``); for dataclasses built directly rather than from a config."""
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, checked_value(type(obj), f.name, getattr(obj, f.name)))
