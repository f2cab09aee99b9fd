"""The resource server's side: `Authorization: Bearer …` -> the Access the repository applies
(app-launch.html#access-token; RFC 6750 §2.1, §3)."""

from __future__ import annotations

from sqlalchemy import Engine

from fhir_server.auth import tokens
from fhir_server.auth.keys import KeyRing
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.store.access import Access
from fhir_server.store.db import unit_of_work


class BearerAuthenticator:
    def __init__(self, engine: Engine, keys: KeyRing, issuer: str) -> None:
        self.engine = engine
        self.keys = keys
        self.issuer = issuer

    def access(self, authorization: str | None) -> Access:
        """The grant of the request's bearer token; 401 with a WWW-Authenticate challenge without a usable one.

        Tokens are taken from the Authorization header only: a token in a query string ends up in logs.
        """
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(None, "an access token is required: send Authorization: Bearer <token>")
        try:
            with unit_of_work(self.engine, write=False) as conn:
                return tokens.verify(conn, self.keys, token.strip(), issuer=self.issuer).access
        except tokens.InvalidToken as exc:
            raise self._unauthorized("invalid_token", str(exc)) from None

    def _unauthorized(self, error: str | None, message: str) -> FhirError:
        challenge = f'Bearer realm="{self.issuer}"' + (f', error="{error}"' if error else "")
        return FhirError(401, [Issue("login", message)], headers={"WWW-Authenticate": challenge})
