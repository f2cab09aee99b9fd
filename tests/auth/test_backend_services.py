"""SMART Backend Services (backend-services.html) over HTTP, in FHIR_AUTH_MODE=smart, on SQLite and PostgreSQL:
the checks of the SMART App Launch and (g)(10) test kits' backend-services groups, as our own tests."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import BASE_URL
from fastapi.testclient import TestClient
from joserfc import jwk, jwt
from typer.testing import CliRunner

from fhir_server.app import create_app
from fhir_server.auth import tokens
from fhir_server.auth.clients import register
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.revocation import POLL_SECONDS
from fhir_server.cli import app as cli
from fhir_server.config import AuthMode
from fhir_server.store.db import unit_of_work

TOKEN_URL = "http://testserver/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_key() -> jwk.RSAKey:
    return jwk.RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "alg": "RS384"}, private=True)


@pytest.fixture(scope="module")
def ec_key() -> jwk.ECKey:
    return jwk.ECKey.generate_key("P-384", parameters={"kid": "ec-1", "alg": "ES384"}, private=True)


@pytest.fixture
def backend(engine, smart, rsa_key, ec_key) -> str:
    jwks = {"keys": [rsa_key.as_dict(private=False), ec_key.as_dict(private=False)]}
    return register(engine, client_type="backend", name="plan data warehouse",
                    scope="system/Patient.rs system/Observation.rs", jwks=jwks).client_id


def assertion(client_id: str, key, alg: str = "RS384", **changes) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 240, "iat": now,
              "jti": uuid.uuid4().hex}
    header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
    header.update(changes.pop("header", {}))
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(header, claims, key, algorithms=[alg])


def token_request(http, client_assertion: str, scope: str = "system/Patient.rs", **form) -> object:
    data = {"grant_type": "client_credentials", "scope": scope, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion, **form}
    return http.post("/auth/token", data=data)


def test_discovery_advertises_backend_services(smart):
    response = smart.get("/fhir/.well-known/smart-configuration", headers={"Origin": "https://any.example"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert response.headers["access-control-allow-origin"] == "*"
    config = response.json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["revocation_endpoint"] == "http://testserver/auth/revoke"
    assert config["introspection_endpoint"] == "http://testserver/auth/introspect"
    assert "client_credentials" in config["grant_types_supported"]
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"RS384", "ES384"} <= set(config["token_endpoint_auth_signing_alg_values_supported"])
    keys = smart.get("/auth/jwks").json()["keys"]
    assert keys and all("kid" in k and "d" not in k for k in keys)


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_token_then_scoped_reads(smart, backend, rsa_key, ec_key, alg):
    key = rsa_key if alg == "RS384" else ec_key
    response = token_request(smart, assertion(backend, key, alg), scope="system/Patient.rs system/Condition.rs")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"].lower() == "bearer" and 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs"  # Condition is not registered for this client
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart.get("/fhir/Patient", headers=auth).status_code == 200
    assert smart.get("/fhir/Condition", headers=auth).status_code == 403
    created = smart.post("/fhir/Patient", json={"resourceType": "Patient"},
                              headers={**auth, "Content-Type": "application/fhir+json"})
    assert created.status_code == 403  # .rs grants no create


def test_requests_without_a_usable_token_get_401(smart, backend, rsa_key):
    assert smart.get("/fhir/metadata").status_code == 200  # the CapabilityStatement is public
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"},
                    {"Authorization": "Bearer not-a-jwt"}):
        response = smart.get("/fhir/Patient", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["resourceType"] == "OperationOutcome"
    token = token_request(smart, assertion(backend, rsa_key)).json()["access_token"]
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert smart.get("/fhir/Patient", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401


def test_a_token_for_another_server_is_refused(smart, backend, rsa_key, engine):
    key = KeyRing(engine).signing_key(datetime.now(UTC).replace(tzinfo=None))
    with unit_of_work(engine, write=True) as conn:
        foreign, _ = tokens.issue(conn, key, issuer="https://other.example/fhir", client_id=backend,
                                  scope="system/Patient.rs", lifetime=timedelta(minutes=5))
    assert smart.get("/fhir/Patient", headers={"Authorization": f"Bearer {foreign}"}).status_code == 401


@pytest.mark.parametrize("case", [
    "grant_type", "assertion_type", "replayed_jti", "expired", "too_long", "wrong_aud", "iss_not_sub",
    "unknown_kid", "rs256", "wrong_key", "unknown_client", "jku_not_registered", "no_scope", "user_scope",
    "unregistered_scope",
])
def test_bad_token_requests_are_refused(smart, backend, rsa_key, ec_key, case):
    now = int(time.time())
    good = assertion(backend, rsa_key)
    if case == "grant_type":
        response = token_request(smart, good, grant_type="password")
        assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"
        return
    if case == "assertion_type":
        response = token_request(smart, good, client_assertion_type="urn:example:bad")
        assert response.status_code in (400, 401)
        return
    if case == "replayed_jti":
        assert token_request(smart, good).status_code == 200
        response = token_request(smart, good)
    elif case in ("no_scope", "user_scope", "unregistered_scope"):
        scope = {"no_scope": "", "user_scope": "user/Patient.rs", "unregistered_scope": "system/Encounter.rs"}[case]
        response = token_request(smart, good, scope=scope)
        assert response.status_code == 400 and response.json()["error"] in ("invalid_scope", "invalid_request")
        return
    else:
        bad = {
            "expired": lambda: assertion(backend, rsa_key, exp=now - 120, iat=now - 400),
            "too_long": lambda: assertion(backend, rsa_key, exp=now + 3600),
            "wrong_aud": lambda: assertion(backend, rsa_key, aud="https://elsewhere.example/token"),
            "iss_not_sub": lambda: assertion(backend, rsa_key, sub="someone-else"),
            "unknown_kid": lambda: assertion(backend, rsa_key, header={"kid": "nope"}),
            "rs256": lambda: assertion(backend, jwk.import_key(
                {k: v for k, v in rsa_key.as_dict(private=True).items() if k != "alg"}), alg="RS256"),
            "wrong_key": lambda: assertion(backend, jwk.RSAKey.generate_key(
                2048, parameters={"kid": "rsa-1"}, private=True)),
            "unknown_client": lambda: assertion("no-such-client", rsa_key),
            "jku_not_registered": lambda: assertion(backend, rsa_key,
                                                    header={"jku": "https://attacker.example/jwks"}),
        }[case]()
        response = token_request(smart, bad)
    assert response.status_code in (400, 401), response.text
    assert response.json()["error"] == "invalid_client"
    assert "access_token" not in response.json()


def test_cli_registers_a_backend_client_from_a_jwks_file(settings, smart, tmp_path, rsa_key, monkeypatch):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.as_dict(private=False)]}))
    monkeypatch.setenv("FHIR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FHIR_BASE_URL", BASE_URL)
    runner = CliRunner()
    done = runner.invoke(cli, ["clients", "add", "--type", "backend", "--scope", "system/Patient.rs",
                               "--jwks-file", str(path)])
    assert done.exit_code == 0, done.output
    client_id = done.stdout.strip().splitlines()[-1]
    assert token_request(smart, assertion(client_id, rsa_key)).status_code == 200
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [rsa_key.as_dict(private=True)]}))
    refused = runner.invoke(cli, ["clients", "add", "--type", "backend", "--scope", "system/Patient.rs",
                                  "--jwks-file", str(private)])
    assert refused.exit_code == 2 and "private key material" in refused.output


def test_introspection_reports_smart_fields_and_inactive_tokens(smart, backend, rsa_key):
    issued = token_request(smart, assertion(backend, rsa_key)).json()
    caller = {"Authorization": f"Bearer {issued['access_token']}"}
    answer = smart.post("/auth/introspect", data={"token": issued["access_token"]}, headers=caller)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["active"] is True and body["client_id"] == backend
    assert set(body["scope"].split()) == set(issued["scope"].split())
    assert body["exp"] > time.time()
    for token in ("garbage", issued["access_token"][:-3] + "abc"):
        assert smart.post("/auth/introspect", data={"token": token}, headers=caller).json() == {"active": False}
    anonymous = smart.post("/auth/introspect", data={"token": issued["access_token"]})
    assert anonymous.status_code == 401 and "active" not in anonymous.json()


def test_revocation_then_401(smart, backend, engine, rsa_key):
    issued = token_request(smart, assertion(backend, rsa_key)).json()
    auth = {"Authorization": f"Bearer {issued['access_token']}"}
    assert smart.get("/fhir/Patient", headers=auth).status_code == 200
    other_client = register(engine, client_type="backend", name="someone else", scope="system/Patient.rs",
                            jwks={"keys": [rsa_key.as_dict(private=False)]}).client_id
    not_theirs = smart.post("/auth/revoke", data={
        "token": issued["access_token"], "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(other_client, rsa_key)})
    assert not_theirs.status_code == 200  # RFC 7009: no hint either way...
    assert smart.get("/fhir/Patient", headers=auth).status_code == 200  # ...and no effect
    unauthenticated = smart.post("/auth/revoke", data={"token": issued["access_token"]})
    assert unauthenticated.status_code in (400, 401)
    revoked = smart.post("/auth/revoke", data={
        "token": issued["access_token"], "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(backend, rsa_key)})
    assert revoked.status_code == 200
    assert smart.get("/fhir/Patient", headers=auth).status_code == 401
    fresh = token_request(smart, assertion(backend, rsa_key)).json()["access_token"]
    answer = smart.post("/auth/introspect", data={"token": issued["access_token"]},
                        headers={"Authorization": f"Bearer {fresh}"})
    assert answer.json() == {"active": False}


def test_a_revocation_reaches_other_workers_within_a_poll(smart, backend, rsa_key, settings):
    """Each worker polls for revocations at most once a second (auth/revocation.py): a second app over the
    same database, standing in for another worker, refuses the token once it has polled."""
    issued = token_request(smart, assertion(backend, rsa_key)).json()
    auth = {"Authorization": f"Bearer {issued['access_token']}"}
    with TestClient(create_app(settings.model_copy(update={"auth_mode": AuthMode.smart})),
                    base_url="http://testserver") as other_worker:
        assert other_worker.get("/fhir/Patient", headers=auth).status_code == 200  # verified and remembered
        assert smart.post("/auth/revoke", data={
            "token": issued["access_token"], "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(backend, rsa_key)}).status_code == 200
        time.sleep(POLL_SECONDS + 0.2)
        assert other_worker.get("/fhir/Patient", headers=auth).status_code == 401


def test_tokens_and_assertions_never_reach_the_logs(smart, backend, rsa_key, caplog):
    caplog.set_level(logging.DEBUG)  # the most a deployment can ask for
    signed = assertion(backend, rsa_key)
    issued = token_request(smart, signed).json()
    smart.get("/fhir/Patient", headers={"Authorization": f"Bearer {issued['access_token']}"})
    smart.get("/fhir/Patient", headers={"Authorization": "Bearer not-a-real-token-xyz"})
    logged = caplog.text
    for secret in (issued["access_token"], signed, "not-a-real-token-xyz"):
        assert secret not in logged
