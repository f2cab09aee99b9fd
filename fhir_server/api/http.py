"""The HTTP adapter: HTTP request <-> FhirRequest/FhirResponse, one database transaction per request.

Starlette primitives inside the FastAPI app. Everything FHIR happens in dispatch; this module only
decodes, encodes, times and logs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.api import audit
from fhir_server.api.dispatch import is_point_read
from fhir_server.api.execute import READS, Server, execute
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.negotiate import FHIR_JSON, check_accept, parse_body, render
from fhir_server.api.observability import AccessLog, observe
from fhir_server.api.operations import produced_at
from fhir_server.auth.bearer import BearerAuthenticator
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.store.access import ALL
from fhir_server.store.audit import Actor, AuditLog

access_log = AccessLog("fhir_server.http")
log = logging.getLogger("fhir_server.http")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def fhir_routes(server: Server, *, max_body_bytes: int, db_threads: int,
                authenticator: BearerAuthenticator | None = None, audit_log: AuditLog | None = None) -> list[Route]:
    """Plain Starlette routes for /fhir: FastAPI's dependency machinery has nothing to do here.

    With an `authenticator` (FHIR_AUTH_MODE=smart) every request but `metadata` needs a bearer token, and
    runs with the Access its grant gives; without one (open mode) every request is unrestricted. With an
    `audit_log`, every request is recorded in it (api/audit.py), refusals too.
    """
    engine = server.engine
    # Requests beyond `db_threads` wait in the event loop rather than in threads contending for the GIL.
    limiter = CapacityLimiter(db_threads)

    def handle(req: FhirRequest, raw_body: bytes, content_type: str | None, address: str | None) -> FhirResponse:
        actor = Actor(address=address)
        try:
            if authenticator is None or req.path == "metadata":
                access = ALL
            else:
                access, holder = authenticator.authenticate(req.headers.get("authorization"))
                actor = replace(holder, address=address)
            check_accept(req.headers.get("accept"), req.param("_format"), produced_at(req.path))
            req.body = parse_body(content_type, raw_body, req.method)
        except FhirError as exc:
            response = FhirResponse(exc.status, exc.outcome(), headers=dict(exc.headers))
        else:
            if audit_log is not None and req.path.startswith("AuditEvent"):
                audit_log.flush()  # this worker's own recent events are there to be read
            response = execute(server, req, access)
        if audit_log is not None:
            try:
                audit.record(audit_log, req, response, actor, server.base_url)
            except Exception:  # the answer stands; the gap is logged (by type: no content) for the operators
                log.exception("audit event not recorded")
        return response

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        path = request.url.path.removeprefix("/fhir").strip("/")
        req = FhirRequest(request.method, path, list(request.query_params.multi_items()),
                          {k.lower(): v for k, v in request.headers.items()})
        raw_body = b""
        if request.method not in READS:
            try:
                raw_body = await _read_body(request, max_body_bytes)
            except FhirError as exc:
                return _respond(FhirResponse(exc.status, exc.outcome()), req, started)
        address = request.client.host if request.client else None
        # One indexed row: cheaper to run here than to hand over to a thread. Not the audit log's: reading
        # it first writes this worker's queued events, which must not block the event loop.
        if is_point_read(req) and not req.path.startswith("AuditEvent"):
            response = handle(req, raw_body, None, address)
        else:
            response = await anyio.to_thread.run_sync(handle, req, raw_body, request.headers.get("content-type"),
                                                       address, limiter=limiter)
        return _respond(response, req, started)

    def _respond(response: FhirResponse, req: FhirRequest, started: float) -> Response:
        pretty = (req.param("_pretty") or "").lower() == "true"
        body = response.content if response.content is not None else render(response.body, response.raw, pretty)
        headers = dict(response.headers)
        if req.method == "HEAD":  # the headers a GET would send, without its body (RFC 9110 9.3.2)
            headers["content-length"] = str(len(body))
            body = b""
        media = FHIR_JSON + "; charset=utf-8" if (response.body is not None or response.raw is not None) else None
        observe(response.interaction, response.resource_type, response.status, time.perf_counter() - started,
                engine.pool.checkedout() if hasattr(engine.pool, "checkedout") else 0)
        access_log.write(method=req.method, path="/fhir/" + req.path, interaction=response.interaction,
                         status=response.status, ms=round((time.perf_counter() - started) * 1000, 2))
        return Response(body, status_code=response.status, headers=headers, media_type=media)

    return [Route("/fhir", endpoint, methods=_METHODS), Route("/fhir/{path:path}", endpoint, methods=_METHODS)]


class FhirFront:
    """ASGI middleware that answers /fhir itself, ahead of the framework's exception and routing layers.

    Those layers cost about a tenth of a point read; the FHIR endpoint turns every error into an
    OperationOutcome on its own and needs neither.
    """

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.router = Router(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/fhir" or path.startswith("/fhir/")):
            await self.router(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> FhirError:
    return FhirError(413, [Issue("too-costly", f"the request body is larger than the limit of {limit} bytes")])
