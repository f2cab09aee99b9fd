"""FHIRPath operators (fhirpath.html#operations): equality, equivalence, comparison, membership, collections,
arithmetic, and the singleton evaluation of collections every operator and most functions rest on."""

from __future__ import annotations

from decimal import Decimal, DivisionByZero, InvalidOperation

from . import quantity, temporal
from .errors import FhirPathError
from .model import Node, system_type, system_value
from .quantity import Quantity
from .temporal import Temporal

_NUMBERS = (int, Decimal)


def _describe(value: object) -> str:
    if type(value) is Node:
        return value.type.name
    return system_type(value) or type(value).__name__


def singleton(items: list, what: str) -> object:
    """The one item of a collection as a System value; None when empty (fhirpath.html#singleton-evaluation-of-
    collections). More than one item is an error."""
    if not items:
        return None
    if len(items) > 1:
        raise FhirPathError(f"{what} expects a single item, got {len(items)}")
    return system_value(items[0])


def truth(items: list, what: str) -> bool | None:
    """A collection as a Boolean: empty is None, a single non-Boolean item is true (fhirpath.html#singleton-
    evaluation-of-collections); more than one item is an error."""
    if not items:
        return None
    if len(items) > 1:
        raise FhirPathError(f"{what} expects a single Boolean, got {len(items)} items")
    value = items[0]
    if type(value) is Node:
        value = value.value if value.type.primitive else value
        if value is None:
            return None
    return value if type(value) is bool else True


# -- equality and equivalence (fhirpath.html#equality) --------------------------------------------------------
def item_equal(a: object, b: object) -> bool | None:
    """`=` on two items: None when it cannot be known (dates of different precision, units not comparable)."""
    x, y = system_value(a), system_value(b)
    tx, ty = type(x), type(y)
    if tx is str and ty is str:
        return x == y
    if x is None or y is None:
        return None
    if tx is Node or ty is Node:
        return tx is ty and x.value == y.value  # type: ignore[union-attr]
    if tx is bool or ty is bool:
        return tx is ty and x == y
    if tx in _NUMBERS and ty in _NUMBERS:
        return x == y
    if isinstance(x, Temporal) and isinstance(y, Temporal):
        if not temporal.comparable_kinds(x, y):
            return False
        order = temporal.compare(x, y)
        return None if order is None else order == 0
    if tx is Quantity and ty is Quantity:
        return quantity.equal(x, y)  # type: ignore[arg-type]
    return False


def equal(a: list, b: list) -> list:
    """`=`: empty if either side is empty, else item by item in order."""
    if not a or not b:
        return []
    if len(a) != len(b):
        return [False]
    known = True
    for x, y in zip(a, b, strict=True):
        result = item_equal(x, y)
        if result is False:
            return [False]
        if result is None:
            known = False
    return [True] if known else []


def _normal_text(text: str) -> str:
    return " ".join(text.split()).lower()


