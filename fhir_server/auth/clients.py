"""Client registration (app-launch.html#register-app-with-ehr, and client-confidential-asymmetric.html on
registering public keys).

Clients are registered by an operator (`fhir-server clients add`), not dynamically. A client has a type,
the scopes it may ever be granted, its exact redirect URIs, and, when it signs assertions, its public
keys as a JWK Set value or a JWKS URL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from authlib.common.urls import add_params_to_uri
from sqlalchemy import Engine

from fhir_server.auth.scopes import ScopeError, parse_scopes
from fhir_server.auth.users import patients_access
from fhir_server.fhir.errors import FhirError
from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work
from fhir_server.store.repository import open_repository

CLIENT_TYPES = ("public", "confidential-symmetric", "confidential-asymmetric", "backend")
LAUNCH_LIFETIME = timedelta(minutes=5)
_PUBLIC_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y")}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


class RegistrationError(ValueError):
    """A registration that cannot be accepted; the message says what to fix."""


def check_jwks(jwks: object) -> dict:
    """A JWK Set of public signing keys, each with `kty` and a `kid` unique in the set."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise RegistrationError('a JWK Set is an object with a non-empty "keys" array')
    kids = set()
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in _PUBLIC_MEMBERS:
            raise RegistrationError("every key needs kty RSA or EC")
        if not isinstance(key.get("kid"), str) or not key["kid"] or key["kid"] in kids:
            raise RegistrationError("every key needs a kid, unique in the set")
        kids.add(key["kid"])
        missing = [m for m in _PUBLIC_MEMBERS[key["kty"]] if m not in key]
        if missing:
            raise RegistrationError(f"key {key['kid']} lacks {', '.join(missing)}")
        if any(m in key for m in _PRIVATE_MEMBERS):
            raise RegistrationError(f"key {key['kid']} holds private key material: register public keys only")
    return jwks


@dataclass(frozen=True)
class Registration:
    client_id: str
    secret: str | None = None  # a confidential-symmetric client's secret, shown once and stored hashed


def register(engine: Engine, *, client_type: str, name: str, scope: str, redirect_uris: list[str] | None = None,
             jwks: dict | None = None, jwks_url: str | None = None, launch_uri: str | None = None
             ) -> Registration:
    """Store a client; its client_id (and secret, for a symmetric client)."""
    if client_type not in CLIENT_TYPES:
        raise RegistrationError(f"client type must be one of {', '.join(CLIENT_TYPES)}")
    try:
        scopes, _ = parse_scopes(scope)
    except ScopeError as exc:
        raise RegistrationError(str(exc)) from None
    if not scopes:
        raise RegistrationError("register at least one resource scope, such as system/*.rs")
    if client_type == "backend":
        if any(s.context != "system" for s in scopes):
            raise RegistrationError("a backend client is registered for system/ scopes only")
        if redirect_uris:
            raise RegistrationError("a backend client has no redirect URIs")
    elif not redirect_uris:
        raise RegistrationError("an app needs at least one redirect URI")
    signs = client_type in ("backend", "confidential-asymmetric")
    if signs and (jwks is None) == (jwks_url is None):
        raise RegistrationError("give the client's public keys as a JWK Set or a JWKS URL (one of them)")
    if not signs and (jwks is not None or jwks_url is not None):
        raise RegistrationError(f"a {client_type} client does not sign assertions: it has no keys")
    if jwks_url is not None and not jwks_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise RegistrationError("a JWKS URL must be https (or on this machine, for testing)")
    if any(not _exact_uri(uri) for uri in redirect_uris or []):
        raise RegistrationError("a redirect URI is an absolute https URL (http only on this machine), "
                                "without a fragment")
    if launch_uri is not None and (client_type == "backend" or not _exact_uri(launch_uri)):
        raise RegistrationError("a launch URI is an app's absolute https URL (http only on this machine)")
    client_id = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(32) if client_type == "confidential-symmetric" else None
    with unit_of_work(engine, write=True) as conn:
        oauth.add_client(conn, {
            "client_id": client_id, "client_type": client_type, "name": name, "scope": scope,
            "redirect_uris": list(redirect_uris or []), "jwks": check_jwks(jwks) if jwks is not None else None,
            "jwks_url": jwks_url, "secret_hash": PasswordHasher().hash(secret) if secret else None,
            "launch_uri": launch_uri, "created": datetime.now(UTC).replace(tzinfo=None)})
    return Registration(client_id, secret)


def new_launch(engine: Engine, *, client_id: str, username: str, patient: str, encounter: str | None,
               iss: str) -> str:
    """An EHR launch of a registered app for a user and patient (app-launch.html#launch-app-ehr-launch):
    the URL that opens the app, with `iss` and a single-use `launch` that lives five minutes. The patient
    must be one the user may see, as in the EHR the launch stands in for."""
    with unit_of_work(engine, write=False) as conn:
        user = oauth.find_user(conn, username)
    if user is None:
        raise RegistrationError(f"no user {username}")
    patient_id = patient.removeprefix("Patient/")
    try:
        with open_repository(engine, write=False, access=patients_access(user)) as repo:
            repo.read("Patient", patient_id)
    except FhirError:
        raise RegistrationError(f"{username} may not see Patient/{patient_id}, or it does not exist") from None
    with unit_of_work(engine, write=True) as conn:
        client = oauth.find_client(conn, client_id)
        if client is None or not client["launch_uri"]:
            raise RegistrationError("no app with this client_id has a launch URI (clients add --launch-uri)")
        launch = secrets.token_urlsafe(24)
        oauth.save_launch(conn, {"id": launch, "client_id": client_id, "username": username,
                                 "patient": patient_id,
                                 "encounter": encounter.removeprefix("Encounter/") if encounter else None,
                                 "expires_at": datetime.now(UTC).replace(tzinfo=None) + LAUNCH_LIFETIME})
    return add_params_to_uri(client["launch_uri"], [("iss", iss), ("launch", launch)])


def _exact_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    local = parts.hostname in ("127.0.0.1", "localhost")
    return (parts.scheme == "https" or (parts.scheme == "http" and local)) and bool(parts.netloc) \
        and not parts.fragment
