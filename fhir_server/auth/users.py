"""Local users of the authorization server: coordinators, physicians and administrators, each linked to
the Practitioner who is their `fhirUser`. Passwords are kept as argon2id hashes only."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine

from fhir_server.auth.scopes import access_for, parse_scopes
from fhir_server.store import oauth
from fhir_server.store.access import Access
from fhir_server.store.db import unit_of_work

ROLES = ("coordinator", "physician", "admin")
_HASHER = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
_PRACTITIONER = re.compile(r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
# Verified against when the username is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password anyone has")


class UserError(ValueError):
    """A user that cannot be added; the message says why."""


def add_user(engine: Engine, *, username: str, password: str, role: str, practitioner: str | None) -> None:
    if not _USERNAME.match(username):
        raise UserError("a username is 1 to 100 letters, digits and . _ @ -")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if practitioner is not None and not _PRACTITIONER.match(practitioner):
        raise UserError("--practitioner takes a reference such as Practitioner/123")
    if len(password) < 12:
        raise UserError("a password needs at least 12 characters")
    with unit_of_work(engine, write=True) as conn:
        if oauth.find_user(conn, username):
            raise UserError(f"user {username} exists already")
        oauth.add_user(conn, {"username": username, "password_hash": _HASHER.hash(password), "role": role,
                              "practitioner": practitioner, "created": datetime.now(UTC).replace(tzinfo=None)})


def authenticate(engine: Engine, username: str, password: str) -> dict | None:
    """The user whose password this is, or None."""
    with unit_of_work(engine, write=False) as conn:
        user = oauth.find_user(conn, username) if _USERNAME.match(username) else None
    try:
        _HASHER.verify(user["password_hash"] if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user


def patients_access(user: dict | None) -> Access:
    """The Patients a user may see, as their `user/` rights reach them (auth/scopes.py): for the patient
    picker, and for an EHR launch's patient."""
    scopes, _ = parse_scopes("user/Patient.rs")
    user = user or {}
    return access_for(scopes, role=user.get("role"),
                      practitioner=(user.get("practitioner") or "").removeprefix("Practitioner/") or None)
