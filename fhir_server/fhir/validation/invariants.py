"""Invariants: each ElementDefinition.constraint's FHIRPath expression, evaluated on the element's value
(conformance-rules.html#constraints).

`ele-1` (every element has a value or children) and `ext-1` (an extension has a value or extensions, not
both) stand on every element and extension; the walk checks their meaning directly from the JSON, which
is the same rule at a fraction of the cost, so their expressions are not evaluated.
"""

from __future__ import annotations

from collections.abc import Callable

from fhir_server.fhir.fhirpath_engine import Context, FhirPathError, compile_path
from fhir_server.fhir.validation.elements import Constraint

CHECKED_BY_WALK = frozenset({
    ("ele-1", "hasValue() or (children().count() > id.count())"),
    ("ext-1", "extension.exists() != value.exists()"),
})


def check(constraint: Constraint, focus: object, focus_type: str, resource: dict, root: dict,
          resolve: Callable[[str], dict | None], member_of: Callable[[str, object], bool | None]) -> bool | None:
    """True when the invariant holds, False when it fails, None when it cannot be evaluated."""
    if (constraint.key, constraint.expression) in CHECKED_BY_WALK:
        return True
    try:
        expression = compile_path(constraint.expression)
        context = Context(resource=resource, root_resource=root, resolve=resolve,
                          member_of=lambda value, url: member_of(url, value))
        return expression.is_true(focus, focus_type, context)
    except FhirPathError:
        return None
