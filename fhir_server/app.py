"""Composition root: builds the ASGI app from the settings. Nothing imports this module."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fhir_server.api.execute import Server
from fhir_server.api.http import FhirFront, fhir_routes
from fhir_server.api.observability import RequestIdMiddleware, configure_logging, metrics_text
from fhir_server.auth.bearer import BearerAuthenticator
from fhir_server.auth.cors import CorsMiddleware, RegisteredOrigins
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.launch import LaunchFlow
from fhir_server.auth.pages import launch_routes
from fhir_server.auth.revocation import RevocationList
from fhir_server.auth.routes import auth_routes, auth_urls
from fhir_server.auth.server import SmartAuthorizationServer
from fhir_server.care.candidates import load_rules
from fhir_server.care.program import ProgramSettings
from fhir_server.config import AuthMode, Settings, SettingsError, load_settings
from fhir_server.fhir.errors import FhirError
from fhir_server.store.audit import AuditLog
from fhir_server.store.db import database_label, make_engine
from fhir_server.store.migrate import is_current

log = logging.getLogger("fhir_server.app")

# The young generation is collected after this many net allocations of container objects, not 700: a
# search allocates thousands, and the collections they set off cost more than the garbage they find.
GC_THRESHOLDS = (10_000, 50, 100)


def served_app() -> FastAPI:
    """The app as `fhir-server serve` runs it in each worker: built from the settings, then the heap settled.
    Tests build theirs with `create_app` and leave the collector as it is."""
    app = create_app()
    settle_heap()
    return app


def settle_heap() -> None:
    """Take the objects alive once the app is built (modules, models, definitions: about 150,000) out of the
    cyclic collector's sight, and collect the young generation less often.

    A full collection walked all of them, 65 ms in which the worker answered nothing: under load that
    pause was most of the search p99 (docs/benchmarks.md, "garbage collection").
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    try:
        load_rules(settings.candidate_rules)  # a rules file that cannot be used stops the start, not a request
    except FhirError as exc:
        raise SettingsError(f"invalid settings:\n  FHIR_CANDIDATE_RULES: {exc.issues[0].diagnostics}") from None
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        log.info("serving", extra={"fields": {"database": database_label(engine), "base_url": settings.base_url}})
        yield
        if audit_log is not None:
            audit_log.close()
        engine.dispose()

    app = FastAPI(title="CareWeave FHIR server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.engine = engine
    audit_log = AuditLog(engine) if settings.audit else None
    app.state.audit = audit_log

    urls = auth_urls(settings.base_url)
    smart = settings.auth_mode == AuthMode.smart
    oauth_uris = tuple((name, urls[name]) for name in ("authorize", "token", "revoke", "introspect"))
    server = Server(engine, settings.base_url, settings.default_page_size, settings.max_page_size,
                    oauth_uris if smart else None, settings.validation.value,
                    ProgramSettings(settings.outreach_attempts, settings.candidate_rules))
    keys = KeyRing(engine)
    revocations = RevocationList(engine)
    authorization = SmartAuthorizationServer(engine, keys, issuer=settings.base_url, token_url=urls["token"],
                                             style_url=urls["style"], revocations=revocations)
    authenticator = BearerAuthenticator(engine, keys, settings.base_url, revocations) if smart else None
    if authenticator is None:
        log.warning("FHIR_AUTH_MODE=open: every request may read and write everything, without a token; "
                    "use it only on a developer's machine")
    routes = auth_routes(authorization, keys, settings.base_url, audit_log) + launch_routes(
        LaunchFlow(authorization, settings.base_url, audit_log), secure_cookie=settings.base_url.startswith("https://"))
    app.add_middleware(FhirFront, routes=[
        *[r for r in routes if r.path.startswith("/fhir/")],  # discovery, ahead of the FHIR catch-all
        *fhir_routes(server, max_body_bytes=settings.max_body_bytes, db_threads=settings.db_threads,
                     authenticator=authenticator, audit_log=audit_log)])
    for route in routes:
        if not route.path.startswith("/fhir/"):
            app.router.routes.append(route)
    app.add_middleware(CorsMiddleware, origins=RegisteredOrigins(engine))
    app.add_middleware(RequestIdMiddleware)  # added last, so outermost: /fhir requests get their ids too

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        """The database answers and its schema is at the newest migration."""
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = is_current(engine)
        except Exception as exc:  # any failure to reach the database means not ready
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        if not current:
            return JSONResponse({"status": "unavailable", "reason": "migrations pending: run fhir-server migrate"},
                                status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(metrics_text(), media_type="text/plain; version=0.0.4")

    return app
