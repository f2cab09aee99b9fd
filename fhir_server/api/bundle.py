"""batch and transaction: POST [base] with a Bundle (http.html#transaction, bundle.html#transaction).

A transaction runs inside the caller's database transaction: entries are processed in the order the spec
fixes (DELETE, POST, PUT/PATCH, GET/HEAD), `urn:uuid:`/`urn:oid:` fullUrls and conditional references are
rewritten to the ids the server assigns, and any failing entry fails the whole Bundle so nothing is written.
A batch runs each entry in a savepoint of its own and reports each outcome.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.negotiate import JSON_PATCH, StoredJSON
from fhir_server.api.searching import criteria_from_params, criteria_from_string
from fhir_server.fhir import jsonio
from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import FhirError, Issue, bad_request, error
from fhir_server.search.dates import format_instant
from fhir_server.store.repository import StoredResource, new_id

Dispatch = Callable[[FhirRequest, Context], FhirResponse]
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_ENTRY_HEADERS = {"ifNoneMatch": "if-none-match", "ifModifiedSince": "if-modified-since",
                  "ifMatch": "if-match", "ifNoneExist": "if-none-exist"}
_LOCAL_ID = re.compile(r"^urn:(uuid|oid):")


@dataclass
class Entry:
    index: int
    method: str
    path: str
    params: list[tuple[str, str]]
    full_url: str | None
    resource: object
    headers: dict[str, str] = field(default_factory=dict)
    assigned_id: str | None = None
    response: dict | None = None

    @property
    def label(self) -> str:
        return f"Bundle.entry[{self.index}]"


def process(req: FhirRequest, ctx: Context, dispatch: Dispatch) -> FhirResponse:
    body = req.body
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise bad_request("POST to the base URL takes a Bundle of type batch or transaction", "Bundle")
    kind = body.get("type")
    if kind not in ("batch", "transaction"):
        raise bad_request(f"Bundle.type must be batch or transaction, not {kind!r}", "Bundle.type")
    entries = _entries(body, ctx, fail_whole=kind == "transaction")
    prefer = req.headers.get("prefer", "return=minimal")
    if kind == "transaction":
        responses = _transaction(entries, ctx, dispatch, prefer)
    else:
        responses = _batch(entries, ctx, dispatch, prefer)
    return FhirResponse(200, {"resourceType": "Bundle", "type": f"{kind}-response", "entry": responses},
                        interaction=kind, resource_type="Bundle")


def _entries(body: dict, ctx: Context, *, fail_whole: bool) -> list[Entry]:
    """The Bundle's entries. A malformed entry fails a transaction, and only its own entry in a batch."""
    raw = body.get("entry", [])
    if not isinstance(raw, list):
        raise bad_request("Bundle.entry must be an array", "Bundle.entry")
    entries: list[Entry] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        try:
            entries.append(_entry(i, item, ctx, seen))
        except FhirError as exc:
            if fail_whole:
                raise
            entries.append(Entry(i, "GET", "", [], None, None, response=_error_response(exc)))
    return entries


