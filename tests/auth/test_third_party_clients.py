"""A real third-party SMART client against a live `fhir-server serve` in FHIR_AUTH_MODE=smart: the Python
`fhirclient` package (SMART on FHIR's own), as a confidential app in a standalone launch. It finds our
endpoints only through the CapabilityStatement's `oauth-uris` extension, so this also checks that."""

from __future__ import annotations

import httpx
import pytest
from fhirclient import client as fhirclient
from live_server import PASSWORD, smart_site, stop

REDIRECT = "http://127.0.0.1:9/callback"  # never opened: the test reads the redirect's Location


@pytest.fixture
def live_smart(tmp_path):
    site = smart_site(tmp_path)
    client_id, secret = site.cli("clients", "add", "--type", "confidential-symmetric", "--name", "Outreach",
                                 "--scope", "patient/*.rs", "--redirect-uri", REDIRECT).split()
    proc, log = site.serve()
    base = site.base
    yield base, client_id, secret
    stop(proc, log)


def sign_in(authorize_url: str) -> str:
    """What a person does in the browser: sign in, pick the patient, allow. The URL the app is sent back to."""
    with httpx.Client(follow_redirects=False) as browser:
        step = browser.get(authorize_url)
        assert step.status_code == 302, step.text
        base = authorize_url.split("/auth/", 1)[0]
        flow = browser.cookies.get("careweave_authz")
        browser.post(base + "/auth/login", data={"username": "dr1", "password": PASSWORD, "flow": flow})
        browser.post(base + "/auth/patient", data={"patient": "pat1", "flow": flow})
        page = browser.get(base + "/auth/consent")
        scopes = [line.split('value="', 1)[1].split('"', 1)[0] for line in page.text.splitlines()
                  if 'name="scope"' in line]
        done = browser.post(base + "/auth/consent", data={"scope": scopes, "decision": "approve", "flow": flow})
        assert done.status_code == 302
        return done.headers["location"]


def test_python_fhirclient_standalone_confidential_launch(live_smart):
    base, client_id, secret = live_smart
    smart = fhirclient.FHIRClient(settings={
        "app_id": client_id, "app_secret": secret, "api_base": f"{base}/fhir", "redirect_uri": REDIRECT,
        "scope": "launch/patient patient/*.rs"})
    authorize_url = smart.authorize_url  # reads /fhir/metadata and its oauth-uris
    assert authorize_url.startswith(f"{base}/auth/authorize?")
    smart.handle_callback(sign_in(authorize_url))
    assert smart.ready and smart.patient_id == "pat1"
    assert smart.human_name(smart.patient.name[0]) == "Ada Okafor"
    with pytest.raises(Exception):  # noqa: B017 - fhirclient raises a bare Exception for a refused code
        smart.handle_callback(sign_in(authorize_url).replace("code=", "code=x"))
