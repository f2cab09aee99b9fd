"""The FastAPI adapter: HTTP request <-> FhirRequest/FhirResponse, one database transaction per request.

Everything FHIR happens in dispatch; this module only decodes, encodes, times and logs.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from fhir_server.api.execute import READS, Server, execute
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.negotiate import FHIR_JSON, check_accept, parse_body, render
from fhir_server.api.observability import observe
from fhir_server.fhir.errors import FhirError, Issue

log = logging.getLogger("fhir_server.http")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def fhir_router(server: Server, *, max_body_bytes: int) -> APIRouter:
    router = APIRouter()
    engine = server.engine

    def handle(req: FhirRequest, raw_body: bytes, content_type: str | None) -> FhirResponse:
        try:
            check_accept(req.headers.get("accept"), req.param("_format"))
            req.body = parse_body(content_type, raw_body, req.method)
        except FhirError as exc:
            return FhirResponse(exc.status, exc.outcome(), headers=dict(exc.headers))
        return execute(server, req)

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
        response = await run_in_threadpool(handle, req, raw_body, request.headers.get("content-type"))
        return _respond(response, req, started)

    def _respond(response: FhirResponse, req: FhirRequest, started: float) -> Response:
        pretty = (req.param("_pretty") or "").lower() == "true"
        body = render(response.body, response.raw, pretty)
        headers = dict(response.headers)
        if req.method == "HEAD":  # the headers a GET would send, without its body (RFC 9110 9.3.2)
            headers["content-length"] = str(len(body))
            body = b""
        media = FHIR_JSON + "; charset=utf-8" if (response.body is not None or response.raw is not None) else None
        observe(response.interaction, response.resource_type, response.status, time.perf_counter() - started,
                engine.pool.checkedout() if hasattr(engine.pool, "checkedout") else 0)
        log.info("request", extra={"fields": {
            "method": req.method, "path": "/fhir/" + req.path, "interaction": response.interaction,
            "status": response.status, "ms": round((time.perf_counter() - started) * 1000, 2)}})
        return Response(body, status_code=response.status, headers=headers, media_type=media)

    router.add_api_route("/fhir", endpoint, methods=_METHODS, include_in_schema=False)
    router.add_api_route("/fhir/{path:path}", endpoint, methods=_METHODS, include_in_schema=False)
    return router


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
