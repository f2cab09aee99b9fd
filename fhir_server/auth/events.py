"""AuditEvents for sign-ins and the OAuth endpoints (auditevent.html; IHE BALP's user authentication event:
DICOM 110114 "User Authentication", subtype 110122 "Login"; the token, revocation and introspection requests
under our own `oauth-event` codes).

They record who (the user, if one is known; the client), from where, what was asked (the grant type), and
how it ended (the OAuth error code on failure). They never record a password, code, assertion or token: a
successful token response is read only for the client, user and patient its token carries.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import orjson

from fhir_server.store.audit import CANONICAL, Actor, AuditLog, event, event_id, patient_entity

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
LOGIN = {"system": DCM, "code": "110122", "display": "Login"}
OAUTH_EVENTS = f"{CANONICAL}/CodeSystem/oauth-event"
_ENDPOINTS = {"token": "Token request", "revoke": "Token revocation", "introspect": "Token introspection"}


def record_login(log: AuditLog, *, username: str | None, succeeded: bool, client_id: str | None,
                 address: str | None, site: str) -> None:
    """A sign-in on the login page; `username` only if such a user exists (a name that matches no one may
    be a password typed in the wrong field)."""
    actor = Actor(client_id=client_id, username=username, address=address)
    log.record(event(event_id(), _now(), AUTHENTICATION, LOGIN, "E", 200 if succeeded else 401, actor, site, []))


def record_oauth(log: AuditLog, endpoint: str, form: dict, authorization: str | None, status: int,
                 payload: dict, address: str | None, site: str) -> None:
    """A request to /auth/token, /auth/revoke or /auth/introspect and its outcome."""
    claims = _issued_claims(payload.get("access_token")) if endpoint == "token" and status == 200 else {}
    client_id = claims.get("client_id") or form.get("client_id") or _basic_user(authorization)
    username = claims.get("sub") if claims.get("sub") not in (None, client_id) else None
    details = [{"type": "grant_type", "valueString": str(form["grant_type"])[:64]}] if form.get("grant_type") else []
    if status >= 400 and isinstance(payload.get("error"), str):
        details.append({"type": "error", "valueString": payload["error"][:64]})
    entities = [{"type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                          "display": "System Object"}, "detail": details}] if details else []
    if claims.get("patient"):
        entities.insert(0, patient_entity(str(claims["patient"])))
    actor = Actor(client_id=str(client_id)[:64] if client_id else None, username=username, address=address)
    subtype = {"system": OAUTH_EVENTS, "code": endpoint, "display": _ENDPOINTS[endpoint]}
    log.record(event(event_id(), _now(), AUTHENTICATION, subtype, "E", status, actor, site, entities))


def _issued_claims(token: object) -> dict:
    """The claims of an access token this server has just issued (so not verified again)."""
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    body = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _basic_user(authorization: str | None) -> str | None:
    """The client id of `Authorization: Basic` (RFC 6749 §2.3.1), without its secret."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip()).decode().partition(":")[0] or None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
