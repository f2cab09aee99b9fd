"""search (search.html): GET/POST [base]/[type]?…, [base]?_type=…, and [base]/[Compartment]/[id]/[type]?…"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.searching import entry, page_size, searchset
from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import Issue, bad_request, error, operation_outcome
from fhir_server.fhir.subsetting import parse_summary
from fhir_server.search.parse import parse_query

# Parameters the links of a page carry over unchanged; `_cursor` is replaced per link.
_NOT_CARRIED = frozenset({"_cursor"})


def search_params(req: FhirRequest) -> list[tuple[str, str]]:
    """Query parameters, plus the form-encoded body of POST …/_search (search.html#Introduction)."""
    params = list(req.params)
    if req.method == "POST":
        content_type = req.headers.get("content-type", "application/x-www-form-urlencoded")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            raise error(415, "not-supported", "POST _search takes an application/x-www-form-urlencoded body")
        if isinstance(req.body, (bytes, str)):
            text = req.body.decode() if isinstance(req.body, bytes) else req.body
            params += parse_qsl(text, keep_blank_values=True)
    return params


def search(req: FhirRequest, ctx: Context, resource_type: str | None,
           compartment: tuple[str, str] | None = None) -> FhirResponse:
    params = search_params(req)
    strict = req.prefer("handling") == "strict"
    query = parse_query(resource_type, params, max_count=ctx.max_count, base_url=ctx.base_url, strict=strict)
    if compartment is not None:
        query = replace(query, compartment=compartment)
    summary = next((parse_summary(v) for k, v in params if k == "_summary" and v), None)
    wanted = next((v for k, v in params if k == "_elements" and v), None)
    count = 0 if summary == "count" else page_size(params, ctx)
    cursor = next((v for k, v in params if k == "_cursor" and v), None)
    page = ctx.repo.search(query, count=count, cursor=cursor)

    path = "/".join([*compartment, resource_type or ""]) if compartment else (resource_type or "")
    own = [(k, v) for k, v in params if k not in _NOT_CARRIED and k not in query.ignored]
    entries = [entry(ctx, stored, "match", summary, wanted) for stored in page.resources]
    entries += [entry(ctx, stored, "include", summary, wanted) for stored in page.included]
    if query.ignored:
        outcome = operation_outcome([
            Issue("not-supported", f"search parameter {name} was ignored: it is unknown or not supported here",
                  severity="warning", expression=(name,)) for name in query.ignored])
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle = searchset(ctx, path, own, cursor, page, entries)
    return FhirResponse(200, bundle, interaction="search-type" if resource_type else "search-system",
                        resource_type=resource_type or "")


def compartment_search(req: FhirRequest, ctx: Context, compartment_type: str, id: str,
                       resource_type: str) -> FhirResponse:
    """[base]/[Compartment]/[id]/[type]?… (compartmentdefinition.html#search)."""
    if compartment_type not in ("Patient", "Encounter", "RelatedPerson", "Practitioner", "Device"):
        raise error(404, "not-found", f"{compartment_type} is not a compartment")
    if resource_type not in resource_types() and resource_type != "*":
        raise bad_request(f"unknown resource type {resource_type!r}")
    return search(req, ctx, None if resource_type == "*" else resource_type, (compartment_type, id))
