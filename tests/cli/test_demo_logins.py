"""`fhir-server demo-logins` (what `make run` does after seed-demo): users and a backend client that work
against the demo in FHIR_AUTH_MODE=smart, the default; passwords and the key kept in owner-only files."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import uuid

import pytest
from conftest import BASE_URL
from fastapi.testclient import TestClient
from joserfc import jwk, jwt

from fhir_server.app import create_app
from fhir_server.auth.users import authenticate
from fhir_server.config import Settings
from fhir_server.store.db import make_engine

CLI = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "FHIR_DATABASE_URL": f"sqlite:///{folder}/fhir.sqlite3", "FHIR_BASE_URL": BASE_URL}
    env.pop("FHIR_AUTH_MODE", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300, check=True)

    cli("migrate")
    cli("seed-demo", "--members", "10")
    first = cli("demo-logins", "--folder", str(folder / "var"))
    again = cli("demo-logins", "--folder", str(folder / "var"))
    return folder, env, first, again


def test_logins_are_kept_in_owner_only_files_and_never_printed(demo):
    folder, _, first, again = demo
    logins = json.loads((folder / "var" / "demo-logins.json").read_text())
    assert set(logins["users"]) == {"coordinator", "physician", "admin"}
    for name in ("demo-logins.json", "demo-backend-key.json"):
        assert stat.S_IMODE((folder / "var" / name).stat().st_mode) == 0o600
    assert "added coordinator, physician, admin, backend client" in first.stderr
    assert "added" not in again.stderr  # a second run adds nothing
    for user in logins["users"].values():
        assert user["password"] not in first.stdout + first.stderr + again.stdout + again.stderr
    engine = make_engine(f"sqlite:///{folder}/fhir.sqlite3")
    for username, user in logins["users"].items():
        assert authenticate(engine, username, user["password"])["role"] == user["role"]


def test_the_demo_backend_client_reads_in_smart_mode_the_default(demo, monkeypatch):
    folder, env, _, _ = demo
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # the test host is plain http
    settings = Settings(database_url=env["FHIR_DATABASE_URL"], base_url=BASE_URL, log_level="WARNING")
    assert settings.auth_mode.value == "smart"
    logins = json.loads((folder / "var" / "demo-logins.json").read_text())
    key = jwk.import_key(json.loads((folder / "var" / "demo-backend-key.json").read_text()))
    client_id = logins["backend"]["client_id"]
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"},
                           {"iss": client_id, "sub": client_id, "aud": "http://testserver/auth/token",
                            "exp": now + 240, "iat": now, "jti": uuid.uuid4().hex}, key, algorithms=["RS384"])
    with TestClient(create_app(settings), base_url="http://testserver") as http:
        assert http.get("/fhir/Patient").status_code == 401
        token = http.post("/auth/token", data={
            "grant_type": "client_credentials", "scope": "system/Patient.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion})
        assert token.status_code == 200, token.text
        found = http.get("/fhir/Patient", params={"_summary": "count"},
                         headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert found.status_code == 200 and found.json()["total"] == 10


def test_the_demo_coordinator_reaches_the_members_they_manage(demo):
    folder, env, _, _ = demo
    from fhir_server.auth.scopes import access_for, parse_scopes
    from fhir_server.search.parse import parse_query
    from fhir_server.store.repository import open_repository

    scopes, _ = parse_scopes("user/Patient.rs")
    access = access_for(scopes, role="coordinator", practitioner="demo-coordinator-01")
    with open_repository(make_engine(env["FHIR_DATABASE_URL"]), write=False, access=access) as repo:
        page = repo.search(parse_query("Patient", []), count=50)
    # every fifth member, if their practice is in the program (demo-pat-0001's is not)
    assert sorted(r.id for r in page.resources) == ["demo-pat-0006"]
