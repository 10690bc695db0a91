"""Checks for settings, applied where a setting is read: each returns the value or raises :class:`ConfigError`
``"<full key> is <value>; expected <what is allowed>"``, so a bad params.yaml entry or ``-S`` override stops the
stage with one line before any work, never with a traceback from deep inside it.

Types are strict: a bool is not a number (Python's ``True == 1``; YAML reads ``yes`` as true), a float is not an
integer (``32.7`` is refused, not truncated), a string is not a list and ``maybe`` is not a boolean. NaN and
infinity are refused wherever a number is expected.

``key`` is always the full dotted key as the user writes it (``profiles.cpu.train.lr``):

- ``integer(key, v, minimum=None)``, ``positive_int``, ``non_negative_int``
- ``number(key, v, low=None, high=None, low_open=False, high_open=False)``, ``positive`` (> 0), ``non_negative``
  (>= 0), ``fraction`` ([0, 1]), ``half_open_fraction`` ([0, 1))
- ``boolean``, ``text`` (a non-empty string), ``choice(key, v, choices)``
- ``int_list(key, v, length, minimum=None)`` and ``range_pair(key, v, element=number)`` return tuples
- ``fail(key, v, expected)`` raises the same error, for a check of one's own
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NoReturn

from dcseg.config import ConfigError


def fail(key: str, value, expected: str) -> NoReturn:
    """Raise the one-line error every checker raises (for checks this module does not cover)."""
    raise ConfigError(f"{key} is {value!r}; expected {expected}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(key: str, value, minimum: int | None = None) -> int:
    """An integer (not a bool, not a float), at least ``minimum`` when given."""
    if not _is_int(value) or (minimum is not None and value < minimum):
        fail(key, value, "an integer" + (f" >= {minimum}" if minimum is not None else ""))
    return value


def positive_int(key: str, value) -> int:
    return integer(key, value, minimum=1)


def non_negative_int(key: str, value) -> int:
    return integer(key, value, minimum=0)


def number(key: str, value, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False):
    """A finite number (int or float, not a bool) within ``low`` .. ``high``; ``*_open`` excludes that bound."""
    ok = _is_real(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        fail(key, value, "a number" + _interval(low, high, low_open, high_open))
    return value


def _interval(low, high, low_open, high_open) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


def positive(key: str, value):
    return number(key, value, low=0, low_open=True)


def non_negative(key: str, value):
    return number(key, value, low=0)


def fraction(key: str, value):
    """A number in [0, 1]."""
    return number(key, value, 0, 1)


def half_open_fraction(key: str, value):
    """A number in [0, 1): for a share that must leave something (e.g. a +-s jitter around 1)."""
    return number(key, value, 0, 1, high_open=True)


def boolean(key: str, value) -> bool:
    """``true`` or ``false`` only: a string such as ``maybe`` or a number is refused."""
    if not isinstance(value, bool):
        fail(key, value, "true or false")
    return value


def text(key: str, value) -> str:
    """A non-empty string (a name or a path)."""
    if not isinstance(value, str) or not value.strip():
        fail(key, value, "a non-empty string")
    return value


def choice(key: str, value, choices):
    """One of ``choices``; ``1`` does not pass for ``True`` (nor ``True`` for ``1``)."""
    if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
        fail(key, value, f"one of {list(choices)}")
    return value


def _sequence(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def int_list(key: str, value, length: int, minimum: int | None = None) -> tuple[int, ...]:
    """A list of exactly ``length`` integers, each at least ``minimum`` when given; returned as a tuple."""
    if not (_sequence(value) and len(value) == length
            and all(_is_int(v) and (minimum is None or v >= minimum) for v in value)):
        fail(key, value, f"a list of {length} integers" + (f" >= {minimum}" if minimum is not None else ""))
    return tuple(value)


def range_pair(key: str, value, element=number) -> tuple:
    """``[low, high]`` with ``low <= high``, each bound passing ``element(key[i], bound)``; returned as a tuple."""
    if not (_sequence(value) and len(value) == 2):
        fail(key, value, "[low, high]")
    low, high = (element(f"{key}[{i}]", v) for i, v in enumerate(value))
    if low > high:
        fail(key, value, "[low, high] with low <= high")
    return low, high


def dataclass_from(cls, values, key: str, checks: dict | None = None):
    """``cls(**values)`` from a params mapping: a non-mapping or an unknown key fails naming the full key, and each
    value passes its check first (``checks``: field name -> checker; default: each field's ``metadata["check"]``,
    where it has one). Fields absent from ``values`` keep their defaults."""
    import dataclasses
    from collections.abc import Mapping

    if not isinstance(values, Mapping):
        fail(key, values, f"a mapping of {cls.__name__} settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{key}.{k}' for k in unknown]}; expected some of {sorted(fields)}")
    if checks is None:
        checks = {name: f.metadata["check"] for name, f in fields.items() if "check" in f.metadata}
    return cls(**{name: checks[name](f"{key}.{name}", v) if name in checks else v for name, v in values.items()})
