"""Invariants: each ElementDefinition.constraint's FHIRPath expression, evaluated on the element's value
(conformance-rules.html#constraints).

`ele-1` (every element has a value or children) and `ext-1` (an extension has a value or extensions, not
both) stand on every element and extension; the walk checks their meaning directly from the JSON, which
is the same rule at a fraction of the cost, so their expressions are not evaluated.
"""

from __future__ import annotations

from collections.abc import Callable

from fhir_server.fhir.fhirpath_engine import Context, FhirPathError, compile_path
from fhir_server.fhir.fhirpath_engine.fhir_functions import narrative_has_content, narrative_is_safe
from fhir_server.fhir.validation.elements import Constraint

CHECKED_BY_WALK = frozenset({
    ("ele-1", "hasValue() or (children().count() > id.count())"),
    ("ext-1", "extension.exists() != value.exists()"),
})
# R4 gives txt-1 and txt-2 the one expression htmlChecks(), which tests both rules; each is checked for
# its own rule, so that an empty narrative is not also reported as unsafe HTML.
_NARRATIVE = {("txt-1", "htmlChecks()"): narrative_is_safe, ("txt-2", "htmlChecks()"): narrative_has_content}


def check(constraint: Constraint, focus: object, focus_type: str, resource: dict, root: dict,
          resolve: Callable[[str], dict | None], member_of: Callable[[str, object], bool | None]) -> bool | None:
    """True when the invariant holds, False when it fails, None when it cannot be evaluated."""
    if (constraint.key, constraint.expression) in CHECKED_BY_WALK:
        return True
    narrative = _NARRATIVE.get((constraint.key, constraint.expression))
    if narrative is not None:
        return isinstance(focus, str) and narrative(focus)
    try:
        expression = compile_path(constraint.expression)
        context = Context(resource=resource, root_resource=root, resolve=resolve,
                          member_of=lambda value, url: member_of(url, value))
        return expression.is_true(focus, focus_type, context)
    except FhirPathError:
        return None
