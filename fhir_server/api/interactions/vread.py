"""vread: GET [base]/[type]/[id]/_history/[vid] (http.html#vread)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse


def vread(req: FhirRequest, ctx: Context, resource_type: str, id: str, version_id: str) -> FhirResponse:
    return FhirResponse.of_stored(ctx.repo.vread(resource_type, id, version_id), interaction="vread")
