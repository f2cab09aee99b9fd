"""The resource server's side: `Authorization: Bearer …` -> the Access the repository applies
(app-launch.html#access-token; RFC 6750 §2.1, §3)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import UTC, datetime

from sqlalchemy import Engine

from fhir_server.auth import tokens
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.revocation import RevocationList
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.store.access import Access
from fhir_server.store.audit import Actor
from fhir_server.store.db import unit_of_work


class BearerAuthenticator:
    """Verifies bearer tokens. A token's signature, claims and record are checked once and its Access and
    Actor (for the audit log) built once; the result is kept, per worker, until the token expires.
    Revocation is looked up in the worker's RevocationList on every request."""

    CACHE_SIZE = 10_000

    def __init__(self, engine: Engine, keys: KeyRing, issuer: str, revocations: RevocationList) -> None:
        self.engine = engine
        self.keys = keys
        self.issuer = issuer
        self.revocations = revocations
        self._verified: OrderedDict[str, tuple[str, int, Access, Actor]] = OrderedDict()  # by token
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None) -> tuple[Access, Actor]:
        """The grant of the request's bearer token and who holds it; 401 with a WWW-Authenticate challenge
        without a usable one.

        Tokens are taken from the Authorization header only: a token in a query string ends up in logs.
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(None, "an access token is required: send Authorization: Bearer <token>")
        token = token.strip()
        now = datetime.now(UTC).replace(tzinfo=None)
        with self._lock:
            known = self._verified.get(token)
            if known is not None:
                self._verified.move_to_end(token)
        try:
            if known is None or known[1] <= tokens.epoch(now) - tokens.LEEWAY_SECONDS:
                with unit_of_work(self.engine, write=False) as conn:
                    grant = tokens.verify(conn, self.keys, token, issuer=self.issuer, now=now)
                known = self._remember(token, grant)
            if self.revocations.is_revoked(known[0]):
                raise tokens.InvalidToken("the access token was revoked")
            return known[2], known[3]
        except tokens.InvalidToken as exc:
            raise self._unauthorized("invalid_token", str(exc)) from None

    def _remember(self, token: str, grant: tokens.Grant) -> tuple[str, int, Access, Actor]:
        actor = Actor(grant.client_id, grant.username, grant.practitioner, grant.patient)
        known = (grant.jti, grant.expires, grant.access, actor)
        with self._lock:
            self._verified[token] = known
            while len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return known

    def _unauthorized(self, error: str | None, message: str) -> FhirError:
        challenge = f'Bearer realm="{self.issuer}"' + (f', error="{error}"' if error else "")
        return FhirError(401, [Issue("login", message)], headers={"WWW-Authenticate": challenge})
