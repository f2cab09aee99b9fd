"""search: GET/POST [base]/[type]?…, [base]?… (search.html); this issue's parameters are in search/parse.py."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.searching import full_url, link, page_size, resource_fragment
from fhir_server.fhir.errors import bad_request
from fhir_server.fhir.subsetting import elements, parse_summary, summarize
from fhir_server.search.parse import parse_query


def _cursor(params: list[tuple[str, str]]) -> tuple[str, str] | None:
    for name, value in params:
        if name == "_cursor":
            resource_type, _, id = value.partition("/")
            if not resource_type or not id:
                raise bad_request(f"invalid _cursor {value!r}", "_cursor")
            return resource_type, id
    return None


def search(req: FhirRequest, ctx: Context, resource_type: str | None) -> FhirResponse:
    params = list(req.params)
    if req.method == "POST":  # POST [base]/[type]/_search with form-encoded parameters (search.html#Introduction)
        if isinstance(req.body, (bytes, str)):
            text = req.body.decode() if isinstance(req.body, bytes) else req.body
            params += parse_qsl(text, keep_blank_values=True)
    query = parse_query(resource_type, params, max_count=ctx.max_count)
    summary = next((parse_summary(v) for k, v in params if k == "_summary"), None)
    wanted = next((v for k, v in params if k == "_elements"), None)
    count = page_size(params, ctx)
    page = ctx.repo.search(query, count=0 if summary == "count" else count, after=_cursor(params))
    path = resource_type or ""
    own = [(k, v) for k, v in params if k != "_cursor"]
    bundle: dict = {"resourceType": "Bundle", "type": "searchset", "total": page.total,
                    "link": [{"relation": "self", "url": link(ctx, path, params)}]}
    if page.next_cursor is not None and summary != "count":
        bundle["link"].append({"relation": "next", "url": link(
            ctx, path, [*own, ("_cursor", "/".join(page.next_cursor))])})
    entries = []
    for stored in page.resources:
        if summary in ("true", "text", "data"):
            resource = summarize(stored.resource(), summary)
        elif wanted is not None:
            resource = elements(stored.resource(), wanted.split(","))
        else:
            resource = resource_fragment(stored)
        entries.append({"fullUrl": full_url(ctx, stored), "resource": resource, "search": {"mode": "match"}})
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, bundle, interaction="search-type" if resource_type else "search-system",
                        resource_type=resource_type or "")
