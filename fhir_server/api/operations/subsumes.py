"""CodeSystem/$subsumes (codesystem-operation-subsumes.html): how code A relates to code B in the
system's hierarchy: equivalent, subsumes, subsumed-by or not-subsumed."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.conformance import code_system
from fhir_server.api.operations.inputs import Inputs, parameters
from fhir_server.fhir.errors import bad_request
from fhir_server.store.terminology import StoredTerminology

DECLARED = frozenset({"codeA", "codeB", "system", "version", "codingA", "codingB"})


def subsumes(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    inputs = Inputs(req, DECLARED)
    a, b = _coding(inputs, "A"), _coding(inputs, "B")
    systems = {c.get("system") for c in (a, b) if c.get("system")} | (
        {inputs.text("system")} if inputs.text("system") else set())
    if len(systems) > 1:
        raise bad_request(f"A and B must be codes of one system, not {', '.join(sorted(systems))}", "system")
    index = code_system(ctx, StoredTerminology(ctx.repo), inputs, id, next(iter(systems), None),
                        inputs.text("version"), "system")
    codes = []
    for name, coding in (("A", a), ("B", b)):
        concept = index.get(coding.get("code") or "")
        if concept is None:
            raise bad_request(f"code{name} {coding.get('code')!r} is not a code of {index.url}", f"code{name}")
        codes.append(concept.code)
    return FhirResponse(200, parameters({"name": "outcome", "valueCode": index.subsumes(*codes)}),
                        interaction="operation", resource_type="CodeSystem")


def _coding(inputs: Inputs, which: str) -> dict:
    names = [n for n in (f"code{which}", f"coding{which}") if n in inputs.names()]
    if len(names) != 1:
        raise bad_request(f"give code{which} or coding{which}, one of them", f"code{which}")
    return inputs.coding(f"coding{which}") or {"code": inputs.text(f"code{which}")}
