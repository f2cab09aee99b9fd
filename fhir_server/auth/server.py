"""The authorization server (authlib's OAuth 2.0 core, SMART's rules on top).

Grants: `client_credentials` for backend services (backend-services.html), authenticated by
`private_key_jwt` client assertions (client-confidential-asymmetric.html); and `authorization_code` for
apps (auth/code.py, auth/launch.py). authlib does the RFC 6749 and RFC 7523 mechanics; this module adds
what SMART asks beyond them:
- assertions signed with RS384 or ES384 only (authlib accepts only its "recommended" algorithms);
- `exp` at most five minutes ahead, and a `jti` seen before refused (stored, so every worker agrees);
- the key chosen by `kid` (and `kty` fitting `alg`) from the JWKS registered by value or by URL, and a
  `jku` header accepted only when it equals the registered JWKS URL;
- scopes granted only within what the client was registered for, by SMART's scope algebra, not by string.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwk, jws, jwt
from joserfc.errors import JoseError
from sqlalchemy import Engine

from fhir_server.auth import tokens
from fhir_server.auth.code import S256Only, SmartCodeGrant, SmartRefreshGrant, code_hash
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.revocation import RevocationList
from fhir_server.auth.scopes import ResourceScope, ScopeError, parse_scope, parse_scopes
from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = 300  # seconds (backend-services.html: exp no more than five minutes ahead)
BACKEND_TOKEN_LIFETIME = timedelta(minutes=5)
_KTY_OF_ALG = {"RS384": "RSA", "ES384": "EC"}
# How each kind of client authenticates at the token endpoint (app-launch.html#step-5-access-token).
_AUTH_METHODS = {"public": ("none",), "confidential-symmetric": ("client_secret_basic", "client_secret_post"),
                 "confidential-asymmetric": ("private_key_jwt",), "backend": ("private_key_jwt",)}
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REVOCATION_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


@dataclass
class Client(ClientMixin):
    """A registered client, as authlib sees it."""

    row: dict

    def get_client_id(self) -> str:
        return self.row["client_id"]

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row["redirect_uris"] or []
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        return granted_scope(scope, self.row["scope"])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.row["redirect_uris"] or [])  # exact match only

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.row["secret_hash"]:
            return False
        try:
            return PasswordHasher().verify(self.row["secret_hash"], client_secret)
        except (VerificationError, InvalidHashError):
            return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in _AUTH_METHODS[self.row["client_type"]]

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.row["client_type"] != "backend"

    def check_grant_type(self, grant_type: str) -> bool:
        if self.row["client_type"] == "backend":
            return grant_type == "client_credentials"
        return grant_type in ("authorization_code", "refresh_token")


def granted_scope(requested: str, registered: str) -> str:
    """The requested scopes that the registered ones cover (scopes-and-launch-context.html): a scope is
    covered by one of the same context whose type is the same or `*`, whose letters include its letters,
    and which has no query or the same query."""
    allowed, _ = parse_scopes(registered)
    granted = []
    for text in requested.split():
        try:
            scope = parse_scope(text)
        except ScopeError:
            continue
        if scope is not None and any(_covers(a, scope) for a in allowed):
            granted.append(text)
    return " ".join(dict.fromkeys(granted))


def _covers(allowed: ResourceScope, scope: ResourceScope) -> bool:
    return (allowed.context == scope.context and allowed.resource_type in ("*", scope.resource_type)
            and set(scope.interactions) <= set(allowed.interactions)
            and (not allowed.criteria or allowed.criteria == scope.criteria))


class FormRequest(OAuth2Request):
    """An OAuth request whose parameters came from a form-encoded body (RFC 6749 §4.4.2) or, at the
    authorization endpoint, the query. `headers` must look names up case-insensitively (Starlette's do):
    authlib asks for `Authorization`, HTTP/2 sends `authorization`."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str], form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class _JwksCache:
    """JWK Sets fetched from clients' registered URLs, kept as long as their Cache-Control allows (at most
    an hour, at least not at all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, dict]] = {}

    def get(self, url: str) -> dict:
        with self._lock:
            entry = self._entries.get(url)
            if entry and entry[0] > time.monotonic():
                return entry[1]
        try:
            response = httpx.get(url, timeout=5.0, follow_redirects=False)
            response.raise_for_status()
            keys = response.json()
        except (httpx.HTTPError, ValueError):
            raise InvalidClientError(description="the client's JWKS URL could not be read") from None
        if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
            raise InvalidClientError(description="the client's JWKS URL does not hold a JWK Set")
        with self._lock:
            self._entries[url] = (time.monotonic() + _max_age(response.headers.get("cache-control", "")), keys)
        return keys


def _max_age(cache_control: str) -> float:
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() in ("no-store", "no-cache"):
            return 0.0
        if name.lower() == "max-age" and value.isdigit():
            return min(float(value), 3600.0)
    return 0.0


class SmartClientAssertion(JWTBearerClientAssertion):
    """`private_key_jwt` client authentication with SMART's rules (see the module docstring)."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, engine: Engine, token_url: str, jwks_cache: _JwksCache) -> None:
        super().__init__(leeway=30)
        self.engine = engine
        self.token_url_value = token_url
        self.jwks_cache = jwks_cache

    def get_audiences(self) -> list[str]:
        return [self.token_url_value]

    def __call__(self, query_client, request):
        form = request.form
        if form.get("client_assertion_type") != self.CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
            return None
        headers, claims = self.extract_assertion(form["client_assertion"])
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id:
            raise InvalidClientError(description="the assertion's iss and sub must both be the client_id")
        if form.get("client_id") not in (None, client_id):
            raise InvalidClientError(description="client_id does not match the assertion's issuer")
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="unknown client")
        key = self._key(client, headers)
        request.client = client
        self.process_assertion_claims(form["client_assertion"], key)
        return self.authenticate_client(client)

    def _key(self, client: Client, headers: dict) -> jwk.Key:
        alg, kid = headers.get("alg"), headers.get("kid")
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(description=f"assertions must be signed with {' or '.join(ASSERTION_ALGORITHMS)}")
        if headers.get("typ") not in (None, "JWT"):
            raise InvalidClientError(description="the assertion's typ must be JWT")
        if not kid:
            raise InvalidClientError(description="the assertion has no kid")
        registered_url = client.row["jwks_url"]
        if "jku" in headers and headers["jku"] != registered_url:
            raise InvalidClientError(description="jku is not the client's registered JWKS URL")
        key_set = client.row["jwks"] if client.row["jwks"] else (
            self.jwks_cache.get(registered_url) if registered_url else {"keys": []})
        candidates = [k for k in key_set.get("keys", [])
                      if isinstance(k, dict) and k.get("kid") == kid and k.get("kty") == _KTY_OF_ALG[alg]]
        if len(candidates) != 1:
            raise InvalidClientError(description="no single registered key matches the assertion's kid")
        try:
            return jwk.import_key(candidates[0])
        except (JoseError, ValueError, TypeError):
            raise InvalidClientError(description="the registered key cannot be used") from None

    def process_assertion_claims(self, assertion, key):
        try:
            token = jwt.decode(assertion, key, algorithms=list(ASSERTION_ALGORITHMS))
        except (JoseError, ValueError):
            raise InvalidClientError(description="the assertion's signature does not verify") from None
        self.verify_claims(token.claims)
        exp = token.claims.get("exp")
        if not isinstance(exp, int) or exp - time.time() > MAX_ASSERTION_LIFETIME + self.leeway:
            raise InvalidClientError(description="the assertion must expire within five minutes")
        return token.claims

    def validate_jti(self, claims, jti) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            return False
        now = datetime.now(UTC).replace(tzinfo=None)
        expires = datetime.fromtimestamp(claims["exp"], UTC).replace(tzinfo=None) + timedelta(seconds=self.leeway)
        with unit_of_work(self.engine, write=True) as conn:
            return oauth.first_use_of_assertion(conn, claims["iss"], jti, expires, now)

    def extract_assertion(self, assertion: str):
        try:
            obj = jws.extract_compact(assertion.encode())
            claims = json.loads(obj.payload)
        except (JoseError, ValueError, UnicodeError):
            raise InvalidClientError(description="the assertion is not a JWT") from None
        if not isinstance(claims, dict):
            raise InvalidClientError(description="the assertion is not a JWT")
        return obj.headers(), claims


