"""The authorization-code grant as SMART profiles it (app-launch.html, steps 4 and 5).

authlib's grant does the RFC 6749 §4.1 mechanics; SMART's rules are added here:
- PKCE with S256 on every authorization request, from every kind of client (authlib asks it of public
  clients only, and allows `plain`): a missing, blank, wrong or `plain` verifier is refused;
- codes are stored by their SHA-256, live for a minute and are used once; a second use is refused;
- the token response carries the launch context: `patient`, `need_patient_banner`, `smart_style_url`;
- with `offline_access` or `online_access` granted, a refresh token (scopes-and-launch-context.html#
  scopes-for-requesting-a-refresh-token). Refresh tokens rotate on every use; a used one presented again
  revokes its whole family and the access tokens issued from it (the reuse detection of RFC 9700 §4.14).
  A refresh may ask for a subset of the scopes, never more.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge

from fhir_server.auth import oidc, tokens
from fhir_server.auth.oidc import issuer_of
from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

CODE_LIFETIME = timedelta(minutes=1)
APP_TOKEN_LIFETIME = timedelta(hours=1)
# How long a refresh token lasts: offline access outlives the session; "online" access here lasts a
# working day, for want of a session that the user logs out of.
REFRESH_LIFETIME = {"offline_access": timedelta(days=90), "online_access": timedelta(hours=12)}
APP_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


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


def token_response(conn, server, key, *, client_id: str, username: str, scope: str, patient: str | None,
                   grant_id: str | None = None, now: datetime, nonce: str | None = None,
                   with_id_token: bool = True, encounter: str | None = None, banner: bool = True) -> dict:
    """An access token, a refresh token when the scope asks for one (of the family `grant_id`, or of a new
    family), an ID token for `openid`, and the launch context (app-launch.html#step-5-access-token)."""
    scopes = scope.split()
    refresh = next((REFRESH_LIFETIME[s] for s in ("offline_access", "online_access") if s in scopes), None)
    if refresh is not None:
        grant_id = grant_id or secrets.token_urlsafe(16)
    user = oauth.find_user(conn, username)
    fhir_user = f"{server.issuer}/{user['practitioner']}" if user and user["practitioner"] and \
        "fhirUser" in scopes else None
    token, lifetime = tokens.issue(conn, key, issuer=server.issuer, client_id=client_id, scope=scope,
                                   lifetime=APP_TOKEN_LIFETIME, patient=patient, now=now, grant_id=grant_id,
                                   subject=username, fhir_user=fhir_user)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
    if "openid" in scopes and with_id_token:
        body["id_token"] = oidc.id_token(key, issuer=issuer_of(server.issuer), client_id=client_id,
                                         username=username, fhir_user=fhir_user, nonce=nonce, now=now,
                                         epoch=tokens.epoch)
    if refresh is not None:
        refresh_token = secrets.token_urlsafe(48)
        oauth.save_refresh(conn, {"token_hash": code_hash(refresh_token), "grant_id": grant_id,
                                  "client_id": client_id, "username": username, "scope": scope,
                                  "patient": patient, "encounter": encounter, "need_patient_banner": banner,
                                  "expires_at": now + refresh})
        body["refresh_token"] = refresh_token
    if patient:
        body.update(patient=patient, need_patient_banner=banner)
    if encounter:
        body["encounter"] = encounter
    body["smart_style_url"] = server.style_url
    return body


class SmartCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = APP_AUTH_METHODS

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
        now = datetime.now(UTC).replace(tzinfo=None)
        key = self.server.keys.signing_key(now)
        with unit_of_work(self.server.engine, write=True) as conn:
            if not oauth.use_code(conn, code.row["code_hash"]):
                raise InvalidGrantError("the code was used already")
            body = token_response(conn, self.server, key, client_id=code.row["client_id"],
                                  username=code.row["username"], scope=code.row["scope"],
                                  patient=code.row["patient"], now=now, nonce=code.row["nonce"],
                                  encounter=code.row["encounter"], banner=code.row["need_patient_banner"])
        return 200, body, self.TOKEN_RESPONSE_HEADER


@dataclass(frozen=True)
class StoredRefresh:
    """A stored refresh token, as authlib's grant asks of one."""

    row: dict

    def check_client(self, client) -> bool:
        return self.row["client_id"] == client.get_client_id()

    def get_scope(self) -> str:
        return self.row["scope"]


class SmartRefreshGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = APP_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
        now = datetime.now(UTC).replace(tzinfo=None)
        with unit_of_work(self.server.engine, write=True) as conn:
            row = oauth.find_refresh(conn, code_hash(refresh_token))
            if row is None or row["revoked"] or row["expires_at"] <= now:
                return None
            if row["used"]:  # presented twice: whoever holds the family now may be a thief
                revoked = oauth.revoke_grant(conn, row["grant_id"], now)
            else:
                revoked = None
        if revoked is not None:
            self.server.revocations.add(revoked)
            return None
        return StoredRefresh(row)

    def authenticate_user(self, refresh_token: StoredRefresh) -> str:
        return refresh_token.row["username"]

    def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
        """Rotation happens in create_token_response, atomically."""

    def create_token_response(self):
        stored: StoredRefresh = self.request.refresh_token
        scope = self.request.payload.scope or stored.row["scope"]
        # Only a subset, as authlib checked; offline/online access stays if it was granted, so that the
        # new refresh token can be refreshed in turn.
        kept = [s for s in stored.row["scope"].split() if s in scope.split() or s in REFRESH_LIFETIME]
        now = datetime.now(UTC).replace(tzinfo=None)
        key = self.server.keys.signing_key(now)
        with unit_of_work(self.server.engine, write=True) as conn:
            if not oauth.use_refresh(conn, stored.row["token_hash"]):
                revoked = oauth.revoke_grant(conn, stored.row["grant_id"], now)
            else:
                revoked = None
                body = token_response(conn, self.server, key, client_id=stored.row["client_id"],
                                      username=stored.row["username"], scope=" ".join(kept),
                                      patient=stored.row["patient"], grant_id=stored.row["grant_id"], now=now,
                                      with_id_token=False, encounter=stored.row["encounter"],
                                      banner=stored.row["need_patient_banner"])
        if revoked is not None:  # a race with another use of the same token: treated as a reuse
            self.server.revocations.add(revoked)
            raise InvalidGrantError("the refresh token was used already")
        return 200, body, self.TOKEN_RESPONSE_HEADER