def _entry(i: int, item: object, ctx: Context, seen: set[str]) -> Entry:
    where = f"Bundle.entry[{i}]"
    request = item.get("request") if isinstance(item, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise bad_request(f"{where}: every entry needs request.method and request.url", f"{where}.request")
    method = request.get("method")
    if method not in _ORDER:
        raise bad_request(f"{where}: request.method {method!r} is not GET, HEAD, POST, PUT, PATCH or DELETE",
                          f"{where}.request.method")
    url = request["url"]
    if url.startswith(ctx.base_url + "/"):
        url = url[len(ctx.base_url) + 1:]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise bad_request(f"{where}: request.url must be relative to this server's base", f"{where}.request.url")
    full_url = item.get("fullUrl")
    if full_url is not None:
        if full_url in seen:
            raise bad_request(f"{where}: fullUrl {full_url} appears twice", f"{where}.fullUrl")
        seen.add(full_url)
    resource = item.get("resource")
    if method == "PATCH":
        resource = _json_patch_of(resource, where)
    headers = {h: request[k] for k, h in _ENTRY_HEADERS.items() if isinstance(request.get(k), str)}
    return Entry(i, method, parts.path.strip("/"), parse_qsl(parts.query, keep_blank_values=True),
                 full_url, resource, headers)


def _json_patch_of(resource: object, where: str) -> object:
    """A PATCH entry carries its JSON Patch as a Binary resource (http.html#patch, bundle.html#patch)."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        raise bad_request(f"{where}: a PATCH entry's resource must be a Binary holding a JSON Patch",
                          f"{where}.resource")
    if resource.get("contentType", "").split(";")[0].strip() != JSON_PATCH:
        raise error(415, "not-supported", f"{where}: the Binary's contentType must be {JSON_PATCH} "
                                          "(FHIRPath Patch is not supported)")
    try:
        return jsonio.loads(base64.b64decode(resource.get("data", ""), validate=True))
    except (binascii.Error, TypeError, *jsonio.JSONDecodeError) as exc:
        raise bad_request(f"{where}: Binary.data is not base64 of a JSON Patch document: {exc}",
                          f"{where}.resource.data") from None


def _transaction(entries: list[Entry], ctx: Context, dispatch: Dispatch, prefer: str) -> list[dict]:
    ordered = sorted(entries, key=lambda e: (_ORDER[e.method], e.index))
    deletes = [e for e in ordered if e.method == "DELETE"]
    for entry in deletes:
        _run(entry, ctx, dispatch, prefer)
    identities = _assign_identities([e for e in ordered if e.method in ("POST", "PUT")], ctx)
    _check_overlaps(ordered)
    for entry in entries:
        if isinstance(entry.resource, dict):
            entry.resource = _rewrite(entry.resource, identities, ctx, entry)
    for entry in ordered:
        if entry.method != "DELETE" and entry.response is None:
            _run(entry, ctx, dispatch, prefer)
    return [e.response for e in entries]  # type: ignore[misc]


def _batch(entries: list[Entry], ctx: Context, dispatch: Dispatch, prefer: str) -> list[dict]:
    for entry in sorted(entries, key=lambda e: (_ORDER[e.method], e.index)):
        if entry.response is not None:  # malformed; already answered
            continue
        try:
            with ctx.repo.savepoint():
                _run(entry, ctx, dispatch, prefer)
        except FhirError as exc:
            entry.response = _error_response(exc)
    return [e.response for e in entries]  # type: ignore[misc]


def _assign_identities(writes: list[Entry], ctx: Context) -> dict[str, str]:
    """fullUrl -> Type/id for every entry that creates or updates (transaction.html#urls)."""
    identities: dict[str, str] = {}
    for entry in writes:
        resource_type = entry.path.split("/")[0]
        if entry.method == "POST":
            condition = entry.headers.get("if-none-exist")
            matches = ctx.repo.match_ids(criteria_from_string(resource_type, condition, ctx)) if condition else []
            if len(matches) > 1:
                raise _entry_error(entry, FhirError(412, [Issue("duplicate", "ifNoneExist matched more than "
                                                                             "one resource")]))
            if matches:
                stored = ctx.repo.read(resource_type, matches[0])
                entry.response = _entry_response(200, stored, None)
                target = matches[0]
            else:
                entry.assigned_id = target = new_id()
                entry.headers.pop("if-none-exist", None)
        elif entry.params:  # conditional update: resolve it now so references to it can be rewritten
            query = criteria_from_params(resource_type, entry.params, ctx)
            matches = ctx.repo.match_ids(query)
            if len(matches) > 1:
                raise _entry_error(entry, FhirError(412, [Issue("duplicate", "the conditional update matched "
                                                                             "more than one resource")]))
            target = matches[0] if matches else (_body_id(entry) or new_id())
            entry.path, entry.params = f"{resource_type}/{target}", []
            if isinstance(entry.resource, dict):
                entry.resource = {**entry.resource, "id": target}
        else:
            target = entry.path.split("/")[1] if "/" in entry.path else ""
        if entry.full_url:
            identities[entry.full_url] = f"{resource_type}/{target}"
    return identities


def _check_overlaps(entries: list[Entry]) -> None:
    """No two writes of one transaction may touch the same resource (http.html#trules): 409."""
    seen: dict[str, Entry] = {}
    for entry in entries:
        if entry.method not in ("DELETE", "POST", "PUT", "PATCH") or entry.params:
            continue  # conditional deletes are resolved when they run, and match current resources only
        target = entry.path if entry.method != "POST" else f"{entry.path}/{entry.assigned_id or ''}"
        if entry.method == "POST" and entry.response is not None:  # ifNoneExist matched
            target = entry.response["response"]["location"].rsplit("/_history", 1)[0]
        if target in seen:
            raise FhirError(409, [Issue("conflict", f"{seen[target].label} and {entry.label} both change {target}; "
                                                    "a transaction may change each resource once",
                                        expression=(seen[target].label, entry.label))])
        seen[target] = entry


def _body_id(entry: Entry) -> str | None:
    return entry.resource.get("id") if isinstance(entry.resource, dict) else None


def _rewrite(resource: dict, identities: dict[str, str], ctx: Context, entry: Entry) -> dict:
    """Replace local and conditional references with the ids they resolve to (transaction.html#references)."""
    resolved: dict[str, str] = {}

    def resolve(reference: str) -> str:
        if reference in identities:
            return identities[reference]
        if reference in resolved:
            return resolved[reference]
        if _LOCAL_ID.match(reference):
            raise _entry_error(entry, bad_request(f"reference {reference} is not the fullUrl of any entry"))
        target_type, _, query = reference.partition("?")
        if query and target_type in resource_types():
            matches = ctx.repo.match_ids(criteria_from_string(target_type, query, ctx))
            if len(matches) != 1:
                found = "no resource" if not matches else "more than one resource"
                raise _entry_error(entry, FhirError(412, [Issue(
                    "not-found" if not matches else "duplicate",
                    f"conditional reference {reference} matches {found}; it must match exactly one")]))
            resolved[reference] = f"{target_type}/{matches[0]}"
            return resolved[reference]
        return reference

    def walk(value: object, key: str | None) -> object:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if isinstance(value, str):
            if key == "reference":
                return resolve(value)
            if key == "div" and "urn:" in value:  # narrative links to bundle-local resources
                for local, target in identities.items():
                    value = value.replace(f'"{local}"', f'"{target}"')
        return value

    return walk(resource, None)  # type: ignore[return-value]


def _run(entry: Entry, ctx: Context, dispatch: Dispatch, prefer: str) -> None:
    headers = {**entry.headers, "prefer": prefer}
    request = FhirRequest(entry.method, entry.path, entry.params, headers, entry.resource, entry.assigned_id)
    response = dispatch(request, ctx)
    if response.status >= 400:
        raise _entry_error(entry, FhirError(response.status, [_issue(i) for i in (response.body or {}).get(
            "issue", [])]))
    entry.response = _entry_response(response.status, response.stored, response,
                                     include_body=entry.method in ("GET", "HEAD") or "representation" in prefer)


def _issue(data: dict) -> Issue:
    return Issue(data["code"], data.get("diagnostics", ""), data.get("severity", "error"),
                 tuple(data.get("expression", ())))


def _entry_response(status: int, stored: StoredResource | None, response: FhirResponse | None,
                    include_body: bool = False) -> dict:
    result: dict = {"status": _status_line(status)}
    if stored is not None:
        result["location"] = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        result["etag"] = stored.etag
        result["lastModified"] = format_instant(stored.last_updated)
    entry: dict = {"response": result}
    if include_body and response is not None:
        if response.raw is not None:
            entry["resource"] = StoredJSON(response.raw)
        elif response.body is not None:
            entry["resource"] = response.body
    return entry


def _error_response(exc: FhirError) -> dict:
    return {"response": {"status": _status_line(exc.status), "outcome": exc.outcome()}}


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _entry_error(entry: Entry, exc: FhirError) -> FhirError:
    """Name the failing entry in every issue, and point expressions inside its resource."""
    issues = []
    for issue in exc.issues or [Issue("exception", "the entry failed")]:
        expressions = tuple(
            f"{entry.label}.resource{e[e.index('.'):]}" if "." in e and e.split(".")[0][:1].isupper()
            else f"{entry.label}" for e in issue.expression
        ) or (entry.label,)
        issues.append(Issue(issue.code, f"{entry.label} ({entry.method} {entry.path}): {issue.diagnostics}",
                            issue.severity, expressions))
    return FhirError(exc.status, issues, exc.headers)
