"""The authorization-code grant as SMART profiles it (app-launch.html, steps 4 and 5).

authlib's grant does the RFC 6749 §4.1 mechanics; SMART's rules are added here:
- PKCE with S256 on every authorization request, from every kind of client (authlib asks it of public
  clients only, and allows `plain`): a missing, blank, wrong or `plain` verifier is refused;
- codes are stored by their SHA-256, live for a minute and are used once; a second use is refused;
- the token response carries the launch context: `patient`, `need_patient_banner`, `smart_style_url`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge

from fhir_server.auth import tokens
from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

CODE_LIFETIME = timedelta(minutes=1)
APP_TOKEN_LIFETIME = timedelta(hours=1)


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


@dataclass(frozen=True)
class AuthorizationCode:
    """A stored code, as authlib's grant asks of one."""

    row: dict

    def get_redirect_uri(self) -> str:
        return self.row["redirect_uri"]

    def get_scope(self) -> str:
        return self.row["scope"]


class S256Only(CodeChallenge):
    """PKCE (RFC 7636) as SMART requires it: S256, always (app-launch.html#considerations-for-pkce-support)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256",
                                      redirect_uri=redirect_uri, state=grant.request.payload.state)
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("code_verifier is required")
        super().validate_code_verifier(grant, result)

    def get_authorization_code_challenge(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.row["code_challenge"]

    def get_authorization_code_challenge_method(self, authorization_code: AuthorizationCode) -> str:
        return "S256"


class SmartCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]

    def query_authorization_code(self, code: str, client) -> AuthorizationCode | None:
        now = datetime.now(UTC).replace(tzinfo=None)
        with unit_of_work(self.server.engine, write=False) as conn:
            row = oauth.find_code(conn, code_hash(code))
        if row is None or row["used"] or row["expires_at"] <= now or row["client_id"] != client.get_client_id():
            return None
        return AuthorizationCode(row)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> str:
        return authorization_code.row["username"]

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Codes are marked used in create_token_response, atomically."""

    def create_token_response(self):
        """The token, once per code: of two requests racing with one code, only one gets a token."""
        code: AuthorizationCode = self.request.authorization_code
        key = self.server.keys.signing_key(datetime.now(UTC).replace(tzinfo=None))
        with unit_of_work(self.server.engine, write=True) as conn:
            if not oauth.use_code(conn, code.row["code_hash"]):
                raise InvalidGrantError("the code was used already")
            token, lifetime = tokens.issue(conn, key, issuer=self.server.issuer, client_id=code.row["client_id"],
                                           scope=code.row["scope"], lifetime=APP_TOKEN_LIFETIME,
                                           patient=code.row["patient"])
        body = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": code.row["scope"]}
        if code.row["patient"]:
            body.update(patient=code.row["patient"], need_patient_banner=True)
        body["smart_style_url"] = self.server.style_url
        return 200, body, self.TOKEN_RESPONSE_HEADER
