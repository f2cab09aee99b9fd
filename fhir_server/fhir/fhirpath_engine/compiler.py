"""The AST compiled once into nested closures `run(this, env) -> list` (fhirpath.html#expressions): each
evaluation calls closures over the JSON, with no tree walking and no copying of the input.

`this` is the collection the expression is evaluated on (the focus, or `[item]` inside `where()` and the
other iterating functions); `env` carries the caller's Context, %context, `$index` and `$total`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from . import (  # each registers its functions in FUNCTIONS
    collection_functions,  # noqa: F401
    conversion_functions,  # noqa: F401
    fhir_functions,
    math_functions,  # noqa: F401
    operators,
    string_functions,  # noqa: F401
    utility_functions,  # noqa: F401
)
from . import parser as ast
from .errors import FhirPathError
from .functions import FUNCTIONS, Env
from .model import Node, known_type, navigate, resource_node, type_test
from .operators import distinct, singleton, truth

Expr = Callable[[list, Env], list]

_EMPTY: list = []  # collections handed between closures are never changed in place, so these may be shared
_TRUE = [True]
_FALSE = [False]
_CONSTANTS = {"ucum": "http://unitsofmeasure.org", "sct": "http://snomed.info/sct", "loinc": "http://loinc.org"}
# %"vs-name" and %`ext-name` (fhirpath.html#environment-variables in R4).
_PREFIXED_CONSTANTS = {"vs-": "http://hl7.org/fhir/ValueSet/", "ext-": "http://hl7.org/fhir/StructureDefinition/"}


def compile_expression(node: ast.Node) -> Expr:
    """An expression's AST as a closure, its focus-independent parts evaluated once per evaluation."""
    return compile_ast(_hoist(node))


def compile_ast(node: ast.Node) -> Expr:
    return _COMPILERS[type(node)](node)  # type: ignore[arg-type]


# -- subexpressions that do not depend on the focus ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Once:
    """A subexpression that reads no `$this`, `$index` or `$total`: inside `where()` it is the same for every
    item, so it is evaluated once per evaluation, and so is each copy of it. dom-3 compares each contained
    resource's id with `%resource.descendants().reference | %resource.descendants().as(canonical) | …`,
    which would otherwise walk the whole resource four times per item."""

    node: ast.Node
    shape: tuple  # the subexpression without source positions: copies share one value


# Functions whose arguments are evaluated per item of the input, not on the caller's focus; what the
# arguments may still read of the caller's iteration (`$total` of an enclosing aggregate(), and for iif(),
# which is no iteration, `$index` too).
_PER_ITEM_ARGUMENTS = {
    "where": ("$total",), "select": ("$total",), "all": ("$total",), "exists": ("$total",),
    "repeat": ("$total",), "sort": ("$total",), "iif": ("$index", "$total"),
}
_TYPE_ARGUMENTS = frozenset({"is", "as", "ofType"})
# Functions that read nothing of the focus when called without an input.
_FOCUS_FREE = frozenset({"now", "today", "timeOfDay"})


def _depends_on_focus(node: ast.Node) -> bool:
    if isinstance(node, ast.Literal | ast.Variable):
        return False
    if isinstance(node, ast.Identifier | ast.Special):
        return True
    if isinstance(node, ast.Call):
        if node.target is None:
            return node.name not in _FOCUS_FREE
        if _depends_on_focus(node.target):
            return True
        if node.name in _TYPE_ARGUMENTS:
            return False
        inherited = _PER_ITEM_ARGUMENTS.get(node.name)
        if inherited is not None:
            return any(ast.reads(arg, inherited) for arg in node.args)
        return any(_depends_on_focus(arg) for arg in node.args)
    return any(_depends_on_focus(child) for child in ast.subexpressions(node))


def _worth_once(node: ast.Node) -> bool:
    """Whether evaluating it does any work: it reads a variable or calls a function (not just `1 + 2`)."""
    if isinstance(node, ast.Variable):
        return True
    if isinstance(node, ast.Call) and node.target is None:
        return True
    return any(_worth_once(child) for child in ast.subexpressions(node))


def _shape(node: ast.Node) -> tuple:
    """The subexpression without its source positions."""
    parts: list = [type(node).__name__]
    for field in fields(node):  # type: ignore[arg-type]
        value = getattr(node, field.name)
        if isinstance(value, tuple):
            parts.append(tuple(_shape(item) for item in value))
        elif field.name in ast.SUBEXPRESSION_FIELDS:
            parts.append(None if value is None else _shape(value))
        elif field.name != "pos":
            parts.append((type(value).__name__, str(value)))
    return tuple(parts)


