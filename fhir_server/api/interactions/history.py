"""history: GET [base]/_history, [base]/[type]/_history, [base]/[type]/[id]/_history (http.html#history)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.searching import full_url, link, page_size, resource_fragment
from fhir_server.fhir.errors import bad_request
from fhir_server.search.dates import format_instant, parse_instant

_PARAMS = {"_since", "_at", "_count", "_cursor", "_format", "_pretty"}


def _instant(req: FhirRequest, name: str):
    value = req.param(name)
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise bad_request(f"{name}: {exc}", name) from None


def history(req: FhirRequest, ctx: Context, resource_type: str | None = None, id: str | None = None
            ) -> FhirResponse:
    unknown = sorted({name for name, _ in req.params} - _PARAMS)
    if unknown:
        raise bad_request(f"history does not support the parameter(s) {', '.join(unknown)}", *unknown)
    cursor = req.param("_cursor")
    if cursor is not None and not cursor.isdigit():
        raise bad_request(f"invalid _cursor {cursor!r}", "_cursor")
    count = page_size(req.params, ctx)
    versions = ctx.repo.history(resource_type, id, since=_instant(req, "_since"), at=_instant(req, "_at"),
                                count=count + 1, before_seq=int(cursor) if cursor else None)
    if id is not None and not versions and cursor is None:
        ctx.repo.vread(resource_type, id, "1")  # 404 for a resource that never existed
    path = "/".join(p for p in (resource_type, id, "_history") if p)
    own = [(k, v) for k, v in req.params if k != "_cursor"]
    bundle: dict = {"resourceType": "Bundle", "type": "history",
                    "link": [{"relation": "self", "url": link(ctx, path, req.params)}]}
    more, versions = len(versions) > count, versions[:count]
    if more and versions:
        bundle["link"].append({"relation": "next", "url": link(ctx, path, [*own, ("_cursor", str(versions[-1].seq))])})
    entries = []
    for stored in versions:
        entry: dict = {"fullUrl": full_url(ctx, stored)}
        if not stored.deleted:
            entry["resource"] = resource_fragment(stored)
        method = stored.method
        url = stored.resource_type if method == "POST" else f"{stored.resource_type}/{stored.id}"
        entry["request"] = {"method": method, "url": url}
        # Version 1 was a create whichever method made it; deletes answer 200 here (see delete.py).
        status = "201 Created" if stored.version_id == 1 else "200 OK"
        entry["response"] = {"status": status, "etag": stored.etag,
                             "lastModified": format_instant(stored.last_updated)}
        entries.append(entry)
    if entries:
        bundle["entry"] = entries
    interaction = "history-instance" if id else "history-type" if resource_type else "history-system"
    return FhirResponse(200, bundle, interaction=interaction, resource_type=resource_type or "")
