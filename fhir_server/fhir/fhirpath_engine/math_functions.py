"""Math functions (fhirpath.html#math), in Decimal arithmetic: an undefined result (`(-1).sqrt()`) is empty."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .functions import scalar
from .quantity import Quantity

_NUMBER = (int, Decimal)
_NUMBER_OR_QUANTITY = (int, Decimal, Quantity)


@scalar("abs", _NUMBER_OR_QUANTITY)
def _abs(value: int | Decimal | Quantity) -> object:
    return Quantity(abs(value.value), value.unit, value.calendar) if type(value) is Quantity else abs(value)


@scalar("ceiling", _NUMBER)
def _ceiling(value: int | Decimal) -> int:
    return math.ceil(value)


@scalar("floor", _NUMBER)
def _floor(value: int | Decimal) -> int:
    return math.floor(value)


@scalar("truncate", _NUMBER)
def _truncate(value: int | Decimal) -> int:
    return int(value)


def _decimal_math(compute: Callable[[Decimal], Decimal]) -> Callable[..., Decimal | None]:
    def run(value: int | Decimal, *args: int | Decimal) -> Decimal | None:
        try:
            result = compute(Decimal(value), *(Decimal(a) for a in args))  # type: ignore[call-arg]
        except (InvalidOperation, ZeroDivisionError, ArithmeticError):
            return None
        return None if result.is_nan() else result
    return run


scalar("exp", _NUMBER)(_decimal_math(lambda x: x.exp()))
scalar("ln", _NUMBER)(_decimal_math(lambda x: x.ln()))
scalar("log", _NUMBER, 1)(_decimal_math(lambda x, base: x.ln() / base.ln()))  # type: ignore[misc]
scalar("sqrt", _NUMBER)(_decimal_math(lambda x: x.sqrt()))


@scalar("power", _NUMBER, 1)
def _power(value: int | Decimal, exponent: int | Decimal) -> int | Decimal | None:
    if type(value) is int and type(exponent) is int and exponent >= 0:
        return value ** exponent
    try:
        result = Decimal(value) ** Decimal(exponent)
    except (InvalidOperation, ZeroDivisionError):
        return None  # e.g. (-1).power(0.5)
    return None if result.is_nan() else result


@scalar("round", _NUMBER, 0, 1)
def _round(value: int | Decimal, places: int = 0) -> Decimal | None:
    if places < 0:
        return None
    return Decimal(value).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
