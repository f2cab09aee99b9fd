"""The function table of FHIRPath N1 section 5 (fhirpath.html#functions), filled by one module per section
of the spec (`collection_functions`, `conversion_functions`, `string_functions`, `math_functions`,
`utility_functions`) and by FHIR's additions (`fhir_functions`).

Each entry builds, once at compile time, a closure `run(input, this, env) -> list` from the compiled argument
expressions (and their AST, for the type arguments of `is`/`as`/`ofType` and the `-key` of `sort`). Arguments
that are not per-item expressions are evaluated against the caller's `$this`, as the spec says.
"""

from __future__ import annotations

from collections.abc import Callable

from . import parser as ast
from .errors import FhirPathError
from .model import Node, known_type
from .operators import singleton

Expr = Callable[[list, "Env"], list]
Run = Callable[[list, list, "Env"], list]
Builder = Callable[[list[Expr], tuple[ast.Node, ...]], Run]


class Env:
    """What an evaluation carries besides `$this`: the caller's Context, the focus (%context), `$index`,
    `$total`, and the values of the subexpressions that are the same for every item (see compiler._Once)."""

    __slots__ = ("context", "focus", "index", "total", "once")

    def __init__(self, context: object, focus: list, index: int | None = None, total: list | None = None,
                 once: dict | None = None) -> None:
        self.context = context
        self.focus = focus
        self.index = index
        self.total = total
        self.once = {} if once is None else once

    def iteration(self, index: int, total: list | None) -> Env:
        """The environment of one item of `where()`, `select()`, `aggregate()`…"""
        return Env(self.context, self.focus, index, total, self.once)


FUNCTIONS: dict[str, tuple[int, int, Builder]] = {}


def function(name: str, min_args: int = 0, max_args: int | None = None) -> Callable[[Builder], Builder]:
    """Register a builder for `name`, taking between `min_args` and `max_args` arguments."""
    def register(builder: Builder) -> Builder:
        FUNCTIONS[name] = (min_args, min_args if max_args is None else max_args, builder)
        return builder
    return register


def collection(name: str, args: int = 0) -> Callable[[Callable[..., list]], Callable[..., list]]:
    """A function of the whole input collection and its evaluated arguments: `impl(input, *arg_lists)`."""
    def register(impl: Callable[..., list]) -> Callable[..., list]:
        def build(compiled: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
            if not compiled:
                return lambda input, this, env: impl(input)
            if len(compiled) == 1:
                (arg,) = compiled
                return lambda input, this, env: impl(input, arg(this, env))
            return lambda input, this, env: impl(input, *[a(this, env) for a in compiled])
        FUNCTIONS[name] = (args, args, build)
        return impl
    return register


def kind_check(value: object, kinds: tuple[type, ...] | None, name: str) -> None:
    """An error for input of the wrong type (`Appointment.identifier.startsWith('x')`); a Boolean is no number."""
    if kinds is None or (isinstance(value, kinds) and (type(value) is not bool or bool in kinds)):
        return
    shown = value.type.name if type(value) is Node else type(value).__name__
    raise FhirPathError(f"{name}() cannot be applied to {shown}")


def scalar(name: str, kinds: tuple[type, ...] | None, min_args: int = 0,
           max_args: int | None = None) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """A function of one input value (of one of `kinds`) and single-valued arguments; an empty input or
    argument gives empty, and so does an `impl` returning None."""
    def register(impl: Callable[..., object]) -> Callable[..., object]:
        def build(compiled: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
            def run(input: list, this: list, env: Env) -> list:
                value = singleton(input, f"{name}()")
                if value is None:
                    return []
                kind_check(value, kinds, name)
                args = []
                for arg in compiled:
                    arg_value = singleton(arg(this, env), f"argument of {name}()")
                    if arg_value is None:
                        return []
                    args.append(arg_value)
                result = impl(value, *args)
                return [] if result is None else [result]
            return run
        FUNCTIONS[name] = (min_args, min_args if max_args is None else max_args, build)
        return impl
    return register


def per_item(expr: Expr, node: ast.Node) -> Callable[[object, int, Env], list]:
    """`expr` evaluated with `$this` the item and `$index` its position (fhirpath.html#functions)."""
    if ast.reads(node, ("$index",)):  # then it needs an environment of its own per item
        return lambda item, i, env: expr([item], env.iteration(i, env.total))
    return lambda item, i, env: expr([item], env)


def type_argument(node: ast.Node, name: str) -> ast.TypeName:
    """The type named by the argument of `is()`, `as()`, `ofType()`: `Quantity`, `FHIR.Patient`."""
    if isinstance(node, ast.Identifier):
        spec = ast.TypeName(None, node.name)
    elif isinstance(node, ast.Member) and isinstance(node.target, ast.Identifier) \
            and node.target.name in ("FHIR", "System"):
        spec = ast.TypeName(node.target.name, node.name)
    else:
        raise FhirPathError(f"{name}() expects a type name")
    if not known_type(spec.namespace, spec.name):
        raise FhirPathError(f"unknown type '{spec}'")
    return spec