class BackendServicesGrant(ClientCredentialsGrant):
    """client_credentials for backend services: a `private_key_jwt` client and `system/` scopes only."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["private_key_jwt"]

    def validate_requested_scope(self):
        requested = self.request.payload.scope
        if not requested:
            raise InvalidRequestError(description="scope is required")
        try:
            scopes, _ = parse_scopes(requested)
        except ScopeError as exc:
            raise InvalidScopeError(description=str(exc)) from None
        if any(s.context != "system" for s in scopes):
            raise InvalidScopeError(description="backend services are granted system/ scopes only")
        if not self.request.client.get_allowed_scope(requested):
            raise InvalidScopeError(description="none of the requested scopes is registered for this client")


class SmartAuthorizationServer(AuthorizationServer):
    """authlib's server bound to our database, keys and URLs."""

    def __init__(self, engine: Engine, keys: KeyRing, *, issuer: str, token_url: str, style_url: str,
                 revocations: RevocationList) -> None:
        super().__init__()
        self.engine = engine
        self.keys = keys
        self.revocations = revocations
        self.issuer = issuer
        self.style_url = style_url
        self.register_client_auth_method("private_key_jwt", SmartClientAssertion(engine, token_url, _JwksCache()))
        self.register_grant(BackendServicesGrant)
        self.register_grant(SmartCodeGrant, [S256Only(required=True)])
        self.register_grant(SmartRefreshGrant)
        self.register_token_generator("client_credentials", self._backend_token)

    def query_client(self, client_id: str) -> Client | None:
        with unit_of_work(self.engine, write=False) as conn:
            row = oauth.find_client(conn, client_id)
        return Client(row) if row else None

    def save_token(self, token, request) -> None:
        """Tokens are recorded when they are signed (auth/tokens.py)."""

    def _backend_token(self, grant_type, client, user=None, scope=None, expires_in=None,
                       include_refresh_token=False) -> dict:
        granted = client.get_allowed_scope(scope or "")
        key = self.keys.signing_key(datetime.now(UTC).replace(tzinfo=None))
        with unit_of_work(self.engine, write=True) as conn:
            token, lifetime = tokens.issue(conn, key, issuer=self.issuer, client_id=client.get_client_id(),
                                           scope=granted, lifetime=BACKEND_TOKEN_LIFETIME)
        return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": granted}

    def revocation_response(self, request: FormRequest) -> tuple[int, dict, dict]:
        """RFC 7009: the token's own client, authenticated, revokes it; 200 whether or not it was known. A
        refresh token takes its family and their access tokens with it."""
        try:
            client = self.authenticate_client(request, REVOCATION_AUTH_METHODS, endpoint="revocation")
            if not request.form.get("token"):
                raise InvalidRequestError(description="token is required")
        except OAuth2Error as error:
            return self.handle_error_response(request, error)
        try:  # an unknown, foreign or expired-and-gone token is ignored: the answer is the same
            claims = tokens.claims_of(self.keys, request.form["token"], issuer=self.issuer,
                                      now=datetime.now(UTC).replace(tzinfo=None), check_expiry=False)
        except tokens.InvalidToken:
            claims = None
        now = datetime.now(UTC).replace(tzinfo=None)
        revoked: list[str] = []
        with unit_of_work(self.engine, write=True) as conn:
            if claims is not None and claims.get("client_id") == client.get_client_id():
                oauth.revoke_token(conn, claims["jti"], now)
                revoked.append(claims["jti"])
            elif claims is None:
                refresh = oauth.find_refresh(conn, code_hash(request.form["token"]))
                if refresh is not None and refresh["client_id"] == client.get_client_id():
                    revoked = oauth.revoke_grant(conn, refresh["grant_id"], now)
        self.revocations.add(revoked)
        return 200, {}, dict(NO_STORE)

    def introspection_response(self, request: FormRequest) -> tuple[int, dict, dict]:
        """RFC 7662 with SMART's fields. The caller shows a live access token of ours as a bearer token
        (token-introspection.html allows this form of access control), so that tokens cannot be probed
        anonymously."""
        scheme, _, caller = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": f'Bearer realm="{self.issuer}"', **NO_STORE}
        if scheme.lower() != "bearer" or not caller.strip():
            return 401, {"error": "invalid_token", "error_description": "introspection needs a bearer token"}, \
                challenge
        with unit_of_work(self.engine, write=False) as conn:
            try:
                tokens.verify(conn, self.keys, caller.strip(), issuer=self.issuer)
            except tokens.InvalidToken:
                return 401, {"error": "invalid_token", "error_description": "the bearer token is not valid"}, \
                    challenge
            if not request.form.get("token"):
                return 400, {"error": "invalid_request", "error_description": "token is required"}, dict(NO_STORE)
            return 200, tokens.introspect(conn, self.keys, request.form["token"], issuer=self.issuer), \
                dict(NO_STORE)

    def create_oauth2_request(self, request) -> FormRequest:
        return request

    def handle_response(self, status, body, headers):
        return status, body, dict(headers)

    def send_signal(self, name, *args, **kwargs) -> None:
        """authlib's signals (after_authenticate_client, token_revoked…): none is listened to."""
