"""The FHIR router: FhirRequest -> FhirResponse with no HTTP framework (DESIGN.md, Medplum's FhirRouter).

Batch and transaction entries re-enter `dispatch` inside the caller's database transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from fhir_server.api import bundle
from fhir_server.api.context import Context
from fhir_server.api.interactions.capabilities import capabilities, capability_statement
from fhir_server.api.interactions.create import create
from fhir_server.api.interactions.delete import conditional_delete, delete
from fhir_server.api.interactions.history import history
from fhir_server.api.interactions.patch import patch
from fhir_server.api.interactions.read import read
from fhir_server.api.interactions.search import compartment_search, search
from fhir_server.api.interactions.update import conditional_update, update
from fhir_server.api.interactions.vread import vread
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations import find as find_operation
from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import FhirError, Issue, error

Handler = Callable[..., FhirResponse]

# Routes by URL shape, then by method. Shapes: "" base, "T" type, "T/id" instance, and literal segments.
# The CapabilityStatement is generated from these tables, so what is advertised is what is routed.
_ROUTES: dict[str, dict[str, tuple[str, Handler]]] = {
    "": {"GET": ("search-system", lambda r, c: search(r, c, None)),
         "POST": ("batch/transaction", lambda r, c: bundle.process(r, c, dispatch))},
    "_search": {"POST": ("search-system", lambda r, c: search(r, c, None))},
    "_history": {"GET": ("history-system", lambda r, c: history(r, c))},
    "metadata": {"GET": ("capabilities", lambda r, c: capabilities(r, c, _statement(c.base_url, c.oauth_uris)))},
    "T": {"GET": ("search-type", search), "POST": ("create", create),
          "PUT": ("update", conditional_update), "DELETE": ("delete", conditional_delete)},
    "T/_search": {"POST": ("search-type", search)},
    "T/_history": {"GET": ("history-type", history)},
    "T/id": {"GET": ("read", read), "PUT": ("update", update), "PATCH": ("patch", patch),
             "DELETE": ("delete", delete)},
    "T/id/_history": {"GET": ("history-instance", history)},
    "T/id/C": {"GET": ("search-compartment", compartment_search)},
    "T/$op": {"GET": ("operation", lambda *a: _operate(*a)), "POST": ("operation", lambda *a: _operate(*a))},
    "T/id/$op": {"GET": ("operation", lambda *a: _operate(*a)), "POST": ("operation", lambda *a: _operate(*a))},
    "T/id/_history/vid": {"GET": ("vread", vread)},
}
TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                     "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
TYPE_SEARCH_PARAMS = (
    ("_id", "token", "Logical id of the resource"),
    ("_lastUpdated", "date", "When the resource version last changed"),
)


@cache
def _statement(base_url: str, oauth_uris: tuple[tuple[str, str], ...] | None) -> dict:
    return capability_statement(base_url, TYPE_INTERACTIONS, SYSTEM_INTERACTIONS, TYPE_SEARCH_PARAMS, oauth_uris)


def _shape(segments: list[str]) -> tuple[str, list[str]]:
    """The route shape of a path and the values it binds (type, id, version)."""
    if not segments:
        return "", []
    head = segments[0]
    if len(segments) == 1 and head in ("_search", "_history", "metadata"):
        return head, []
    if 2 <= len(segments) <= 3 and segments[-1].startswith("$") and head in resource_types():
        return ("T/$op" if len(segments) == 2 else "T/id/$op"), [*segments[:-1], segments[-1][1:]]
    if head.startswith("$") or any(s.startswith("$") for s in segments[1:3]):
        raise error(404, "not-supported", f"operation {next(s for s in segments if s.startswith('$'))} "
                                          "is not supported by this server")
    if head not in resource_types():
        raise error(404, "not-supported", f"unknown resource type or path '{head}'")
    rest = segments[1:]
    if not rest:
        return "T", [head]
    if rest in (["_search"], ["_history"]):
        return f"T/{rest[0]}", [head]
    if len(rest) == 1:
        return "T/id", [head, rest[0]]
    if len(rest) == 2 and rest[1] == "_history":
        return "T/id/_history", [head, rest[0]]
    if len(rest) == 2 and (rest[1] in resource_types() or rest[1] == "*"):
        return "T/id/C", [head, rest[0], rest[1]]
    if len(rest) == 3 and rest[1] == "_history":
        return "T/id/_history/vid", [head, rest[0], rest[2]]
    raise error(404, "not-found", f"no FHIR interaction at '{'/'.join(segments)}'")


def _operate(req: FhirRequest, ctx: Context, resource_type: str, *rest: str) -> FhirResponse:
    """An operation (operations.html#executing), as registered in api/operations: `rest` is the instance's
    id, if any, and the operation's name."""
    *ids, name = rest
    id = ids[0] if ids else None
    operation = find_operation(name, resource_type, id is not None)
    if operation is None:
        level = "an instance of " if id is not None else ""
        raise error(404, "not-supported", f"operation ${name} is not supported on {level}{resource_type}")
    if req.method in ("GET", "HEAD") and operation.affects_state:
        raise FhirError(405, [Issue("not-supported", f"${name} changes data: call it with POST")],
                        headers={"Allow": "POST"})
    return operation.handler(req, ctx, resource_type, id)


def is_point_read(req: FhirRequest) -> bool:
    """read or vread: a primary-key lookup of one row, bounded in cost whatever the data."""
    if req.method not in ("GET", "HEAD") or "$" in req.path:
        return False
    segments = [s for s in req.path.split("/") if s]
    return (len(segments) == 2 and not segments[1].startswith("_")) or (
        len(segments) == 4 and segments[2] == "_history")


def dispatch(req: FhirRequest, ctx: Context) -> FhirResponse:
    """Route one request to its interaction; FhirErrors become OperationOutcome responses."""
    interaction, resource_type = "unknown", ""
    try:
        shape, args = _shape([s for s in req.path.split("/") if s])
        resource_type = args[0] if args else ""
        methods = _ROUTES[shape]
        method = "GET" if req.method == "HEAD" else req.method
        if method not in methods:
            allowed = sorted(methods) + (["HEAD"] if "GET" in methods else [])
            raise FhirError(405, [Issue("not-supported", f"{req.method} is not allowed on this URL; "
                                                         f"allowed: {', '.join(allowed)}")],
                            headers={"Allow": ", ".join(allowed)})
        interaction, handler = methods[method]
        response = handler(req, ctx, *args)
    except FhirError as exc:
        response = FhirResponse(exc.status, exc.outcome(), headers=dict(exc.headers))
        response.interaction, response.resource_type = interaction, resource_type
    return response


def interaction_of(req: FhirRequest) -> tuple[str, list[str]]:
    """The interaction a request asks for, by the routing table, and the path's bound values (type, id,
    version); ("unknown", []) for a path or method nothing serves."""
    try:
        shape, args = _shape([s for s in req.path.split("/") if s])
    except FhirError:
        return "unknown", []
    if shape.endswith("$op"):
        args = args[:-1]  # the type (and id) an operation is called on; its name is in the path
    route = _ROUTES[shape].get("GET" if req.method == "HEAD" else req.method)
    return (route[0], args) if route else ("unknown", args)
