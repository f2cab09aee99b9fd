"""patch: PATCH [base]/[type]/[id] with a JSON Patch document (http.html#patch, RFC 6902)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.representation import after_write
from fhir_server.fhir.errors import bad_request


def patch(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    if not isinstance(req.body, list):
        raise bad_request("a JSON Patch document is a JSON array of operations")
    stored = ctx.repo.patch(resource_type, id, req.body, if_match=req.headers.get("if-match"))
    return after_write(req, ctx, stored, 200, "patch", f"patched {stored.reference}")
