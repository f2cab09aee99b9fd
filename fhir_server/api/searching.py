"""Search criteria and Bundles of stored resources (search.html, bundle.html)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fhir_server.api.context import Context
from fhir_server.api.negotiate import StoredJSON
from fhir_server.fhir.errors import bad_request
from fhir_server.fhir.subsetting import elements, summarize
from fhir_server.search.parse import SearchQuery, parse_query
from fhir_server.store.repository import SearchPage, StoredResource


def criteria_from_params(resource_type: str, params: list[tuple[str, str]], ctx: Context) -> SearchQuery:
    """Criteria of a conditional interaction: always strict, since ignoring one could widen the match."""
    query = parse_query(resource_type, params, max_count=ctx.max_count, base_url=ctx.base_url, strict=True)
    if not query.criteria:
        raise bad_request("conditional interactions need search criteria")
    return query


def criteria_from_string(resource_type: str, text: str, ctx: Context) -> SearchQuery:
    """Criteria written as a query string, as in If-None-Exist or a conditional reference."""
    return criteria_from_params(resource_type, parse_qsl(text.lstrip("?"), keep_blank_values=True), ctx)


def page_size(params: list[tuple[str, str]], ctx: Context) -> int:
    for name, value in params:
        if name == "_count" and value != "":
            if not value.isdigit():
                raise bad_request(f"_count must be a non-negative integer, not {value!r}", "_count")
            return min(int(value), ctx.max_count)
    return ctx.default_count


def link(ctx: Context, path: str, params: list[tuple[str, str]]) -> str:
    url = f"{ctx.base_url}/{path}" if path else ctx.base_url
    return f"{url}?{urlencode(params)}" if params else url


def full_url(ctx: Context, stored: StoredResource) -> str:
    return f"{ctx.base_url}/{stored.resource_type}/{stored.id}"


def resource_fragment(stored: StoredResource) -> StoredJSON:
    """The stored JSON text, spliced into a Bundle without parsing it (DESIGN.md, performance)."""
    return StoredJSON(stored.content)


def entry(ctx: Context, stored: StoredResource, mode: str, summary: str | None, wanted: str | None) -> dict:
    """A searchset entry (bundle.html#searchset), the body subset by `_summary` / `_elements` if asked."""
    if summary in ("true", "text", "data"):
        resource: object = summarize(stored.resource(), summary)
    elif wanted is not None:
        resource = elements(stored.resource(), wanted.split(","))
    else:
        resource = resource_fragment(stored)
    return {"fullUrl": full_url(ctx, stored), "resource": resource, "search": {"mode": mode}}


def searchset(ctx: Context, path: str, params: list[tuple[str, str]], cursor: str | None, page: SearchPage,
              entries: list[dict]) -> dict:
    """A searchset Bundle (bundle.html#searchset): total, `self`/`next`/`previous` links carrying `params`
    and each page's `_cursor` (search.html#paging), and the entries."""
    links = [{"relation": "self", "url": link(ctx, path, [*params, *([("_cursor", cursor)] if cursor else [])])}]
    for relation, edge in (("next", page.next_cursor), ("previous", page.prev_cursor)):
        if edge is not None:
            links.append({"relation": relation, "url": link(ctx, path, [*params, ("_cursor", edge)])})
    bundle: dict = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle
