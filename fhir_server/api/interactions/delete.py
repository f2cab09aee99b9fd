"""delete: DELETE [base]/[type]/[id], and conditional delete on criteria (http.html#delete)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.searching import criteria_from_params
from fhir_server.fhir.errors import Issue
from fhir_server.store.repository import StoredResource


def _deleted(stored: StoredResource | None, resource_type: str, what: str) -> FhirResponse:
    if stored is None:
        return FhirResponse.outcome(200, [Issue("informational", what, severity="information")],
                                    interaction="delete", resource_type=resource_type)
    response = FhirResponse.outcome(200, [Issue("informational", f"deleted {stored.reference}",
                                                severity="information")],
                                    interaction="delete", resource_type=resource_type)
    response.headers["ETag"] = stored.etag
    response.stored = stored
    return response


def delete(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    return _deleted(ctx.repo.delete(resource_type, id), resource_type, f"{resource_type}/{id} was already deleted")


def conditional_delete(req: FhirRequest, ctx: Context, resource_type: str) -> FhirResponse:
    query = criteria_from_params(resource_type, req.params, ctx)
    return _deleted(ctx.repo.conditional_delete(query), resource_type, "no resource matched the criteria")