def _json_equivalent(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = a.keys() - {"id"}
        return keys == b.keys() - {"id"} and all(_json_equivalent(a[k], b[k]) for k in keys)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equivalent(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str):
        return _normal_text(a) == _normal_text(b)
    return a == b


def _places(value: int | Decimal) -> int:
    return 0 if type(value) is int else max(0, -int(value.as_tuple().exponent))  # type: ignore[union-attr]


def item_equivalent(a: object, b: object) -> bool:
    """`~` on two items (fhirpath.html#equivalent)."""
    x, y = system_value(a), system_value(b)
    tx, ty = type(x), type(y)
    if x is None or y is None:
        return x is None and y is None
    if tx is str and ty is str:
        return _normal_text(x) == _normal_text(y)  # type: ignore[arg-type]
    if tx is Node or ty is Node:
        return tx is ty and _json_equivalent(x.value, y.value)  # type: ignore[union-attr]
    if tx is bool or ty is bool:
        return tx is ty and x == y
    if tx in _NUMBERS and ty in _NUMBERS:
        places = min(_places(x), _places(y))  # type: ignore[arg-type]
        return round(Decimal(x), places) == round(Decimal(y), places)  # type: ignore[arg-type]
    if isinstance(x, Temporal) and isinstance(y, Temporal):
        return (temporal.comparable_kinds(x, y) and temporal.compare(x, y) == 0
                and len(x.fields) == len(y.fields))
    if tx is Quantity and ty is Quantity:
        return quantity.equivalent(x, y)  # type: ignore[arg-type]
    return False


def equivalent(a: list, b: list) -> bool:
    """`~`: two empty collections are equivalent; items are matched in any order."""
    if len(a) != len(b):
        return False
    remaining = list(b)
    for x in a:
        for i, y in enumerate(remaining):
            if item_equivalent(x, y):
                del remaining[i]
                break
        else:
            return False
    return True


# -- collections (fhirpath.html#collections-2) ---------------------------------------------------------------
def _key(item: object) -> tuple | None:
    """A hashable stand-in for `=` where one exists (strings, numbers, Booleans): sets instead of pairs."""
    value = system_value(item)
    kind = type(value)
    if kind is str:
        return ("s", value)
    if kind is bool:
        return ("b", value)
    if kind is int or kind is Decimal:
        return ("n", value)  # 1 and 1.0 hash alike, as they are equal
    return None


def distinct(items: list) -> list:
    out: list = []
    seen: set = set()
    others: list = []
    for item in items:
        key = _key(item)
        if key is not None:
            if key not in seen:
                seen.add(key)
                out.append(item)
        elif not any(item_equal(item, other) is True for other in others):
            others.append(item)
            out.append(item)
    return out


def contains(items: list, item: object) -> bool:
    key = _key(item)
    if key is not None:
        return any(_key(other) == key for other in items)
    return any(item_equal(item, other) is True for other in items)


def membership(element: list, collection: list, what: str) -> list:
    """`in` / `contains` (fhirpath.html#membership)."""
    if not element:
        return []
    if len(element) > 1:
        raise FhirPathError(f"{what} expects a single item, got {len(element)}")
    return [contains(collection, element[0])]


# -- comparison (fhirpath.html#comparison) ---------------------------------------------------------------
def order(a: list, b: list, what: str) -> int | None:
    """-1, 0 or 1 for two singletons; None when either is empty or their order is unknown."""
    x, y = singleton(a, what), singleton(b, what)
    if x is None or y is None:
        return None
    tx, ty = type(x), type(y)
    if (tx is str and ty is str) or (tx in _NUMBERS and ty in _NUMBERS):
        return (x > y) - (x < y)  # type: ignore[operator]
    if isinstance(x, Temporal) and isinstance(y, Temporal) and temporal.comparable_kinds(x, y):
        return temporal.compare(x, y)
    if tx is Quantity and ty is Quantity:
        return quantity.compare(x, y)  # type: ignore[arg-type]
    raise FhirPathError(f"cannot compare {_describe(x)} with {_describe(y)}")


# -- arithmetic (fhirpath.html#math) ---------------------------------------------------------------------
def _number(value: object) -> bool:
    kind = type(value)
    return kind is int or kind is Decimal


def arithmetic(op: str, a: list, b: list) -> list:
    """`+ - * / div mod` on two singletons; empty if either is empty or on division by zero."""
    x, y = singleton(a, f"'{op}'"), singleton(b, f"'{op}'")
    if x is None or y is None:
        return []
    try:
        result = _arithmetic(op, x, y)
    except (DivisionByZero, InvalidOperation, ZeroDivisionError):
        return []
    return [] if result is None else [result]


def _arithmetic(op: str, x: object, y: object) -> object:
    if _number(x) and _number(y):
        if op == "+":
            return x + y  # type: ignore[operator]
        if op == "-":
            return x - y  # type: ignore[operator]
        if op == "*":
            return x * y  # type: ignore[operator]
        if op == "/":
            return Decimal(x) / Decimal(y)  # type: ignore[arg-type]
        if not y:
            return None
        if type(x) is int and type(y) is int:
            quotient = abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1)  # truncated, as Decimal's
            return quotient if op == "div" else x - y * quotient
        return Decimal(x) // Decimal(y) if op == "div" else Decimal(x) % Decimal(y)  # type: ignore[arg-type]
    if op == "+" and type(x) is str and type(y) is str:
        return x + y
    if isinstance(x, Temporal) and type(y) is Quantity and op in "+-":
        return temporal.add(x, y.value if op == "+" else -y.value, y.unit)
    if type(x) is Quantity or type(y) is Quantity:
        qx = x if type(x) is Quantity else Quantity(Decimal(x), "1") if _number(x) else None  # type: ignore[arg-type]
        qy = y if type(y) is Quantity else Quantity(Decimal(y), "1") if _number(y) else None  # type: ignore[arg-type]
        if qx is not None and qy is not None:
            if op in ("+", "-"):
                return quantity.add(qx, qy, 1 if op == "+" else -1)
            if op == "*":
                return quantity.multiply(qx, qy)
            if op == "/":
                return quantity.divide(qx, qy)
    raise FhirPathError(f"cannot apply '{op}' to {_describe(x)} and {_describe(y)}")


def concatenate(a: list, b: list) -> list:
    """`&`: string concatenation where an empty operand counts as ''."""
    x, y = singleton(a, "'&'"), singleton(b, "'&'")
    if (x is not None and type(x) is not str) or (y is not None and type(y) is not str):
        raise FhirPathError("'&' expects strings")
    return [(x or "") + (y or "")]


def negate(items: list) -> list:
    value = singleton(items, "unary '-'")
    if value is None:
        return []
    if _number(value):
        return [-value]  # type: ignore[operator]
    if type(value) is Quantity:
        return [Quantity(-value.value, value.unit, value.calendar)]
    raise FhirPathError(f"cannot negate {_describe(value)}")
