"""Strict conversion of plain dicts (parsed YAML) into dataclasses.

A typo in a params file must be an error naming the key, never a silently ignored setting,
so unknown keys, wrong types and out-of-range values all raise `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

from lines_model.errors import ConfigError

T = TypeVar("T")


def _check(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not allowed; expected one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arm in get_args(tp):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(value, arm, key)
            except ConfigError as e:
                errors.append(str(e))
        # One arm besides None (an optional value): its own message says what is wrong.
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} does not match {tp}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_check(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_check(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is float:
        # YAML reads 1e-4 as a string; accept ints and float-looking strings for floats.
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        number = None
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass `cls` from `data`, naming `where.key` in every error.

    Fields may carry `metadata={"min": x, "max": y}`; after construction the dataclass's own
    `validate()` (if any) checks rules that involve several fields.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'params'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    for name in unknown:
        if new := renamed(cls, name):
            raise ConfigError(renamed_message(_join(where, name), _join(where, new)))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key; allowed keys are {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        key = _join(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: missing required key")
            continue
        value = _check(data[name], hints[name], key)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value is not None and value < lo:
            raise ConfigError(f"{key}: {value!r} is below the minimum {lo}")
        if hi is not None and value is not None and value > hi:
            raise ConfigError(f"{key}: {value!r} is above the maximum {hi}")
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(where)
    return obj


def renamed(cls: type, key: str) -> str | None:
    """The current name of `key`, a dotted key of dataclass `cls` under an old name, or None.

    A section dataclass lists its old key names in a class attribute `RENAMED` (old -> new), so a
    params file written for an earlier version fails with the new name instead of "unknown key".
    """
    head, _, rest = key.partition(".")
    if not dataclasses.is_dataclass(cls):
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if head in fields:
        if not rest:
            return None
        inner = renamed(typing.get_type_hints(cls)[head], rest)
        return f"{head}.{inner}" if inner else None
    new = getattr(cls, "RENAMED", {}).get(head)
    return f"{new}.{rest}" if new and rest else new


def renamed_message(old: str, new: str) -> str:
    return f"{old}: renamed to {new}; use {new}"


def field(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None) -> Any:  # noqa: A002
    """A dataclass field with an optional allowed range (and a default only where one is given)."""
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata={"min": min, "max": max})
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"min": min, "max": max})
    return dataclasses.field(default=default, metadata={"min": min, "max": max})


def to_dict(obj: Any) -> dict:
    """Plain-dict form (tuples become lists) for writing YAML/JSON next to outputs."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))
