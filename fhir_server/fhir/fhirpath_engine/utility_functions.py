"""Utility and reflection functions (fhirpath.html#utility-functions, #types, #reflection, #aggregates), and
the 2.0 `sort()`, `lowBoundary()`/`highBoundary()`, `precision()` and `comparable()` the R4 suite exercises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import cmp_to_key

from . import parser as ast
from . import quantity, temporal
from .errors import FhirPathError
from .functions import Env, Expr, Run, collection, function, per_item, scalar, type_argument
from .model import FhirType, Node, type_name_of, type_named, type_test
from .operators import order, singleton
from .quantity import Quantity
from .temporal import Temporal

_log = logging.getLogger("fhir_server.fhirpath")


@function("trace", 1, 2)
def _trace(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    label = args[0]
    projection = args[1] if len(args) == 2 else None

    def run(input: list, this: list, env: Env) -> list:
        if _log.isEnabledFor(logging.DEBUG):
            shown = projection(input, env) if projection is not None else input
            _log.debug("trace %s: %r", singleton(label(this, env), "trace()"), shown)
        return input
    return run


@function("now")
def _now(_args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    return lambda input, this, env: [temporal.now()]


@function("today")
def _today(_args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    return lambda input, this, env: [temporal.today()]


@function("timeOfDay")
def _time_of_day(_args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    return lambda input, this, env: [temporal.time_of_day()]


@collection("type")
def _type(input: list) -> list:
    """fhirpath.html#reflection: a SimpleTypeInfo/ClassInfo, of which `namespace` and `name` are read."""
    out = []
    for item in input:
        namespace, name = type_name_of(item)
        out.append(Node({"namespace": namespace, "name": name}, _TYPE_INFO_TYPE))
    return out


@function("is", 1)
def _is(_args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    spec = type_argument(nodes[0], "is")
    test = type_test(spec.namespace, spec.name)

    def run(input: list, this: list, env: Env) -> list:
        if not input:
            return []
        if len(input) > 1:
            raise FhirPathError(f"is() expects a single item, got {len(input)}")
        return [test(input[0])]
    return run


@function("as", 1)
def _as(_args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    # A filter, like ofType(): R4's own invariants (dom-3) apply `.as(canonical)` to many items.
    spec = type_argument(nodes[0], "as")
    test = type_test(spec.namespace, spec.name, cast=True)
    return lambda input, this, env: [x for x in input if test(x)]


@function("aggregate", 1, 2)
def _aggregate(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    aggregator = args[0]
    init = args[1] if len(args) == 2 else None

    def run(input: list, this: list, env: Env) -> list:
        total = init(this, env) if init is not None else []
        for i, item in enumerate(input):
            total = aggregator([item], env.iteration(i, total))
        return total
    return run


@function("sort", 0, 8)
def _sort(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    """fhirpath.html#sort (2.0): by each key in turn, `-key` descending whatever the key's type; items without
    a key first. No key: by the items themselves."""
    keys: list[tuple[Callable[[object, int, Env], list], int]] = [(lambda item, i, env: [item], 1)] if not args else []
    for arg, node in zip(args, nodes, strict=True):
        if isinstance(node, ast.Unary) and node.op == "-":
            # The operand alone, not its negation (-'a' is an error). Deferred: the compiler imports this module.
            from .compiler import compile_ast
            keys.append((per_item(compile_ast(node.operand), node.operand), -1))
        else:
            keys.append((per_item(arg, node), 1))

    def compare(a: tuple, b: tuple) -> int:
        for x, y, (_, direction) in zip(a[1], b[1], keys, strict=True):
            result = (not y) - (not x) if not x or not y else direction * (order(x, y, "sort()") or 0)
            if result:
                return result
        return 0

    def run(input: list, this: list, env: Env) -> list:
        rows = [(item, [key(item, i, env) for key, _ in keys]) for i, item in enumerate(input)]
        return [item for item, _ in sorted(rows, key=cmp_to_key(compare))]
    return run


def _decimal_boundary(value: int | Decimal, digits: int | None, high: bool) -> Decimal | None:
    digits = 8 if digits is None else digits
    if not 0 <= digits <= 28:
        return None
    number = Decimal(value)
    if number < 0:  # the low boundary of -x is minus the high boundary of x
        result = _decimal_boundary(-number, digits, not high)
        return None if result is None else -result
    places = 0 if type(value) is int else max(0, -int(number.as_tuple().exponent))
    half = Decimal(5).scaleb(-(places + 1))
    edge = number + half if high else number - half
    return edge.quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP if high else ROUND_DOWN)


def _boundary(value: object, digits: int | None, high: bool) -> object:
    if type(value) is int or type(value) is Decimal:
        return _decimal_boundary(value, digits, high)  # type: ignore[arg-type]
    if type(value) is Quantity:
        edge = _decimal_boundary(value.value, digits, high)
        return None if edge is None else Quantity(edge, value.unit, value.calendar)
    if isinstance(value, Temporal):
        return temporal.boundary(value, digits, high)
    raise FhirPathError(f"no boundary for {type(value).__name__}")


_BOUNDED = (int, Decimal, Quantity, Temporal)
scalar("lowBoundary", _BOUNDED, 0, 1)(lambda value, digits=None: _boundary(value, digits, False))
scalar("highBoundary", _BOUNDED, 0, 1)(lambda value, digits=None: _boundary(value, digits, True))


@scalar("precision", _BOUNDED)
def _precision(value: object) -> int:
    if isinstance(value, Temporal):
        return value.precision()
    number = value.value if type(value) is Quantity else value
    return 0 if type(number) is int else max(0, -int(number.as_tuple().exponent))  # type: ignore[union-attr]


@scalar("comparable", (Quantity,), 1)
def _comparable(value: Quantity, other: Quantity) -> bool:
    return type(other) is Quantity and quantity.comparable(value, other)


_STRING = type_named("string")
# What `type()` returns (fhirpath.html#reflection): a TypeInfo of which `namespace` and `name` are read.
_TYPE_INFO_TYPE = FhirType("TypeInfo", "", "", ("TypeInfo",), elements={
    "namespace": (("namespace", None, _STRING),), "name": (("name", None, _STRING),)})
