"""read: GET [base]/[type]/[id] (http.html#read), conditional read (http.html#cread), with _summary and
_elements (search.html#summary)."""

from __future__ import annotations

from datetime import UTC
from email.utils import parsedate_to_datetime

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse, version_headers
from fhir_server.api.representation import subset
from fhir_server.fhir.errors import FhirError
from fhir_server.store.repository import StoredResource, parse_etag


def read(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    stored = ctx.repo.read(resource_type, id)
    if _not_modified(req, stored):
        return FhirResponse(304, headers=version_headers(stored), interaction="read", resource_type=resource_type)
    if not any(name in ("_summary", "_elements") for name, _ in req.params):
        return FhirResponse.of_stored(stored, interaction="read")
    body = subset(req, stored.resource())
    if body is None:
        return FhirResponse.of_stored(stored, interaction="read")
    return FhirResponse(200, body, headers=version_headers(stored), interaction="read",
                        resource_type=resource_type)


def _not_modified(req: FhirRequest, stored: StoredResource) -> bool:
    """If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2); an unreadable date is ignored."""
    if_none_match = req.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or any(_same_version(t, stored.version_id) for t in tags)
    if_modified_since = req.headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    modified = stored.last_updated.replace(tzinfo=UTC, microsecond=0)  # HTTP dates have seconds
    return modified <= since


def _same_version(tag: str, version_id: int) -> bool:
    try:
        return parse_etag(tag) == version_id
    except FhirError:  # an entity tag that is not one of ours never matches
        return False