def _hoist(node: ast.Node) -> ast.Node:
    """The AST with its focus-independent subexpressions marked `_Once`, where that saves work."""
    changes = {}
    for field in fields(node):  # type: ignore[arg-type]
        value = getattr(node, field.name)
        if isinstance(value, tuple):
            changes[field.name] = tuple(_hoist(item) for item in value)
        elif field.name in ast.SUBEXPRESSION_FIELDS and value is not None:
            changes[field.name] = _hoist(value)
    hoisted = replace(node, **changes) if changes else node  # type: ignore[type-var]
    if not isinstance(node, ast.Literal | ast.Variable) and not _depends_on_focus(node) and _worth_once(node):
        return _Once(hoisted, _shape(node))  # type: ignore[return-value]
    return hoisted


def _once(node: _Once) -> Expr:
    inner = compile_ast(node.node)
    key = repr(node.shape)  # a string: its hash is computed once

    def run(this: list, env: Env) -> list:
        found = env.once.get(key)
        if found is None:
            found = env.once[key] = inner(this, env)
        return found
    return run


def _literal(node: ast.Literal) -> Expr:
    if node.value is None:
        return lambda this, env: _EMPTY
    value = [node.value]
    return lambda this, env: value


def _identifier(node: ast.Identifier) -> Expr:
    name = node.name
    if not name[:1].isupper():
        return lambda this, env: navigate(this, name)

    def run(this: list, env: Env) -> list:
        found = navigate(this, name)
        if found or not this:
            return found
        # `Patient.name`: a type name that the focus is (or specializes) selects the focus itself.
        return [item for item in this if type(item) is Node and name in item.type.ancestors]
    return run


def _member(node: ast.Member) -> Expr:
    target, name = compile_ast(node.target), node.name
    return lambda this, env: navigate(target(this, env), name)


def _call(node: ast.Call) -> Expr:
    spec = FUNCTIONS.get(node.name)
    if spec is None:
        reason = fhir_functions.UNSUPPORTED.get(node.name)
        if reason is not None:
            raise FhirPathError(f"function '{node.name}' is not supported ({reason}) at {node.pos}")
        raise FhirPathError(f"unknown function '{node.name}' at {node.pos}")
    low, high, build = spec
    if not low <= len(node.args) <= high:
        expected = str(low) if low == high else f"{low} to {high}"
        raise FhirPathError(
            f"function '{node.name}' takes {expected} argument(s), got {len(node.args)} at {node.pos}")
    run = build([compile_ast(arg) for arg in node.args], node.args)
    if node.target is None:
        return lambda this, env: run(this, this, env)
    target = compile_ast(node.target)
    return lambda this, env: run(target(this, env), this, env)


def _indexer(node: ast.Indexer) -> Expr:
    target, index = compile_ast(node.target), compile_ast(node.index)

    def run(this: list, env: Env) -> list:
        position = singleton(index(this, env), "an indexer")
        if position is None:
            return _EMPTY
        if type(position) is not int:
            raise FhirPathError("an indexer expects an Integer")
        return target(this, env)[position:position + 1] if position >= 0 else _EMPTY
    return run


def _special(node: ast.Special) -> Expr:
    if node.name == "$this":
        return lambda this, env: this
    if node.name == "$index":
        return lambda this, env: _EMPTY if env.index is None else [env.index]
    return lambda this, env: env.total or _EMPTY


def _collection(value: object) -> list:
    """A variable's value as a collection: a resource dict typed by its resourceType, a list item by item."""
    items = value if isinstance(value, list) else () if value is None else (value,)
    return [resource_node(item) if isinstance(item, dict) else item for item in items]


def _variable(node: ast.Variable) -> Expr:
    name = node.name
    constant = _CONSTANTS.get(name)
    for prefix, base in _PREFIXED_CONSTANTS.items():
        if name.startswith(prefix):
            constant = base + name[len(prefix):]
    if constant is not None:
        value = [constant]
        return lambda this, env: value
    if name == "resource":
        return lambda this, env: _collection(env.context.resource)
    if name == "rootResource":
        return lambda this, env: _collection(env.context.root_resource)
    if name == "context":
        return lambda this, env: env.focus

    def run(this: list, env: Env) -> list:
        variables = env.context.variables
        if name not in variables:
            raise FhirPathError(f"unknown variable %{name}")
        return _collection(variables[name])
    return run


