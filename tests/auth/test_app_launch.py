"""The SMART standalone patient launch (app-launch.html) over HTTP, in FHIR_AUTH_MODE=smart, on SQLite and
PostgreSQL: the authorization-code checks of the SMART App Launch and (g)(10) test kits, as our own tests."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import BASE_URL
from fastapi.testclient import TestClient
from joserfc import jwk, jwt
from typer.testing import CliRunner

from fhir_server.app import create_app
from fhir_server.auth.clients import register
from fhir_server.auth.users import UserError, add_user
from fhir_server.cli import app as cli
from fhir_server.config import AuthMode

REDIRECT = "http://127.0.0.1:9999/callback"
PASSWORD = "correct horse battery"
SCOPE = "launch/patient patient/Patient.rs patient/Observation.rs"


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
def world(client, engine, smart):
    """Two patients with an Observation each (written in open mode), a user, and two registered apps."""
    for p in ("a", "b"):
        assert client.put(f"/fhir/Patient/{p}", json={"resourceType": "Patient", "id": p,
                                                       "name": [{"family": f"Fam{p}", "given": ["Pat"]}]},
                          headers={"Content-Type": "application/fhir+json"}).status_code in (200, 201)
        assert client.put(f"/fhir/Observation/obs-{p}", json={
            "resourceType": "Observation", "id": f"obs-{p}", "status": "final", "code": {"text": "x"},
            "subject": {"reference": f"Patient/{p}"}}, headers={"Content-Type": "application/fhir+json"}
        ).status_code in (200, 201)
    assert client.put("/fhir/Practitioner/rn1", json={"resourceType": "Practitioner", "id": "rn1"},
                      headers={"Content-Type": "application/fhir+json"}).status_code in (200, 201)
    for p in ("a", "b"):  # the coordinator's members; Patient/z is no one's
        assert client.put(f"/fhir/CareTeam/team-{p}", json={
            "resourceType": "CareTeam", "id": f"team-{p}", "status": "active", "subject": {"reference": f"Patient/{p}"},
            "participant": [{"member": {"reference": "Practitioner/rn1"}}]},
            headers={"Content-Type": "application/fhir+json"}).status_code in (200, 201)
    assert client.put("/fhir/Patient/z", json={"resourceType": "Patient", "id": "z", "name": [{"family": "Famz"}]},
                      headers={"Content-Type": "application/fhir+json"}).status_code in (200, 201)
    username = "nurse-" + secrets.token_hex(4)
    add_user(engine, username=username, password=PASSWORD, role="coordinator", practitioner="Practitioner/rn1")
    public = register(engine, client_type="public", name="Care plan viewer", scope="patient/*.rs",
                      redirect_uris=[REDIRECT]).client_id
    symmetric = register(engine, client_type="confidential-symmetric", name="Outreach app",
                         scope="patient/*.rs", redirect_uris=[REDIRECT])
    return {"user": username, "public": public, "symmetric": symmetric}


def authorize(smart, app: str, verifier: str, **changes):
    params = {"response_type": "code", "client_id": app, "redirect_uri": REDIRECT, "scope": SCOPE,
              "state": secrets.token_urlsafe(16), "aud": BASE_URL, "code_challenge": challenge_of(verifier),
              "code_challenge_method": "S256"}
    params.update(changes)
    params = {k: v for k, v in params.items() if v is not None}
    return smart.get("/auth/authorize", params=params, follow_redirects=False), params.get("state")


def flow_id(smart) -> str:
    return smart.cookies.get("careweave_authz")


def launch(smart, world, client_id: str, verifier: str, *, patient: str = "a", untick: str | None = None,
           decision: str = "approve", scope: str = SCOPE) -> dict:
    """Authorize, sign in, pick the patient, consent; the query of the redirect back to the app."""
    response, state = authorize(smart, client_id, verifier, scope=scope)
    assert response.status_code == 302 and response.headers["location"] == "/auth/login", response.text
    assert smart.get("/auth/login").status_code == 200
    response = smart.post("/auth/login", data={"username": world["user"], "password": PASSWORD,
                                               "flow": flow_id(smart)}, follow_redirects=False)
    assert response.headers["location"] == "/auth/patient"
    picker = smart.get("/auth/patient")
    assert picker.status_code == 200 and 'name="patient"' in picker.text
    response = smart.post("/auth/patient", data={"patient": patient, "flow": flow_id(smart)},
                          follow_redirects=False)
    assert response.headers["location"] == "/auth/consent"
    page = smart.get("/auth/consent")
    assert page.status_code == 200 and 'name="decision"' in page.text
    chosen = [s for s in scope.split() if s != untick]
    response = smart.post("/auth/consent", data={"scope": chosen, "decision": decision, "flow": flow_id(smart)},
                          follow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == state
    return query


def exchange(smart, code: str, verifier: str | None, client_id: str | None, auth=None, **form):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **form}
    if verifier is not None:
        data["code_verifier"] = verifier
    if client_id is not None:
        data["client_id"] = client_id
    return smart.post("/auth/token", data=data, auth=auth)


def test_the_patient_picker_offers_only_the_users_patients(smart, world):
    verifier = secrets.token_urlsafe(48)
    authorize(smart, world["public"], verifier)
    smart.post("/auth/login", data={"username": world["user"], "password": PASSWORD, "flow": flow_id(smart)})
    picker = smart.get("/auth/patient").text
    assert 'value="a"' in picker and 'value="b"' in picker and 'value="z"' not in picker
    refused = smart.post("/auth/patient", data={"patient": "z", "flow": flow_id(smart)}, follow_redirects=False)
    assert refused.status_code == 400 and "Choose a patient" in refused.text


def test_user_scopes_need_no_patient_and_reach_the_users_members(smart, world, engine):
    app = register(engine, client_type="public", name="Coordinator workspace", scope="user/*.rs",
                   redirect_uris=[REDIRECT]).client_id
    verifier, scope = secrets.token_urlsafe(48), "openid fhirUser user/Patient.rs user/Observation.rs"
    response, state = authorize(smart, app, verifier, scope=scope)
    response = smart.post("/auth/login", data={"username": world["user"], "password": PASSWORD,
                                               "flow": flow_id(smart)}, follow_redirects=False)
    assert response.headers["location"] == "/auth/consent"  # no patient picker without a patient/ scope
    done = smart.post("/auth/consent", data={"scope": scope.split(), "decision": "approve", "flow": flow_id(smart)},
                      follow_redirects=False)
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
    body = exchange(smart, code, verifier, app).json()
    assert "patient" not in body and set(body["scope"].split()) == set(scope.split())
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    found = smart.get("/fhir/Patient", headers=auth).json()
    assert sorted(e["resource"]["id"] for e in found["entry"]) == ["a", "b"]
    assert smart.get("/fhir/Patient/z", headers=auth).status_code == 404
    assert smart.get("/fhir/AuditEvent", headers=auth).status_code == 403


def test_discovery_advertises_the_standalone_launch(smart):
    config = smart.get("/fhir/.well-known/smart-configuration").json()
    assert config["authorization_endpoint"] == "http://testserver/auth/authorize"
    assert "authorization_code" in config["grant_types_supported"]
    assert {"launch-standalone", "client-public", "client-confidential-symmetric",
            "context-standalone-patient", "permission-patient"} <= set(config["capabilities"])
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "plain" not in config["code_challenge_methods_supported"]
    assert {"none", "client_secret_basic", "private_key_jwt"} <= set(config["token_endpoint_auth_methods_supported"])


def test_public_client_standalone_launch_reaches_only_the_chosen_patient(smart, world):
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, world["public"], verifier)["code"]
    response = exchange(smart, code, verifier, world["public"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0 and body["patient"] == "a"
    assert set(body["scope"].split()) == set(SCOPE.split())
    assert body["need_patient_banner"] is True
    assert smart.get(body["smart_style_url"].removeprefix("http://testserver")).status_code == 200
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart.get("/fhir/Patient/a", headers=auth).status_code == 200
    assert smart.get("/fhir/Patient/b", headers=auth).status_code == 404
    found = smart.get("/fhir/Observation", headers=auth).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["obs-a"]
    assert smart.get("/fhir/Condition", headers=auth).status_code == 403  # registered *.rs, but not asked for


@pytest.mark.parametrize("case", ["missing", "blank", "wrong", "plain"])
def test_invalid_pkce_verifiers_are_refused(smart, world, case):
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, world["public"], verifier)["code"]
    sent = {"missing": None, "blank": "", "wrong": secrets.token_urlsafe(48), "plain": challenge_of(verifier)}[case]
    response = exchange(smart, code, sent, world["public"])
    assert response.status_code in (400, 401), response.text
    assert "access_token" not in response.json()


@pytest.mark.parametrize("changes", [{"code_challenge": None, "code_challenge_method": None},
                                     {"code_challenge_method": "plain"}, {"code_challenge_method": None},
                                     {"aud": "https://other.example/fhir"}, {"aud": None}, {"state": None},
                                     {"response_type": "token"}, {"scope": "user/Patient.rs"},
                                     {"launch": "xyz"}],
                         ids=["no-pkce", "plain", "no-method", "wrong-aud", "no-aud", "no-state", "token",
                              "user-scope", "ehr-launch"])
def test_bad_authorization_requests_go_back_with_an_error_and_no_code(smart, world, changes):
    response, _ = authorize(smart, world["public"], secrets.token_urlsafe(48), **changes)
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert "error" in query and "code" not in query


@pytest.mark.parametrize("changes", [{"client_id": "no-such-app"}, {"redirect_uri": REDIRECT + "/evil"},
                                     {"redirect_uri": "https://attacker.example/cb"}, {"redirect_uri": None}])
def test_unknown_clients_and_redirects_get_a_page_not_a_redirect(smart, world, changes):
    response, _ = authorize(smart, world["public"], secrets.token_urlsafe(48), **changes)
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


def test_bad_code_bad_client_and_reused_code(smart, world):
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, world["public"], verifier)["code"]
    assert exchange(smart, "not-a-code", verifier, world["public"]).status_code == 400
    assert exchange(smart, code, verifier, "no-such-client").status_code in (400, 401)
    assert exchange(smart, code, verifier, world["public"]).status_code == 200
    reused = exchange(smart, code, verifier, world["public"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_consent_can_narrow_or_deny(smart, world):
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, world["public"], verifier, untick="patient/Observation.rs")["code"]
    body = exchange(smart, code, verifier, world["public"]).json()
    assert "patient/Observation.rs" not in body["scope"].split()
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart.get("/fhir/Observation", headers=auth).status_code == 403
    denied = launch(smart, world, world["public"], secrets.token_urlsafe(48), decision="deny")
    assert denied["error"] == "access_denied" and "code" not in denied


def test_symmetric_client_authenticates_with_its_secret(smart, world):
    app = world["symmetric"]
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, app.client_id, verifier)["code"]
    assert exchange(smart, code, verifier, None, auth=(app.client_id, "wrong secret")).status_code == 401
    response = exchange(smart, code, verifier, None, auth=(app.client_id, app.secret))
    assert response.status_code == 200 and response.json()["patient"] == "a"
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, app.client_id, verifier)["code"]
    assert exchange(smart, code, verifier, app.client_id).status_code == 401  # no secret: not a public client


def test_login_and_form_checks(smart, world):
    authorize(smart, world["public"], secrets.token_urlsafe(48))
    wrong = smart.post("/auth/login", data={"username": world["user"], "password": "not it at all",
                                            "flow": flow_id(smart)})
    assert wrong.status_code == 401 and "not right" in wrong.text
    forged = smart.post("/auth/login", data={"username": world["user"], "password": PASSWORD, "flow": "other"},
                        follow_redirects=False)
    assert forged.status_code == 400  # the form must carry this browser's own flow id
    assert smart.get("/auth/consent").status_code == 400  # no skipping the patient step
    page = smart.get("/auth/login")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    smart.cookies.clear()
    assert smart.get("/auth/login").status_code == 400


def test_users_cli_asks_for_the_password_and_refuses_weak_ones(settings, engine, smart, monkeypatch):
    monkeypatch.setenv("FHIR_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    name = "doc-" + secrets.token_hex(4)
    done = runner.invoke(cli, ["users", "add", "--username", name, "--role", "physician",
                               "--practitioner", "Practitioner/p1"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.exit_code == 0, done.output
    assert PASSWORD not in done.stdout.replace(PASSWORD, "", 0)  # nothing echoes it
    weak = runner.invoke(cli, ["users", "add", "--username", name + "x", "--role", "physician"],
                         input="short\nshort\n")
    assert weak.exit_code == 2 and "12 characters" in weak.output
    with pytest.raises(UserError):
        add_user(engine, username=name, password=PASSWORD, role="physician", practitioner=None)


def test_capability_statement_names_the_oauth_endpoints_for_fhirclient(smart, client):
    security = smart.get("/fhir/metadata").json()["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris["authorize"] == "http://testserver/auth/authorize"
    assert uris["token"] == "http://testserver/auth/token"
    assert "security" not in client.get("/fhir/metadata").json()["rest"][0]  # open mode: no tokens asked


def refreshable(smart, world, extra: str = "offline_access") -> dict:
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, world["public"], verifier, scope=f"{SCOPE} {extra}")["code"]
    response = exchange(smart, code, verifier, world["public"])
    assert response.status_code == 200, response.text
    return response.json()


def refresh(smart, token: str, **form):
    return smart.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": token, **form})


def test_refresh_with_and_without_scope_rotates_the_token(smart, world):
    first = refreshable(smart, world)
    assert "offline_access" in first["scope"].split() and first["refresh_token"]
    again = refresh(smart, first["refresh_token"], client_id=world["public"])
    assert again.status_code == 200, again.text
    assert again.headers["cache-control"] == "no-store"
    body = again.json()
    assert set(body["scope"].split()) == set(first["scope"].split()) and body["patient"] == "a"
    assert body["refresh_token"] != first["refresh_token"] and body["expires_in"] > 0
    narrower = refresh(smart, body["refresh_token"], client_id=world["public"],
                       scope="patient/Patient.rs offline_access")
    assert narrower.status_code == 200 and "patient/Observation.rs" not in narrower.json()["scope"].split()
    auth = {"Authorization": f"Bearer {narrower.json()['access_token']}"}
    assert smart.get("/fhir/Patient/a", headers=auth).status_code == 200
    assert smart.get("/fhir/Observation", headers=auth).status_code == 403
    wider = refresh(smart, narrower.json()["refresh_token"], client_id=world["public"],
                    scope="patient/Patient.rs patient/Condition.rs")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


def test_a_reused_refresh_token_revokes_its_family(smart, world):
    first = refreshable(smart, world)
    second = refresh(smart, first["refresh_token"], client_id=world["public"]).json()
    auth = {"Authorization": f"Bearer {second['access_token']}"}
    assert smart.get("/fhir/Patient/a", headers=auth).status_code == 200
    replay = refresh(smart, first["refresh_token"], client_id=world["public"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert refresh(smart, second["refresh_token"], client_id=world["public"]).status_code == 400
    assert smart.get("/fhir/Patient/a", headers=auth).status_code == 401


def test_bad_refresh_requests(smart, world):
    first = refreshable(smart, world, extra="online_access")
    assert refresh(smart, "not-a-token", client_id=world["public"]).status_code == 400
    other = register(smart.app.state.engine, client_type="public", name="other app", scope="patient/*.rs",
                     redirect_uris=[REDIRECT]).client_id
    assert refresh(smart, first["refresh_token"], client_id=other).status_code == 400  # bound to its client
    no_refresh = exchange(smart, launch(smart, world, world["public"], v := secrets.token_urlsafe(48))["code"], v,
                          world["public"]).json()
    assert "refresh_token" not in no_refresh  # none asked for, none given


def test_revoking_a_refresh_token_ends_the_grant(smart, world):
    first = refreshable(smart, world)
    assert smart.post("/auth/revoke", data={"token": first["refresh_token"],
                                            "client_id": world["public"]}).status_code == 200
    assert refresh(smart, first["refresh_token"], client_id=world["public"]).status_code == 400
    auth = {"Authorization": f"Bearer {first['access_token']}"}
    assert smart.get("/fhir/Patient/a", headers=auth).status_code == 401


def test_openid_connect_id_token_and_configuration(smart, world):
    verifier = secrets.token_urlsafe(48)
    scope = f"openid fhirUser {SCOPE} patient/Practitioner.rs"
    response, _ = authorize(smart, world["public"], verifier, scope=scope, nonce="n-0S6_WzA2Mj")
    assert response.status_code == 302
    smart.post("/auth/login", data={"username": world["user"], "password": PASSWORD, "flow": flow_id(smart)})
    smart.post("/auth/patient", data={"patient": "a", "flow": flow_id(smart)})
    done = smart.post("/auth/consent", data={"scope": scope.split(), "decision": "approve", "flow": flow_id(smart)},
                      follow_redirects=False)
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
    body = exchange(smart, code, verifier, world["public"]).json()
    config = smart.get("/.well-known/openid-configuration").json()
    assert config["issuer"] == "http://testserver"
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    assert smart.get("/fhir/.well-known/smart-configuration").json()["issuer"] == config["issuer"]
    keys = jwk.KeySet.import_key_set(smart.get(config["jwks_uri"].removeprefix("http://testserver")).json())
    token = jwt.decode(body["id_token"], keys, algorithms=["RS256"])
    assert token.header["alg"] == "RS256" and token.header["kid"]
    claims = token.claims
    assert claims["iss"] == config["issuer"] and claims["aud"] == world["public"] and claims["sub"] == world["user"]
    assert claims["fhirUser"] == f"{BASE_URL}/Practitioner/rn1" and claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["exp"] > claims["iat"]
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart.get("/fhir/Practitioner/rn1", headers=auth).status_code == 200  # fhirUser can be read
    seen = smart.post("/auth/introspect", data={"token": body["access_token"]}, headers=auth).json()
    assert seen["sub"] == claims["sub"] and seen["fhirUser"] == claims["fhirUser"] and seen["patient"] == "a"


def ehr_launch_url(settings, monkeypatch, client_id: str, user: str, **extra) -> str:
    monkeypatch.setenv("FHIR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FHIR_BASE_URL", BASE_URL)
    args = ["launch", "--client", client_id, "--patient", "Patient/b", "--user", user]
    for name, value in extra.items():
        args += [f"--{name}", value]
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    return done.stdout.strip().splitlines()[-1]


def test_ehr_launch_binds_user_patient_and_encounter_once(smart, world, engine, settings, monkeypatch):
    app = register(engine, client_type="public", name="PCP care plan", scope="patient/*.rs",
                   redirect_uris=[REDIRECT], launch_uri="http://127.0.0.1:9999/launch?site=north").client_id
    url = urlsplit(ehr_launch_url(settings, monkeypatch, app, world["user"], encounter="Encounter/e1"))
    params = parse_qs(url.query)
    assert url.path == "/launch" and params["iss"] == [BASE_URL] and params["site"] == ["north"]
    launch_id = params["launch"][0]
    verifier = secrets.token_urlsafe(48)
    scope = "launch patient/Patient.rs patient/Observation.rs offline_access"
    response, state = authorize(smart, app, verifier, scope=scope, launch=launch_id)
    assert response.headers["location"] == "/auth/consent"  # the EHR's user: no second sign-in
    done = smart.post("/auth/consent", data={"scope": scope.split(), "decision": "approve", "flow": flow_id(smart)},
                      follow_redirects=False)
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
    body = exchange(smart, code, verifier, app).json()
    assert body["patient"] == "b" and body["encounter"] == "e1" and body["need_patient_banner"] is False
    refreshed = refresh(smart, body["refresh_token"], client_id=app).json()
    assert (refreshed["patient"], refreshed["encounter"], refreshed["need_patient_banner"]) == ("b", "e1", False)
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert smart.get("/fhir/Observation/obs-b", headers=auth).status_code == 200
    assert smart.get("/fhir/Observation/obs-a", headers=auth).status_code == 404
    reused, _ = authorize(smart, app, verifier, scope=scope, launch=launch_id)
    assert "error=invalid_request" in reused.headers["location"] and "code=" not in reused.headers["location"]
    other_app, _ = authorize(smart, world["public"], verifier, scope=scope,
                             launch=parse_qs(urlsplit(ehr_launch_url(settings, monkeypatch, app, world["user"]))
                                             .query)["launch"][0])
    assert "error=invalid_request" in other_app.headers["location"]  # a launch is bound to its app
    unknown = CliRunner().invoke(cli, ["launch", "--client", world["public"], "--patient", "Patient/a",
                                       "--user", world["user"]])
    assert unknown.exit_code == 2 and "launch URI" in unknown.output
    for patient in ("Patient/z", "Patient/nobody"):  # not the user's member; not there at all
        refused = CliRunner().invoke(cli, ["launch", "--client", app, "--patient", patient, "--user", world["user"]])
        assert refused.exit_code == 2 and "may not see" in refused.output


def test_cors_any_origin_for_discovery_registered_origins_elsewhere(smart, world):
    app_origin, stranger = "http://127.0.0.1:9999", "https://stranger.example"
    for path in ("/fhir/metadata", "/fhir/.well-known/smart-configuration", "/.well-known/openid-configuration",
                 "/auth/jwks"):
        assert smart.get(path, headers={"Origin": stranger}).headers["access-control-allow-origin"] == "*"
    preflight = {"Origin": app_origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}
    answer = smart.options("/auth/token", headers=preflight)
    assert answer.status_code == 204 and answer.headers["access-control-allow-origin"] == app_origin
    assert "Authorization" in answer.headers["access-control-allow-headers"]
    refused = smart.options("/auth/token", headers={**preflight, "Origin": stranger})
    assert "access-control-allow-origin" not in refused.headers
    verifier = secrets.token_urlsafe(48)
    code = launch(smart, world, world["public"], verifier)["code"]
    token = smart.post("/auth/token", headers={"Origin": app_origin}, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier,
        "client_id": world["public"]})
    assert token.status_code == 200 and token.headers["access-control-allow-origin"] == app_origin
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    read = smart.get("/fhir/Patient/a", headers={**auth, "Origin": app_origin})
    assert read.headers["access-control-allow-origin"] == app_origin and "ETag" in \
        read.headers["access-control-expose-headers"]
    assert "access-control-allow-origin" not in smart.get("/fhir/Patient/a", headers={**auth, "Origin": stranger}
                                                          ).headers


def test_sign_in_and_token_requests_are_rate_limited(smart, world, settings, monkeypatch):
    authorize(smart, world["public"], secrets.token_urlsafe(48))
    statuses = [smart.post("/auth/login", data={"username": world["user"], "password": "wrong wrong wrong",
                                                "flow": flow_id(smart)}).status_code for _ in range(11)]
    assert statuses[:10] == [401] * 10 and statuses[10] == 429
    blocked = smart.post("/auth/login", data={"username": world["user"], "password": PASSWORD,
                                              "flow": flow_id(smart)})
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0  # even the right password
    monkeypatch.setattr("fhir_server.auth.routes.TOKEN_LIMIT", (3, 60.0))
    with TestClient(create_app(settings.model_copy(update={"auth_mode": AuthMode.smart})),
                    base_url="http://testserver") as fresh:
        answers = [fresh.post("/auth/token", data={"grant_type": "authorization_code", "code": "x"})
                   for _ in range(4)]
    assert all(a.status_code in (400, 401) for a in answers[:3])
    assert answers[3].status_code == 429 and answers[3].json()["error"] == "slow_down"


def user_token(smart, engine, username: str, scope: str) -> str:
    """A token for `username` through a standalone launch of an app registered for `scope`."""
    app = register(engine, client_type="public", name="Audit console", scope=scope, redirect_uris=[REDIRECT]).client_id
    verifier = secrets.token_urlsafe(48)
    authorize(smart, app, verifier, scope=scope)
    smart.post("/auth/login", data={"username": username, "password": PASSWORD, "flow": flow_id(smart)})
    done = smart.post("/auth/consent", data={"scope": scope.split(), "decision": "approve", "flow": flow_id(smart)},
                      follow_redirects=False)
    code = parse_qs(urlsplit(done.headers["location"]).query)["code"][0]
    return exchange(smart, code, verifier, app).json()["access_token"]


def test_sign_ins_tokens_and_reads_are_audited_and_only_an_administrator_reads_them(smart, world, engine):
    verifier = secrets.token_urlsafe(48)
    authorize(smart, world["public"], verifier)
    for username, password in ((world["user"], "a wrong password"), ("no-such-user", "typed as a name")):
        assert smart.post("/auth/login", data={"username": username, "password": password,
                                               "flow": flow_id(smart)}).status_code == 401
    query = launch(smart, world, world["public"], verifier)
    token = exchange(smart, query["code"], verifier, world["public"]).json()["access_token"]
    assert exchange(smart, query["code"], verifier, world["public"]).status_code == 400  # a reused code
    auth = {"Authorization": f"Bearer {token}"}
    assert smart.get("/fhir/Observation/obs-a", headers=auth).status_code == 200
    assert smart.get("/fhir/Patient/b", headers=auth).status_code == 404
    assert smart.get("/fhir/Patient", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert smart.get("/fhir/AuditEvent", headers=auth).status_code == 403

    add_user(engine, username="auditor", password=PASSWORD, role="admin", practitioner=None)
    admin = {"Authorization": f"Bearer {user_token(smart, engine, 'auditor', 'user/AuditEvent.rs')}"}
    found = smart.get("/fhir/AuditEvent", headers=admin, params={"_count": "100", "_sort": "date"})
    assert found.status_code == 200, found.text
    log = [e["resource"] for e in found.json()["entry"]]

    def of(code: str) -> list[tuple]:
        return [(e["outcome"], next((a.get("altId") for a in e["agent"] if a.get("requestor")), None),
                 [x["what"]["reference"] for x in e.get("entity", []) if "what" in x],
                 [d["valueString"] for x in e.get("entity", []) for d in x.get("detail", [])])
                for e in log if e["subtype"][0]["code"] == code]

    user = world["user"]
    assert of("110122")[:3] == [("4", user, [], []), ("4", None, [], []), ("0", user, [], [])]
    assert of("token")[:2] == [("0", user, ["Patient/a"], ["authorization_code"]),
                               ("4", None, [], ["authorization_code", "invalid_grant"])]
    reads = of("read")
    assert reads[0] == ("0", user, ["Patient/a", "Observation/obs-a/_history/1"], [])
    assert reads[1] == ("4", user, ["Patient/b", "Patient/b"], [])  # the patient, and the resource asked for
    clients = {a["who"]["identifier"]["value"] for e in log for a in e["agent"] if "identifier" in a.get("who", {})
               and a["who"]["identifier"]["system"].endswith("client-id")}
    assert world["public"] in clients
    assert of("search-type")[0][0] == "4"  # the refused bearer token, with no one to name
    text = found.text
    for secret in (token, PASSWORD, "a wrong password", "typed as a name", "no-such-user", query["code"],
                   verifier, "not-a-token"):
        assert secret not in text
