"""A bearer token for the read benchmark in FHIR_AUTH_MODE=smart: a backend client registered on the
benchmark database with a fresh RS384 key, and one client_credentials grant (backend-services.html)."""

from __future__ import annotations

import time
import uuid

import httpx
from joserfc import jwk, jwt

from fhir_server.auth.clients import register
from fhir_server.store.db import make_engine

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def backend_token(database_url: str, origin: str, scope: str = "system/Patient.rs") -> str:
    key = jwk.RSAKey.generate_key(2048, parameters={"kid": "bench", "alg": "RS384"}, private=True)
    engine = make_engine(database_url)
    try:
        client_id = register(engine, client_type="backend", name="benchmark", scope=scope,
                             jwks={"keys": [key.as_dict(private=False)]}).client_id
    finally:
        engine.dispose()
    token_url = f"{origin}/auth/token"
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS384", "kid": "bench", "typ": "JWT"},
                           {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240,
                            "jti": uuid.uuid4().hex}, key, algorithms=["RS384"])
    response = httpx.post(token_url, data={"grant_type": "client_credentials", "scope": scope,
                                           "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
                          timeout=30.0)
    response.raise_for_status()
    return response.json()["access_token"]