def _unary(node: ast.Unary) -> Expr:
    operand = compile_ast(node.operand)
    if node.op == "+":
        return operand
    return lambda this, env: operators.negate(operand(this, env))


def _and(left: Expr, right: Expr) -> Expr:
    def run(this: list, env: Env) -> list:
        a = truth(left(this, env), "'and'")
        if a is False:
            return _FALSE
        b = truth(right(this, env), "'and'")
        if b is False:
            return _FALSE
        return _TRUE if a and b else _EMPTY
    return run


def _or(left: Expr, right: Expr) -> Expr:
    def run(this: list, env: Env) -> list:
        a = truth(left(this, env), "'or'")
        if a is True:
            return _TRUE
        b = truth(right(this, env), "'or'")
        if b is True:
            return _TRUE
        return _FALSE if a is False and b is False else _EMPTY
    return run


def _xor(left: Expr, right: Expr) -> Expr:
    def run(this: list, env: Env) -> list:
        a, b = truth(left(this, env), "'xor'"), truth(right(this, env), "'xor'")
        return _EMPTY if a is None or b is None else [a != b]
    return run


def _implies(left: Expr, right: Expr) -> Expr:
    def run(this: list, env: Env) -> list:
        a = truth(left(this, env), "'implies'")
        if a is False:
            return _TRUE
        b = truth(right(this, env), "'implies'")
        if b is True:
            return _TRUE
        return _FALSE if a is True and b is False else _EMPTY
    return run


def _not(result: list) -> list:
    return [not result[0]] if result else _EMPTY


_COMPARISONS: dict[str, Callable[[int], bool]] = {
    "<": lambda c: c < 0, "<=": lambda c: c <= 0, ">": lambda c: c > 0, ">=": lambda c: c >= 0,
}
_LOGIC = {"and": _and, "or": _or, "xor": _xor, "implies": _implies}
_COLLECTION_OPERATORS: dict[str, Callable[[list, list], list]] = {
    "=": operators.equal,
    "!=": lambda a, b: _not(operators.equal(a, b)),
    "~": lambda a, b: [operators.equivalent(a, b)],
    "!~": lambda a, b: [not operators.equivalent(a, b)],
    "|": lambda a, b: distinct(a + b),
    "in": lambda a, b: operators.membership(a, b, "'in'"),
    "contains": lambda a, b: operators.membership(b, a, "'contains'"),
    "&": operators.concatenate,
}


def _binary(node: ast.Binary) -> Expr:
    left, right, op = compile_ast(node.left), compile_ast(node.right), node.op
    if op in _LOGIC:
        return _LOGIC[op](left, right)
    apply = _COLLECTION_OPERATORS.get(op)
    if apply is not None:
        return lambda this, env: apply(left(this, env), right(this, env))
    if op in _COMPARISONS:
        test = _COMPARISONS[op]

        def compare(this: list, env: Env) -> list:
            order = operators.order(left(this, env), right(this, env), f"'{op}'")
            return _EMPTY if order is None else [test(order)]
        return compare
    return lambda this, env: operators.arithmetic(op, left(this, env), right(this, env))


def _type_operation(node: ast.TypeOperation) -> Expr:
    operand, spec = compile_ast(node.operand), node.type
    if not known_type(spec.namespace, spec.name):
        raise FhirPathError(f"unknown type '{spec}' at {node.pos}")
    if node.op == "as":  # a filter, as the function form (see utility_functions._as)
        cast = type_test(spec.namespace, spec.name, cast=True)
        return lambda this, env: [x for x in operand(this, env) if cast(x)]
    test = type_test(spec.namespace, spec.name)

    def run(this: list, env: Env) -> list:
        items = operand(this, env)
        if not items:
            return _EMPTY
        if len(items) > 1:
            raise FhirPathError(f"'is' expects a single item, got {len(items)}")
        return [test(items[0])]
    return run


_COMPILERS: dict[type, Callable[..., Expr]] = {
    ast.Literal: _literal, ast.Identifier: _identifier, ast.Member: _member, ast.Call: _call,
    ast.Indexer: _indexer, ast.Special: _special, ast.Variable: _variable, ast.Unary: _unary,
    ast.Binary: _binary, ast.TypeOperation: _type_operation, _Once: _once,
}
