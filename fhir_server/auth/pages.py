"""The sign-in pages of the app launch (login, patient picker, consent): a Starlette adapter over
auth/launch.py, rendering Jinja2 templates with security headers on every page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import anyio.to_thread
from authlib.oauth2.rfc6749 import InsecureTransportError
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from fhir_server.auth.launch import LaunchFlow, Step, needs_patient
from fhir_server.auth.ratelimit import RateLimiter
from fhir_server.auth.scopes import parse_scope
from fhir_server.auth.server import FormRequest

COOKIE = "careweave_authz"
MAX_FORM_BYTES = 64 * 1024
_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]))
# No framing, no sniffing, no referrer (the URL may carry a code), nothing cached, no script at all.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def describe(scope_text: str) -> str:
    """A scope in words, for the consent page."""
    if scope_text == "launch/patient":
        return "Know which patient you chose"
    if scope_text == "openid":
        return "Confirm who you are to the app"
    if scope_text == "fhirUser":
        return "Tell the app which practitioner record is yours"
    if scope_text == "offline_access":
        return "Keep access after you sign out, until you revoke it (up to 90 days)"
    if scope_text == "online_access":
        return "Keep access for the rest of the working day"
    scope = parse_scope(scope_text)
    if scope is None:
        return scope_text
    verbs = ", ".join(_VERBS[c] for c in scope.interactions)
    what = "all record types" if scope.resource_type == "*" else scope.resource_type
    narrowed = f" ({scope_text.split('?', 1)[1]})" if "?" in scope_text else ""
    return f"{verbs[0].upper()}{verbs[1:]} {what}{narrowed}"


LOGIN_LIMIT = (10, 60.0)  # sign-in attempts per address and per username, per minute


def launch_routes(flow: LaunchFlow, secure_cookie: bool) -> list[Route]:
    login_limiter = RateLimiter(*LOGIN_LIMIT)

    def respond(step: Step, pending_id: str | None = None) -> Response:
        if step.redirect is not None:
            response: Response = RedirectResponse(step.redirect, status_code=302, headers=SECURITY_HEADERS)
        else:
            html = _TEMPLATES.get_template(f"{step.page}.html").render(**step.data)
            response = HTMLResponse(html, status_code=step.status, headers=SECURITY_HEADERS)
        if pending_id is not None:
            response.set_cookie(COOKIE, pending_id, max_age=600, path="/auth", secure=secure_cookie,
                                httponly=True, samesite="lax")
        return response

    def stopped(message: str) -> Response:
        return respond(Step(page="error", status=400, data={"message": message}))

    async def form_of(request: Request) -> dict[str, list[str]] | None:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return None
        values: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode(errors="replace"), keep_blank_values=True):
            values.setdefault(key, []).append(value)
        return values

    async def pending_of(request: Request, form: dict | None = None) -> dict | None:
        """The pending request of this browser; on a form post, the form must name the same one (CSRF)."""
        cookie = request.cookies.get(COOKIE)
        if form is not None and (form.get("flow") or [None])[0] != cookie:
            return None
        return await anyio.to_thread.run_sync(flow.pending, cookie)

    async def authorize(request: Request) -> Response:
        if request.method == "POST":
            form = await form_of(request)
            if form is None:
                return stopped("The request is too large.")
            params = {k: v[0] for k, v in form.items()}
        else:
            params = dict(request.query_params)
        try:
            oauth_request = FormRequest(request.method, str(request.url), request.headers, params)
        except InsecureTransportError:
            return stopped("Sign-in is served over https only.")
        step, pending_id = await anyio.to_thread.run_sync(flow.authorize, oauth_request)
        return respond(step, pending_id)

    async def login(request: Request) -> Response:
        form = await form_of(request) if request.method == "POST" else None
        pending = await pending_of(request, form)
        if pending is None:
            return stopped("This sign-in has expired or was not started here. Start again from the app.")
        data = {"flow": pending["id"], "client_name": pending["request"]["client_name"]}
        if form is None:
            return respond(Step(page="login", data=data))
        username = (form.get("username") or [""])[0]
        wait = login_limiter.allow(f"ip:{_client_address(request)}", f"user:{username.lower()}")
        if wait is not None:
            response = respond(Step(page="login", status=429, data={
                **data, "error": "Too many attempts. Wait a minute, then try again."}))
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        step = await anyio.to_thread.run_sync(flow.login, pending, username, (form.get("password") or [""])[0],
                                              _client_address(request))
        return respond(_with_data(step, data))

    async def patient(request: Request) -> Response:
        form = await form_of(request) if request.method == "POST" else None
        pending = await pending_of(request, form)
        if pending is None or pending["username"] is None:
            return stopped("Sign in first: start again from the app.")
        data = {"flow": pending["id"], "client_name": pending["request"]["client_name"]}
        if form is None:
            name = request.query_params.get("name")
            patients = await anyio.to_thread.run_sync(flow.patients, pending["username"], name)
            return respond(Step(page="patient", data={**data, "patients": patients, "name": name}))
        step = await anyio.to_thread.run_sync(flow.pick, pending, (form.get("patient") or [""])[0])
        return respond(_with_data(step, data))

    async def consent(request: Request) -> Response:
        form = await form_of(request) if request.method == "POST" else None
        pending = await pending_of(request, form)
        if pending is None or pending["username"] is None or (pending["patient"] is None
                                                              and needs_patient(pending)):
            return stopped("This sign-in has expired or skipped a step. Start again from the app.")
        if form is None:
            scopes = [{"value": s, "label": describe(s)} for s in pending["request"]["scope"].split()]
            return respond(Step(page="consent", data={"flow": pending["id"], "scopes": scopes,
                                                       "patient": pending["patient"],
                                                       "client_name": pending["request"]["client_name"]}))
        approve = (form.get("decision") or [""])[0] == "approve"
        step = await anyio.to_thread.run_sync(flow.decide, pending, approve, form.get("scope") or [])
        return respond(step)

    return [Route("/auth/authorize", authorize, methods=["GET", "POST"]),
            Route("/auth/login", login, methods=["GET", "POST"]),
            Route("/auth/patient", patient, methods=["GET", "POST"]),
            Route("/auth/consent", consent, methods=["GET", "POST"])]


def _with_data(step: Step, data: dict) -> Step:
    """A page step with the page's common data added (a redirect as it is)."""
    return Step(page=step.page, status=step.status, data={**data, **step.data}) if step.page else step


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
