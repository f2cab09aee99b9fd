"""Access tokens: JWTs signed by the server's key (RS256), recorded so that they can be revoked.

Claims: `iss` and `aud` are the FHIR base URL, `sub` the signed-in user (or the client, for backend
services), `client_id`, `scope` as granted, `patient` for a patient context, `exp`, `iat` and `jti`. The
resource server checks the signature, the algorithm, `iss`, `aud` (a token minted for another server is
refused) and `exp`, then that the `jti` is one this server issued and has not revoked.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from joserfc import jwk, jws, jwt
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
    jti: str
    expires: int  # epoch seconds
    patient: str | None = None
    username: str | None = None  # the signed-in user the token was issued to, if any
    practitioner: str | None = None  # theirs, as `Practitioner/x`


def issue(conn: Connection, key: jwk.RSAKey, *, issuer: str, client_id: str, scope: str, lifetime: timedelta,
          patient: str | None = None, now: datetime | None = None, grant_id: str | None = None,
          subject: str | None = None, fhir_user: str | None = None) -> tuple[str, int]:
    """A token signed with `key` (take it from the KeyRing before opening `conn`'s write transaction: on
    SQLite, loading a first key inside one would wait on itself), and its lifetime in seconds."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    jti = secrets.token_urlsafe(24)
    expires = now + lifetime
    # `sub` is the user who granted it (the id_token's subject), or the client for backend services.
    claims = {"iss": issuer, "aud": issuer, "sub": subject or client_id, "client_id": client_id, "scope": scope,
              "iat": epoch(now), "exp": epoch(expires), "jti": jti}
    if patient is not None:
        claims["patient"] = patient
    if fhir_user is not None:
        claims["fhirUser"] = fhir_user
    token = jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALGORITHM])
    oauth.record_token(conn, jti, client_id, scope, expires, grant_id)
    return token, int(lifetime.total_seconds())


def claims_of(keys: KeyRing, token: str, *, issuer: str, now: datetime, check_expiry: bool = True) -> dict:
    """The claims of a token this server signed for itself; InvalidToken otherwise."""
    try:
        kid = jws.extract_compact(token.encode()).headers().get("kid")  # unverified: only picks the key
        decoded = jwt.decode(token, keys.verification_keys(now, kid), algorithms=[ALGORITHM])
        expiry = {"exp": {"essential": True}} if check_expiry else {}
        jwt.JWTClaimsRegistry(now=epoch(now), leeway=LEEWAY_SECONDS, iss={"essential": True, "value": issuer},
                              aud={"essential": True, "value": issuer}, jti={"essential": True},
                              **expiry).validate(decoded.claims)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise InvalidToken(f"the access token is not valid here ({type(exc).__name__})") from None
    return decoded.claims


def verify(conn: Connection, keys: KeyRing, token: str, *, issuer: str, now: datetime | None = None) -> Grant:
    """The grant of a bearer token; InvalidToken if it is not one this server issued for itself, live."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    claims = claims_of(keys, token, issuer=issuer, now=now)
    if not oauth.token_is_live(conn, claims["jti"]):
        raise InvalidToken("the access token was revoked or not issued here")
    try:
        scopes, _ = parse_scopes(str(claims.get("scope", "")))
    except ScopeError:
        raise InvalidToken("the access token carries a malformed scope") from None
    patient, client_id = claims.get("patient"), str(claims.get("client_id"))
    user = None
    if claims.get("sub") != client_id:  # a signed-in user: their role when a worker first verifies the token
        user = oauth.find_user(conn, str(claims.get("sub")))
        if user is None:
            raise InvalidToken("the user this token was issued to is no longer known")
    practitioner = user["practitioner"] if user else None
    access = access_for(scopes, patient=patient, role=user["role"] if user else None,
                        practitioner=(practitioner or "").removeprefix("Practitioner/") or None)
    return Grant(client_id, str(claims.get("scope")), access, claims["jti"], int(claims["exp"]), patient,
                 user["username"] if user else None, practitioner)


def introspect(conn: Connection, keys: KeyRing, token: str, *, issuer: str) -> dict:
    """RFC 7662 §2.2 with SMART's fields (token-introspection.html); an unusable token is only inactive."""
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        claims = claims_of(keys, token, issuer=issuer, now=now)
    except InvalidToken:
        return {"active": False}
    if not oauth.token_is_live(conn, claims["jti"]):
        return {"active": False}
    answer = {"active": True, "token_type": "Bearer"}
    answer.update({k: claims[k] for k in ("scope", "client_id", "sub", "iss", "aud", "exp", "iat", "patient",
                                          "fhirUser") if k in claims})
    return answer


def epoch(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp())
