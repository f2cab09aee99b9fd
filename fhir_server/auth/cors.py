"""CORS for browser apps (app-launch.html#considerations-for-cross-origin-resource-sharing-cors-support).

- Discovery (`.well-known/*`, `/fhir/metadata`, the JWKS and the style): any origin, as SMART asks.
- The token, revocation and introspection endpoints and the FHIR API: only the origins of registered apps'
  redirect URIs. The answer names the origin (never `*`), and preflight requests are answered here. A
  request from any other origin gets no CORS headers, so the browser keeps the response from the page.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

PUBLIC_PATHS = ("/fhir/metadata", "/fhir/.well-known/", "/.well-known/", "/auth/jwks", "/auth/smart-style.json")
GUARDED_PATHS = ("/fhir", "/auth/token", "/auth/revoke", "/auth/introspect")
ALLOW_HEADERS = "Authorization, Content-Type, Accept, Prefer, If-Match, If-None-Match, If-None-Exist, " \
                "If-Modified-Since, X-Request-Id"
EXPOSE_HEADERS = "Location, Content-Location, ETag, Last-Modified, X-Request-Id"
_RELOAD_SECONDS = 30.0


class RegisteredOrigins:
    """The origins of every registered redirect URI, reloaded every 30 s (so a new app works within that)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")

    def __contains__(self, origin: str) -> bool:
        with self._lock:
            if time.monotonic() - self._loaded_at > _RELOAD_SECONDS:
                with unit_of_work(self.engine, write=False) as conn:
                    self._origins = oauth.registered_origins(conn)
                self._loaded_at = time.monotonic()
            return origin in self._origins


class CorsMiddleware:
    def __init__(self, app: ASGIApp, origins: RegisteredOrigins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = Headers(scope=scope).get("origin")
        path = scope.get("path", "")
        allowed = None
        if origin is not None:
            if path.startswith(PUBLIC_PATHS):
                allowed = "*"
            elif path.startswith(GUARDED_PATHS) and origin in self.origins:
                allowed = origin
        if allowed is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"access-control-allow-origin", allowed.encode()), (b"vary", b"Origin"),
                   (b"access-control-expose-headers", EXPOSE_HEADERS.encode())]
        if scope["method"] == "OPTIONS" and Headers(scope=scope).get("access-control-request-method"):
            await send({"type": "http.response.start", "status": 204, "headers": headers + [
                (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, PATCH, DELETE"),
                (b"access-control-allow-headers", ALLOW_HEADERS.encode()),
                (b"access-control-max-age", b"600")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message) -> None:
            if message["type"] == "http.response.start":
                existing = [(k, v) for k, v in message.get("headers", [])
                            if k.lower() not in (b"access-control-allow-origin", b"vary")]
                message = {**message, "headers": existing + headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)
