"""OpenID Connect for the SMART app launch (scopes-and-launch-context.html#scopes-for-requesting-identity-data):
with `openid fhirUser` granted, the token response carries an ID token (RS256, OIDC Core §2) whose
`fhirUser` is the absolute URL of the user's Practitioner; the provider's configuration is served at
`{issuer}/.well-known/openid-configuration` (OIDC Discovery §4).

The OIDC issuer is the server's origin (its FHIR base minus `/fhir`), so the configuration lives at the root.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from joserfc import jwk, jwt

from fhir_server.auth.keys import ALGORITHM

ID_TOKEN_LIFETIME = timedelta(hours=1)


def issuer_of(base_url: str) -> str:
    return base_url.rsplit("/fhir", 1)[0] if base_url.endswith("/fhir") else base_url


def id_token(key: jwk.RSAKey, *, issuer: str, client_id: str, username: str, fhir_user: str | None,
             nonce: str | None, now: datetime, epoch) -> str:
    claims = {"iss": issuer, "sub": username, "aud": client_id, "iat": epoch(now),
              "exp": epoch(now + ID_TOKEN_LIFETIME)}
    if fhir_user:
        claims["fhirUser"] = fhir_user
    if nonce:
        claims["nonce"] = nonce
    return jwt.encode({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[ALGORITHM])


def configuration(issuer: str, urls: dict[str, str]) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "jwks_uri": urls["jwks"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
    }
