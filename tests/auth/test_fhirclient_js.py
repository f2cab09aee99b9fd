"""A real third-party SMART client against a live `fhir-server serve` in FHIR_AUTH_MODE=smart: SMART's npm
`fhirclient` (its browser build, from tests/smart_js/node_modules) in headless Chromium, as a public app in an
EHR launch with PKCE S256 (SMART App Launch 2.2, app-launch.html#launch-app-ehr-launch).

The app's pages are served from an origin of their own, so the token request and the FHIR read are
cross-origin and pass through our CORS. Needs /usr/bin/chromium (scripts/ensure-chromium) and
`npm ci --prefix tests/smart_js`; `make test` does both."""

from __future__ import annotations

import json
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from live_server import smart_site, stop
from playwright.sync_api import sync_playwright

APP = Path(__file__).resolve().parents[1] / "smart_js"
CHROMIUM = Path("/usr/bin/chromium")
SCOPE = "launch openid fhirUser patient/*.rs"

# One live server, app server and browser for the module's tests: keep them on one xdist worker.
pytestmark = pytest.mark.xdist_group("fhirclient-js")


@pytest.fixture(scope="module")
def app_origin(tmp_path_factory):
    """The app's static pages and the fhirclient build, from a directory of their own (with the generated
    config.js beside them), on another port of 127.0.0.1: another origin than the FHIR server's."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/ensure-chromium (make test does)")
    if not (APP / "node_modules" / "fhirclient").is_dir():
        pytest.skip(f"{APP}/node_modules is missing: run npm ci --prefix tests/smart_js (make test does)")
    root = tmp_path_factory.mktemp("smart_js")
    for name in ("launch.html", "index.html", "node_modules"):
        (root / name).symlink_to(APP / name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", root
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def live_smart(app_origin, tmp_path_factory):
    """The live server, with the app registered, a physician and their patient; a function that makes a new
    EHR launch URL for that user and patient."""
    origin, root = app_origin
    site = smart_site(tmp_path_factory.mktemp("fhirclient_js"))
    cli, base = site.cli, site.base
    client_id = cli("clients", "add", "--type", "public", "--name", "Chart viewer", "--scope", SCOPE,
                    "--redirect-uri", f"{origin}/index.html", "--launch-uri", f"{origin}/launch.html").strip()
    (root / "config.js").write_text(f"const CONFIG = {json.dumps({'clientId': client_id})};\n")
    # Registered before the server starts, so its CORS origins include the app's from the first request.
    proc, log = site.serve()
    yield base, lambda: cli("launch", "--client", client_id, "--patient", "Patient/pat1", "--user", "dr1").strip()
    stop(proc, log)


@pytest.fixture(scope="module")
def browser(app_origin):  # after app_origin, which skips when Chromium is missing
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile (cookies, sessionStorage) for each test."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def test_npm_fhirclient_ehr_launch_public_pkce(live_smart, app_origin, page):
    base, new_launch = live_smart
    origin, _ = app_origin
    requests = []
    page.on("request", lambda request: requests.append(request))  # a bound builtin cannot be a handler

    page.goto(new_launch())
    # The launch names the EHR's signed-in user, so the server asks no sign-in: straight to consent.
    page.wait_for_url(f"{base}/auth/consent")
    assert sorted(page.locator('input[name="scope"]').evaluate_all("els => els.map(e => e.value)")) == \
        sorted(SCOPE.split())
    page.click('button[name="decision"][value="approve"]')
    page.wait_for_selector("body[data-state]")
    assert page.get_attribute("body", "data-state") == "ready", page.text_content("#error")
    assert page.text_content("#patient-id") == "pat1"
    assert page.text_content("#token-patient") == "pat1"

    # PKCE S256, because our smart-configuration advertises it: the challenge goes out with the
    # authorization request, the verifier with the token request.
    authorize = next(r for r in requests if r.url.startswith(f"{base}/auth/authorize?"))
    query = parse_qs(urlsplit(authorize.url).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["aud"] == [f"{base}/fhir"] and query["launch"][0]
    token = next(r for r in requests if r.url == f"{base}/auth/token")
    assert token.method == "POST"
    body = parse_qs(token.post_data)
    assert body["grant_type"] == ["authorization_code"] and body["code_verifier"][0]
    assert "client_secret" not in body and "authorization" not in token.all_headers()
    assert token.response().status == 200
    assert token.response().header_value("access-control-allow-origin") == origin

    read = next(r for r in requests if r.url == f"{base}/fhir/Patient/pat1")
    assert read.all_headers()["authorization"].startswith("Bearer ")
    assert read.response().status == 200
    assert read.response().header_value("access-control-allow-origin") == origin


def test_a_launch_is_used_once(live_smart, app_origin, browser, page):
    """The second opening of the same launch URL is refused, and fhirclient's ready() reports the error
    the server sent back to the redirect URI."""
    base, new_launch = live_smart
    origin, _ = app_origin
    url = new_launch()
    first = browser.new_context()
    first_page = first.new_page()
    first_page.goto(url)
    first_page.wait_for_url(f"{base}/auth/consent")  # the launch is used up at the authorization request
    first.close()

    requests = []
    page.on("request", lambda request: requests.append(request))  # a bound builtin cannot be a handler
    page.goto(url)
    page.wait_for_selector("body[data-state]")
    assert page.get_attribute("body", "data-state") == "error"
    assert parse_qs(urlsplit(page.url).query)["error"] == ["invalid_request"] and page.url.startswith(origin)
    assert page.text_content("#error").startswith("Error: invalid_request")
    assert page.text_content("#patient-id") == ""
    assert not [r for r in requests if r.url.startswith((f"{base}/auth/token", f"{base}/fhir/Patient"))]
