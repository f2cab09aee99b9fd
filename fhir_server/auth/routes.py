"""The authorization server's HTTP endpoints (a thin Starlette adapter over auth/server.py) and SMART
discovery (conformance.html): `/auth/token`, `/auth/jwks`, `[base]/.well-known/smart-configuration`."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

import anyio.to_thread
from authlib.oauth2.rfc6749 import InsecureTransportError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fhir_server.auth import events, oidc
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.oidc import issuer_of
from fhir_server.auth.ratelimit import RateLimiter
from fhir_server.auth.server import ASSERTION_ALGORITHMS, FormRequest, SmartAuthorizationServer
from fhir_server.store.audit import AuditLog

MAX_FORM_BYTES = 64 * 1024
# The look apps may take on to sit beside CareWeave's own pages (app-launch.html#styling). Its URL must
# change when it does: version it in the path if it ever changes.
SMART_STYLE = {"color_background": "#f6f8fa", "color_error": "#a4161a", "color_highlight": "#0b6e4f",
               "color_modal_backdrop": "", "color_success": "#2b8a3e", "color_text": "#1d2733",
               "dim_border_radius": "4px", "dim_font_size": "16px", "dim_spacing_size": "16px",
               "font_family_body": "system-ui, sans-serif", "font_family_heading": "system-ui, sans-serif"}


def auth_urls(base_url: str) -> dict[str, str]:
    """Absolute endpoint URLs: the authorization server lives beside the FHIR base, under /auth."""
    origin = base_url.rsplit("/fhir", 1)[0] if base_url.endswith("/fhir") else base_url
    urls = {name: f"{origin}/auth/{name}" for name in ("authorize", "token", "jwks", "revoke", "introspect")}
    urls["style"] = f"{origin}/auth/smart-style.json"
    return urls


def smart_configuration(base_url: str) -> dict:
    """`.well-known/smart-configuration` for what is built: the EHR and standalone launches with patient
    scopes, and backend services."""
    urls = auth_urls(base_url)
    return {
        "issuer": issuer_of(base_url),
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "jwks_uri": urls["jwks"],
        "revocation_endpoint": urls["revoke"],
        "introspection_endpoint": urls["introspect"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        # "none": a public client sends only its client_id (and its PKCE verifier).
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt",
                                                  "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "scopes_supported": ["openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
                             "patient/*.cruds", "patient/*.rs", "patient/*.read",
                             "system/*.cruds", "system/*.rs", "system/*.read", "system/*.write"],
        "response_types_supported": ["code"],
        "capabilities": ["launch-ehr", "launch-standalone", "authorize-post", "context-ehr-patient",
                         "context-ehr-encounter", "client-public", "client-confidential-symmetric",
                         "client-confidential-asymmetric", "sso-openid-connect", "context-standalone-patient",
                         "context-banner",
                         "context-style", "permission-offline", "permission-online", "permission-patient",
                         "permission-v1", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }


TOKEN_LIMIT = (120, 60.0)  # token, revocation and introspection requests per address, per minute


def auth_routes(server: SmartAuthorizationServer, keys: KeyRing, base_url: str,
                audit_log: AuditLog | None = None) -> list[Route]:
    configuration = smart_configuration(base_url)
    limiter = RateLimiter(*TOKEN_LIMIT)

    def form_endpoint(handler, name: str):
        """A POST endpoint taking a form-encoded OAuth request (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1);
        each request that reaches the handler is recorded in the audit log (auth/events.py)."""
        async def endpoint(request: Request) -> Response:
            wait = limiter.allow(request.client.host if request.client else "unknown")
            if wait is not None:
                response = _oauth_error(429, "slow_down", "too many requests; retry later")
                response.headers["Retry-After"] = str(int(wait) + 1)
                return response
            if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                return _oauth_error(400, "invalid_request", "the request must be form-encoded")
            body = await request.body()
            if len(body) > MAX_FORM_BYTES:
                return _oauth_error(413, "invalid_request", "the request is too large")
            try:
                form = dict(parse_qsl(body.decode(), keep_blank_values=True))
                oauth_request = FormRequest("POST", str(request.url), request.headers, form)
            except UnicodeDecodeError:
                return _oauth_error(400, "invalid_request", "the request is not UTF-8")
            except InsecureTransportError:
                return _oauth_error(400, "invalid_request", "the authorization server is served over https only")
            status, payload, headers = await anyio.to_thread.run_sync(handler, oauth_request)
            if audit_log is not None:
                events.record_oauth(audit_log, name, form, request.headers.get("authorization"), status, payload,
                                    request.client.host if request.client else None, base_url)
            return JSONResponse(payload, status_code=status, headers=headers)
        return endpoint

    async def jwks(_request: Request) -> Response:
        keys_now = keys.jwks(datetime.now(UTC).replace(tzinfo=None))
        return JSONResponse(keys_now, headers={"Cache-Control": "max-age=300"})

    async def smart(_request: Request) -> Response:
        return JSONResponse(configuration)

    openid = oidc.configuration(issuer_of(base_url), auth_urls(base_url))

    async def openid_configuration(_request: Request) -> Response:
        return JSONResponse(openid)

    async def style(_request: Request) -> Response:
        return JSONResponse(SMART_STYLE, headers={"Cache-Control": "max-age=3600"})

    return [Route("/auth/token", form_endpoint(server.create_token_response, "token"), methods=["POST"]),
            Route("/auth/revoke", form_endpoint(server.revocation_response, "revoke"), methods=["POST"]),
            Route("/auth/introspect", form_endpoint(server.introspection_response, "introspect"), methods=["POST"]),
            Route("/auth/jwks", jwks, methods=["GET"]),
            Route("/auth/smart-style.json", style, methods=["GET"]),
            Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
            Route("/fhir/.well-known/smart-configuration", smart, methods=["GET"])]


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
