"""update: PUT [base]/[type]/[id], and conditional update PUT [base]/[type]?criteria (http.html#update)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.representation import after_write
from fhir_server.api.searching import criteria_from_params
from fhir_server.fhir.errors import bad_request


def _body(req: FhirRequest) -> dict:
    if not isinstance(req.body, dict):
        raise bad_request("update needs a resource in the body")
    return req.body


def update(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    stored, created = ctx.repo.update(resource_type, id, _body(req), if_match=req.headers.get("if-match"))
    return after_write(req, ctx, stored, 201 if created else 200, "update",
                       f"{'created' if created else 'updated'} {stored.reference}")


def conditional_update(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    query = criteria_from_params(resource_type, req.params, ctx)
    stored, created = ctx.repo.conditional_update(query, _body(req), new_id=req.assigned_id,
                                                  if_match=req.headers.get("if-match"))
    return after_write(req, ctx, stored, 201 if created else 200, "update",
                       f"{'created' if created else 'updated'} {stored.reference}")
