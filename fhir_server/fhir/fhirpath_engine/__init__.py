"""A compiled FHIRPath engine (FHIRPath N1, http://hl7.org/fhirpath/N1/, as FHIR R4 uses it in fhirpath.html)
for evaluating StructureDefinition invariants fast.

An expression is parsed once (`lexer`, `parser`) and compiled once into closures (`compiler`, with the
function table of `functions`, filled by `collection_functions`, `conversion_functions`, `string_functions`,
`math_functions`, `utility_functions` and `fhir_functions`; `operators` for the operators). Evaluating it
walks the JSON with typed nodes (`model`), never copying it. Dates and times keep their precision
(`temporal`), quantities their units (`quantity`).

    expr = compile_path("name.given.exists()")
    expr(patient_json, "Patient", Context(resource=patient_json, root_resource=patient_json))   # [True]
    expr.is_true(patient_json, "Patient", context)                                               # True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

from .compiler import compile_expression
from .errors import FhirPathError
from .functions import Env
from .model import UNTYPED, Node, focus_type, resource_node
from .parser import parse

__all__ = ["CompiledPath", "Context", "FhirPathError", "compile_path"]


@dataclass(frozen=True, slots=True)
class Context:
    """What an expression may refer to besides its focus (fhirpath.html#environment-variables): %resource (the
    resource holding the focus), %rootResource (the Bundle or container holding that), user variables
    (`%name`), and the callbacks behind `resolve()`, `memberOf()` and `conformsTo()` (None: unknown)."""

    resource: dict | None
    root_resource: dict | None
    variables: Mapping[str, object] = field(default_factory=dict)
    resolve: Callable[[str], dict | None] | None = None
    member_of: Callable[[object, str], bool | None] | None = None
    conforms_to: Callable[[object, str], bool | None] | None = None


def _focus(value: object, type_name: str) -> list:
    if value is None:
        return []
    if type(value) is dict and "resourceType" in value:
        return [resource_node(value)]  # a contained resource, or a focus typed only as Resource
    return [Node(value, focus_type(type_name) or UNTYPED)]


class CompiledPath:
    """One compiled expression; call it on a focus (its JSON and FHIR type name) to get the result."""

    __slots__ = ("expression", "_run")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._run = compile_expression(parse(expression))

    def __repr__(self) -> str:
        return f"CompiledPath({self.expression!r})"

    def __call__(self, focus: object, focus_type: str, context: Context) -> list:
        """The result as JSON values (str, bool, int, Decimal, dict…) or, for values the expression computes,
        the engine's Date, DateTime, Time and Quantity. A primitive that has only extensions gives None."""
        this = _focus(focus, focus_type)
        return [item.value if type(item) is Node else item for item in self._run(this, Env(context, this))]

    def is_true(self, focus: object, focus_type: str, context: Context) -> bool:
        """The invariant's verdict (fhirpath.html#boolean-evaluation-of-collections, as the HL7 validator
        reads constraints): false only for a single false; empty, true, or one non-Boolean item pass.
        More than one item is an error."""
        this = _focus(focus, focus_type)
        result = self._run(this, Env(context, this))
        if not result:
            return True
        if len(result) > 1:
            raise FhirPathError(f"{self.expression!r} gave {len(result)} items where one Boolean was expected")
        value = result[0]
        if type(value) is Node:
            value = value.value
        return value is not False


@cache
def compile_path(expression: str) -> CompiledPath:
    """The expression compiled, once per text; FhirPathError for a syntax error or an unknown function."""
    return CompiledPath(expression)
