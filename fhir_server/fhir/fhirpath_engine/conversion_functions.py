"""Conversion functions (fhirpath.html#conversion): `iif()`, and `toX()`/`convertsToX()` for each System type."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal

from . import parser as ast
from . import quantity
from .errors import FhirPathError
from .functions import Env, Expr, Run, function, scalar
from .model import system_value
from .quantity import Quantity, parse_quantity
from .temporal import Date, DateTime, Temporal, Time, parse_date_time, parse_time


@function("iif", 2, 3)
def _iif(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    criterion, if_true = args[0], args[1]
    otherwise = args[2] if len(args) == 3 else None

    def run(input: list, this: list, env: Env) -> list:
        # Its arguments see its input as `$this`, so `('a').iif(true, select($this))` is 'a'.
        if len(input) > 1:
            raise FhirPathError(f"iif() expects at most one input item, got {len(input)}")
        test = criterion(input, env)
        if len(test) > 1 or (test and type(system_value(test[0])) is not bool):
            raise FhirPathError("iif() expects a Boolean criterion")
        if test and system_value(test[0]):
            return if_true(input, env)
        return otherwise(input, env) if otherwise is not None else []
    return run


_TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE_TEXT = frozenset({"false", "f", "no", "n", "0", "0.0"})
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_DECIMAL_TEXT = re.compile(r"[+-]?\d+(?:\.\d+)?")


def to_boolean(value: object) -> bool | None:
    kind = type(value)
    if kind is bool:
        return value  # type: ignore[return-value]
    if kind is int or kind is Decimal:
        return {1: True, 0: False}.get(value)  # type: ignore[call-overload]
    if kind is str:
        text = value.lower()  # type: ignore[union-attr]
        return True if text in _TRUE_TEXT else False if text in _FALSE_TEXT else None
    return None


def to_integer(value: object) -> int | None:
    kind = type(value)
    if kind is int:
        return value  # type: ignore[return-value]
    if kind is bool:
        return int(value)  # type: ignore[arg-type]
    if kind is str and _INTEGER_TEXT.fullmatch(value):  # type: ignore[arg-type]
        return int(value)  # type: ignore[arg-type]
    return None


def to_decimal(value: object) -> Decimal | None:
    kind = type(value)
    if kind is Decimal:
        return value  # type: ignore[return-value]
    if kind is int or kind is bool:
        return Decimal(int(value))  # type: ignore[call-overload]
    if kind is str and _DECIMAL_TEXT.fullmatch(value):  # type: ignore[arg-type]
        return Decimal(value)  # type: ignore[arg-type]
    return None


def to_string(value: object) -> str | None:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is bool:
        return "true" if value else "false"
    if kind is Decimal:
        return format(value, "f")
    if kind is int or kind is Quantity or isinstance(value, Temporal):
        return str(value)
    return None


def to_date(value: object) -> Date | None:
    if type(value) is Date:
        return value  # type: ignore[return-value]
    if type(value) is DateTime:
        return Date(value.fields[:3])  # type: ignore[union-attr]
    return parse_date_time(value, Date) if type(value) is str else None  # type: ignore[return-value]


def to_date_time(value: object) -> DateTime | None:
    if type(value) is DateTime:
        return value  # type: ignore[return-value]
    if type(value) is Date:
        return DateTime(value.fields)  # type: ignore[union-attr]
    return parse_date_time(value) if type(value) is str else None  # type: ignore[return-value]


def to_time(value: object) -> Time | None:
    if type(value) is Time:
        return value  # type: ignore[return-value]
    return parse_time(value) if type(value) is str else None  # type: ignore[arg-type]


def to_quantity(value: object, unit: str | None = None) -> Quantity | None:
    kind = type(value)
    if kind is Quantity:
        found: Quantity | None = value  # type: ignore[assignment]
    elif kind is int or kind is Decimal or kind is bool:
        found = Quantity(Decimal(int(value)) if kind is bool else Decimal(value), "1")  # type: ignore[arg-type]
    elif kind is str:
        found = parse_quantity(value)  # type: ignore[arg-type]
    else:
        found = None
    if found is None or unit is None or unit == found.unit:
        return found
    one = quantity.parse_unit(unit)
    canonical = found.canonical()
    if one is None or canonical is None or one[1] != canonical[1]:
        return None
    return Quantity(canonical[0] / one[0], unit)


_CONVERSIONS: dict[str, Callable[..., object]] = {
    "Boolean": to_boolean, "Integer": to_integer, "Decimal": to_decimal, "String": to_string,
    "Date": to_date, "DateTime": to_date_time, "Time": to_time, "Quantity": to_quantity,
}


def _conversion(name: str, convert: Callable[..., object]) -> None:
    max_args = 1 if name == "Quantity" else 0
    scalar(f"to{name}", None, 0, max_args)(convert)
    scalar(f"convertsTo{name}", None, 0, max_args)(lambda value, *unit: convert(value, *unit) is not None)


for _name, _convert in _CONVERSIONS.items():
    _conversion(_name, _convert)
