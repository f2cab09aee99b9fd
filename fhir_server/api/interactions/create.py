"""create: POST [base]/[type], conditional with If-None-Exist (http.html#create, http.html#ccreate)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.representation import after_write
from fhir_server.api.searching import criteria_from_string
from fhir_server.fhir.errors import bad_request


def create(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    if not isinstance(req.body, dict):
        raise bad_request("create needs a resource in the body")
    if req.body.get("resourceType") != resource_type:
        raise bad_request(
            f"resourceType {req.body.get('resourceType')!r} does not match the URL's type {resource_type}",
            "resourceType",
        )
    condition = req.headers.get("if-none-exist")
    query = criteria_from_string(resource_type, condition, ctx) if condition else None
    stored, created = ctx.repo.create(req.body, if_none_exist=query, id=req.assigned_id)
    if not created:
        return after_write(req, ctx, stored, 200, "create", f"{stored.reference} already matches If-None-Exist")
    return after_write(req, ctx, stored, 201, "create", f"created {stored.reference}")
