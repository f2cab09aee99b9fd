"""Shared response shapes: Prefer return=... after writes (http.html#ops), Location, subsetting on read."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.fhir.errors import Issue, bad_request
from fhir_server.fhir.subsetting import elements, parse_summary, summarize
from fhir_server.store.repository import StoredResource

_PREFER_RETURN = ("minimal", "representation", "operationoutcome")


def location(ctx: Context, stored: StoredResource) -> str:
    return f"{ctx.base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"


def after_write(req: FhirRequest, ctx: Context, stored: StoredResource, status: int, interaction: str,
                message: str) -> FhirResponse:
    """The answer to create/update/patch, shaped by `Prefer: return=` (http.html#return)."""
    prefer = req.prefer("return") or "representation"
    if prefer not in _PREFER_RETURN:
        raise bad_request(f"Prefer: return={prefer} is not one of {', '.join(_PREFER_RETURN)}")
    if prefer == "representation":
        response = FhirResponse.of_stored(stored, status, interaction=interaction)
    elif prefer == "operationoutcome":
        response = FhirResponse.outcome(status, [Issue("informational", message, severity="information")],
                                        interaction=interaction, resource_type=stored.resource_type)
        response.headers.update({"ETag": stored.etag, "Last-Modified": stored.last_modified})
    else:
        response = FhirResponse(status, interaction=interaction, resource_type=stored.resource_type)
        response.headers.update({"ETag": stored.etag, "Last-Modified": stored.last_modified})
    response.stored = stored
    if status == 201 or interaction in ("update", "patch"):
        response.headers["Location" if status == 201 else "Content-Location"] = location(ctx, stored)
    return response


def subset(req: FhirRequest, resource: dict) -> dict | None:
    """Apply _summary/_elements to one resource, or None when neither is asked for."""
    summary = req.param("_summary")
    wanted = req.param("_elements")
    if summary is not None and wanted is not None:
        raise bad_request("_summary and _elements cannot be combined", "_summary")
    if summary is not None:
        mode = parse_summary(summary)
        if mode == "count":
            raise bad_request("_summary=count applies to searches, not to reads", "_summary")
        return summarize(resource, mode) if mode != "false" else None
    if wanted is not None:
        return elements(resource, wanted.split(","))
    return None
