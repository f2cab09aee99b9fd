"""Functions on collections (fhirpath.html#existence, #filtering-and-projection, #subsetting, #combining,
#tree-navigation)."""

from __future__ import annotations

from . import parser as ast
from .errors import FhirPathError
from .functions import Env, Expr, Run, collection, function, per_item, type_argument
from .model import Node, children, descendants, system_value, type_test
from .operators import contains, distinct, singleton, truth


# -- existence (fhirpath.html#existence) -----------------------------------------------------------------
@collection("empty")
def _empty(input: list) -> list:
    return [not input]


@function("exists", 0, 1)
def _exists(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    if not args:
        return lambda input, this, env: [bool(input)]
    criteria = per_item(args[0], nodes[0])
    return lambda input, this, env: [any(truth(criteria(x, i, env), "exists()") for i, x in enumerate(input))]


@function("all", 1)
def _all(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    criteria = per_item(args[0], nodes[0])
    return lambda input, this, env: [all(truth(criteria(x, i, env), "all()") for i, x in enumerate(input))]


def _booleans(input: list, name: str) -> list[bool]:
    values = [system_value(item) for item in input]
    if any(type(v) is not bool for v in values):
        raise FhirPathError(f"{name}() expects Booleans")
    return values  # type: ignore[return-value]


@collection("not")
def _not(input: list) -> list:
    """fhirpath.html#not: the negation of a singleton's Boolean value (a non-Boolean item counts as true)."""
    value = truth(input, "not()")
    return [] if value is None else [not value]


@collection("allTrue")
def _all_true(input: list) -> list:
    return [all(_booleans(input, "allTrue"))]


@collection("anyTrue")
def _any_true(input: list) -> list:
    return [any(_booleans(input, "anyTrue"))]


@collection("allFalse")
def _all_false(input: list) -> list:
    return [not any(_booleans(input, "allFalse"))]


@collection("anyFalse")
def _any_false(input: list) -> list:
    return [not all(_booleans(input, "anyFalse"))]


@collection("subsetOf", 1)
def _subset_of(input: list, other: list) -> list:
    return [all(contains(other, item) for item in input)]


@collection("supersetOf", 1)
def _superset_of(input: list, other: list) -> list:
    return [all(contains(input, item) for item in other)]


@collection("count")
def _count(input: list) -> list:
    return [len(input)]


collection("distinct")(distinct)


@collection("isDistinct")
def _is_distinct(input: list) -> list:
    return [len(distinct(input)) == len(input)]


# -- filtering and projection (fhirpath.html#filtering-and-projection) -----------------------------------
@function("where", 1)
def _where(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    criteria = per_item(args[0], nodes[0])
    return lambda input, this, env: [x for i, x in enumerate(input) if truth(criteria(x, i, env), "where()")]


@function("select", 1)
def _select(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    projection = per_item(args[0], nodes[0])

    def run(input: list, this: list, env: Env) -> list:
        out: list = []
        for i, item in enumerate(input):
            out.extend(projection(item, i, env))
        return out
    return run


def _identity(item: object) -> object:
    """What `repeat()` compares to stop: the same JSON object, or an equal System value."""
    if type(item) is Node:
        return id(item.value) if isinstance(item.value, dict | list) else (item.type.name, item.value)
    return (type(item).__name__, str(item))


@function("repeat", 1)
def _repeat(args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    projection = per_item(args[0], nodes[0])

    def run(input: list, this: list, env: Env) -> list:
        out: list = []
        seen: set = set()
        pending = input
        while pending:
            found: list = []
            for i, item in enumerate(pending):
                for child in projection(item, i, env):
                    key = _identity(child)
                    if key not in seen:
                        seen.add(key)
                        found.append(child)
            out.extend(found)
            pending = found
        return out
    return run


@function("ofType", 1)
def _of_type(_args: list[Expr], nodes: tuple[ast.Node, ...]) -> Run:
    spec = type_argument(nodes[0], "ofType")
    test = type_test(spec.namespace, spec.name, cast=True)
    return lambda input, this, env: [x for x in input if test(x)]


# -- subsetting (fhirpath.html#subsetting) ----------------------------------------------------------------
@collection("single")
def _single(input: list) -> list:
    if len(input) > 1:
        raise FhirPathError(f"single() expects at most one item, got {len(input)}")
    return input


@collection("first")
def _first(input: list) -> list:
    return input[:1]


@collection("last")
def _last(input: list) -> list:
    return input[-1:]


@collection("tail")
def _tail(input: list) -> list:
    return input[1:]


def _count_argument(values: list, name: str) -> int | None:
    number = singleton(values, f"{name}()")
    if number is not None and type(number) is not int:
        raise FhirPathError(f"{name}() expects an Integer")
    return number  # type: ignore[return-value]


@collection("skip", 1)
def _skip(input: list, count: list) -> list:
    number = _count_argument(count, "skip")
    return input if number is None or number <= 0 else input[number:]


@collection("take", 1)
def _take(input: list, count: list) -> list:
    number = _count_argument(count, "take")
    return [] if number is None or number <= 0 else input[:number]


@collection("intersect", 1)
def _intersect(input: list, other: list) -> list:
    return [item for item in distinct(input) if contains(other, item)]


@collection("exclude", 1)
def _exclude(input: list, other: list) -> list:
    return [item for item in input if not contains(other, item)]


# -- combining (fhirpath.html#combining) ------------------------------------------------------------------
@collection("union", 1)
def _union(input: list, other: list) -> list:
    return distinct(input + other)


@collection("combine", 1)
def _combine(input: list, other: list) -> list:
    return input + other


# -- tree navigation (fhirpath.html#tree-navigation) ------------------------------------------------------
@collection("children")
def _children(input: list) -> list:
    out: list = []
    for item in input:
        children(item, out)
    return out


collection("descendants")(descendants)
