"""Access tokens: JWTs signed by the server's key (RS256), recorded so that they can be revoked.

Claims: `iss` and `aud` are the FHIR base URL, `sub` the client (or, later, the user), `client_id`,
`scope` as granted, `patient` for a patient context, `exp`, `iat` and `jti`. The resource server checks the
signature, the algorithm, `iss`, `aud` (a token minted for another server is refused) and `exp`, then that
the `jti` is one this server issued and has not revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc import jws, jwt
from joserfc.errors import JoseError
from sqlalchemy.engine import Connection

from fhir_server.auth.keys import ALGORITHM, KeyRing
from fhir_server.auth.scopes import ScopeError, access_for, parse_scopes
from fhir_server.store import oauth
from fhir_server.store.access import Access

LEEWAY_SECONDS = 30


class InvalidToken(Exception):
    """The bearer token cannot be used; the message says why (never the token itself)."""


@dataclass(frozen=True)
class Grant:
    """What a verified token carries."""

    client_id: str
    scope: str
    access: Access
    patient: str | None = None


def issue(conn: Connection, keys: KeyRing, *, issuer: str, client_id: str, scope: str, lifetime: timedelta,
          patient: str | None = None, now: datetime | None = None) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    jti = secrets.token_urlsafe(24)
    expires = now + lifetime
    claims = {"iss": issuer, "aud": issuer, "sub": client_id, "client_id": client_id, "scope": scope,
              "iat": _epoch(now), "exp": _epoch(expires), "jti": jti}
    if patient is not None:
        claims["patient"] = patient
    key = keys.signing_key(now)
    token = jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALGORITHM])
    oauth.record_token(conn, jti, client_id, scope, expires)
    return token, int(lifetime.total_seconds())


def verify(conn: Connection, keys: KeyRing, token: str, *, issuer: str, now: datetime | None = None) -> Grant:
    """The grant of a bearer token; InvalidToken if it is not one this server issued for itself, live."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    try:
        kid = jws.extract_compact(token.encode()).headers().get("kid")  # unverified: only picks the key
        decoded = jwt.decode(token, keys.verification_keys(now, kid), algorithms=[ALGORITHM])
        jwt.JWTClaimsRegistry(now=_epoch(now), leeway=LEEWAY_SECONDS, iss={"essential": True, "value": issuer},
                              aud={"essential": True, "value": issuer}, exp={"essential": True},
                              jti={"essential": True}).validate(decoded.claims)
    except (JoseError, ValueError) as exc:
        raise InvalidToken(f"the access token is not valid here ({type(exc).__name__})") from None
    claims = decoded.claims
    if not oauth.token_is_live(conn, claims["jti"]):
        raise InvalidToken("the access token was revoked or not issued here")
    try:
        scopes, _ = parse_scopes(str(claims.get("scope", "")))
    except ScopeError:
        raise InvalidToken("the access token carries a malformed scope") from None
    patient = claims.get("patient")
    return Grant(str(claims.get("client_id")), str(claims.get("scope")), access_for(scopes, patient=patient),
                 patient)


def _epoch(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp())
