"""The app launch, page by page (app-launch.html): the authorization request, the user's login, the patient
picker, consent, and the code. HTTP-free: auth/routes.py renders and redirects.

What it grants: the `patient/` and `user/` scopes the app is registered for (with `launch/patient`,
`offline_access` or `online_access` for a refresh token, and `openid fhirUser` for an ID token), in a
standalone launch or an EHR launch. `patient/` scopes are confined to one patient: the launch's, or the one
chosen at the picker, which lists only the patients the signed-in user may see. `user/` scopes reach what
the user's role relates them to (auth/scopes.py), decided each time the token is used.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import InvalidRequestError, InvalidScopeError, OAuth2Error

from fhir_server.auth.code import CODE_LIFETIME, code_hash
from fhir_server.auth.events import record_login
from fhir_server.auth.scopes import ScopeError, parse_scope, parse_scopes
from fhir_server.auth.server import FormRequest, SmartAuthorizationServer, granted_scope
from fhir_server.auth.users import authenticate, patients_access
from fhir_server.fhir.errors import FhirError
from fhir_server.search.parse import parse_query
from fhir_server.store import oauth
from fhir_server.store.access import Access
from fhir_server.store.audit import AuditLog
from fhir_server.store.db import unit_of_work
from fhir_server.store.repository import open_repository

PENDING_LIFETIME = timedelta(minutes=10)


@dataclass(frozen=True)
class Step:
    """What the browser is shown next: a redirect, or a page (`page` names the template) with its data."""

    redirect: str | None = None
    page: str | None = None
    status: int = 200
    data: dict = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class LaunchFlow:
    def __init__(self, server: SmartAuthorizationServer, base_url: str, audit_log: AuditLog | None = None) -> None:
        self.server = server
        self.engine = server.engine
        self.base_url = base_url
        self.audit_log = audit_log

    # -- step 1: the authorization request ------------------------------------------------------------
    def authorize(self, request: FormRequest) -> tuple[Step, str | None]:
        """Validate the request; the next step, and the id of the pending request to keep in a cookie."""
        data = request.payload.data
        if not data.get("redirect_uri"):
            return Step(page="error", status=400, data={"message": "redirect_uri is required"}), None
        try:
            grant = self.server.get_consent_grant(request)
        except OAuth2Error as error:
            return self._error(request, error), None
        redirect_uri, state = data["redirect_uri"], data.get("state")
        try:
            if not state:
                raise InvalidRequestError("state is required")
            if (data.get("aud") or "").rstrip("/") != self.base_url:
                raise InvalidRequestError("aud must be this server's FHIR base URL")
            scope = self._grantable(grant.client, data.get("scope") or "")
            context = self._launch_context(grant.client.get_client_id(), data.get("launch"))
        except OAuth2Error as error:
            error.redirect_uri, error.state = redirect_uri, state
            return self._error(request, error), None
        pending_id = secrets.token_urlsafe(32)
        with unit_of_work(self.engine, write=True) as conn:
            oauth.sweep_pending(conn, _now())
            oauth.save_pending(conn, {
                "id": pending_id, "client_id": grant.client.get_client_id(), "expires_at": _now() + PENDING_LIFETIME,
                "username": context["username"] if context else None,
                "patient": context["patient"] if context else None,
                "request": {"redirect_uri": redirect_uri, "state": state, "scope": scope,
                            "nonce": (data.get("nonce") or "")[:255] or None,
                            "encounter": context["encounter"] if context else None, "ehr_launch": bool(context),
                            "code_challenge": data["code_challenge"], "client_name": grant.client.row["name"]}})
        if context is not None:  # the EHR's user and patient: on to consent
            return Step(redirect="/auth/consent"), pending_id
        return Step(redirect="/auth/login"), pending_id

    def _launch_context(self, client_id: str, launch: str | None) -> dict | None:
        """The EHR launch's context, used up (app-launch.html#launch-app-ehr-launch); None for a standalone
        launch."""
        if not launch:
            return None
        with unit_of_work(self.engine, write=True) as conn:
            context = oauth.use_launch(conn, launch[:64], client_id, _now())
        if context is None or context["patient"] is None:
            raise InvalidRequestError("the launch is unknown, expired, already used, or for another app")
        return context

    def _grantable(self, client, requested: str) -> str:
        try:
            scopes, others = parse_scopes(requested)
        except ScopeError as exc:
            raise InvalidScopeError(str(exc)) from None
        user_scopes = " ".join(s.text for s in scopes if s.context in ("patient", "user"))
        granted = granted_scope(user_scopes, client.row["scope"]).split()
        if not granted:
            raise InvalidScopeError("none of the requested scopes can be granted to this app: it may ask for "
                                    "patient/ and user/ scopes it is registered for")
        kept = [s for s in others if s in ("launch", "launch/patient", "offline_access", "online_access",
                                           "openid", "fhirUser")]
        return " ".join(granted + list(dict.fromkeys(kept)))

    def _error(self, request: FormRequest, error: OAuth2Error) -> Step:
        """Errors go back to the app when its redirect URI is known good, and to an error page otherwise."""
        status, body, headers = self.server.handle_error_response(request, error)
        location = dict(headers).get("Location")
        if location and error.redirect_uri:
            return Step(redirect=location)
        return Step(page="error", status=400, data={"message": error.description or error.error})

    # -- steps 2 to 4: login, patient, consent --------------------------------------------------------
    def pending(self, pending_id: str | None) -> dict | None:
        if not pending_id:
            return None
        with unit_of_work(self.engine, write=False) as conn:
            return oauth.find_pending(conn, pending_id, _now())

    def login(self, pending: dict, username: str, password: str, address: str | None = None) -> Step:
        user = authenticate(self.engine, username, password)
        if self.audit_log is not None:
            known = user["username"] if user else self._known_username(username)
            record_login(self.audit_log, username=known, succeeded=user is not None,
                         client_id=pending["client_id"], address=address, site=self.base_url)
        if user is None:
            return Step(page="login", status=401, data={"error": "The username or password is not right."})
        with unit_of_work(self.engine, write=True) as conn:
            oauth.update_pending(conn, pending["id"], username=user["username"])
        return Step(redirect=self.next_page({**pending, "username": user["username"]}))

    def _known_username(self, username: str) -> str | None:
        with unit_of_work(self.engine, write=False) as conn:
            return username if username and len(username) <= 100 and oauth.find_user(conn, username) else None

    def next_page(self, pending: dict) -> str:
        if pending["username"] is None:
            return "/auth/login"
        if pending["patient"] is None and needs_patient(pending):
            return "/auth/patient"
        return "/auth/consent"

    def patients(self, username: str, name: str | None) -> list[dict]:
        """Patients to pick from, by name (the picker of a standalone launch): those the user may see."""
        params = [("_count", "20"), ("_sort", "family")] + ([("name", name)] if name else [])
        with open_repository(self.engine, write=False, base_url=self.base_url,
                             access=self._users_patients(username)) as repo:
            page = repo.search(parse_query("Patient", params), count=20)
        return [_patient_summary(r.resource()) for r in page.resources]

    def pick(self, pending: dict, patient_id: str) -> Step:
        try:
            with open_repository(self.engine, write=False, base_url=self.base_url,
                                 access=self._users_patients(pending["username"])) as repo:
                repo.read("Patient", patient_id)
        except FhirError:
            return Step(page="patient", status=400, data={"error": "Choose a patient from the list.",
                                                          "patients": self.patients(pending["username"], None)})
        with unit_of_work(self.engine, write=True) as conn:
            oauth.update_pending(conn, pending["id"], patient=patient_id)
        return Step(redirect="/auth/consent")

    def decide(self, pending: dict, approve: bool, chosen: list[str]) -> Step:
        """The user's decision: a code for the scopes left ticked, or access_denied (app-launch.html#step-3)."""
        request = pending["request"]
        with unit_of_work(self.engine, write=True) as conn:
            oauth.delete_pending(conn, pending["id"])
        offered = request["scope"].split()
        granted = [s for s in offered if s in chosen]
        if not approve or not any(parse_scope(s) for s in granted):  # no clinical data left: nothing to grant
            return Step(redirect=add_params_to_uri(request["redirect_uri"], [
                ("error", "access_denied"), ("state", request["state"])]))
        code = secrets.token_urlsafe(32)
        with unit_of_work(self.engine, write=True) as conn:
            oauth.save_code(conn, {
                "code_hash": code_hash(code), "client_id": pending["client_id"], "username": pending["username"],
                "redirect_uri": request["redirect_uri"], "scope": " ".join(granted),
                "code_challenge": request["code_challenge"], "patient": pending["patient"],
                "nonce": request.get("nonce"), "encounter": request.get("encounter"),
                # In an EHR launch the EHR shows whose record is open; standalone, the app must.
                "need_patient_banner": not request.get("ehr_launch"),
                "expires_at": _now() + CODE_LIFETIME})
        return Step(redirect=add_params_to_uri(request["redirect_uri"], [("code", code), ("state", request["state"])]))


    def _users_patients(self, username: str) -> Access:
        with unit_of_work(self.engine, write=False) as conn:
            return patients_access(oauth.find_user(conn, username))


def needs_patient(pending: dict) -> bool:
    """Whether the request needs a patient context: it asks for `launch/patient` or a `patient/` scope."""
    scope = pending["request"]["scope"].split()
    return "launch/patient" in scope or any(s.startswith("patient/") for s in scope)


def _patient_summary(patient: dict) -> dict:
    name = next(iter(patient.get("name") or []), {})
    label = " ".join([*name.get("given", []), name.get("family", "")]).strip() or patient["id"]
    return {"id": patient["id"], "name": label, "birthDate": patient.get("birthDate", "")}
