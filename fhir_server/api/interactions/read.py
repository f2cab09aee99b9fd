"""read: GET [base]/[type]/[id] (http.html#read), with _summary and _elements (search.html#summary)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse, version_headers
from fhir_server.api.representation import subset


def read(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    stored = ctx.repo.read(resource_type, id)
    if not any(name in ("_summary", "_elements") for name, _ in req.params):
        return FhirResponse.of_stored(stored, interaction="read")
    body = subset(req, stored.resource())
    if body is None:
        return FhirResponse.of_stored(stored, interaction="read")
    return FhirResponse(200, body, headers=version_headers(stored), interaction="read",
                        resource_type=resource_type)
