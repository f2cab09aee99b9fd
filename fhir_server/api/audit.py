"""AuditEvents for FHIR REST interactions (auditevent.html; IHE Basic Audit Log Patterns, "RESTful activity"
and "Query"): one per request, and one per entry of a batch or a transaction that was applied.

Each names the interaction (`subtype`, from restful-interaction), the action (C, R, U, D, or E for searches,
operations, batches and transactions), the outcome (0 success, 4 refused, 8 server failure), the user and
the client (store/audit.py, Actor), the resource touched, and the Patient it belongs to: taken from the URL
or the search when it names one, and otherwise looked up by the writer from the resource's Patient
compartment. A search's query string goes in as BALP asks, base64-encoded, less any parameter that could be
a credential. `metadata` is not audited: it is public and discloses nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache, partial
from urllib.parse import parse_qsl, urlencode, urlsplit

from fhir_server.api.dispatch import interaction_of
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.store.access import patient_compartment_types
from fhir_server.store.audit import Actor, AuditLog, event, event_id, patient_entity
from fhir_server.store.repository import StoredResource

REST_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
             "display": "Restful Operation"}
INTERACTIONS = "http://hl7.org/fhir/restful-interaction"
_ACTIONS = {"create": "C", "read": "R", "vread": "R", "history-instance": "R", "history-type": "R",
            "history-system": "R", "update": "U", "patch": "U", "delete": "D"}  # the rest are E (execute)
_CODES = {"search-compartment": "search"}
# OAuth parameters that carry a secret if a client misplaces them on a FHIR URL; never written to the log.
# (`code` is left: it is a FHIR search parameter, and a misplaced authorization code is single-use.)
_SECRETS = frozenset({"access_token", "code_verifier", "password", "client_secret", "refresh_token", "token",
                      "client_assertion"})
_PATIENT_PARAMS = ("patient", "subject")
SYSTEM_OBJECT = {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2",
                 "display": "System Object"}
QUERY = {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"}


def record(log: AuditLog, req: FhirRequest, response: FhirResponse, actor: Actor | None, base_url: str) -> None:
    """Queue the events of one request, to be made by the audit writer (nothing for `metadata` or an
    unroutable path). The request and response are only read after this, never changed."""
    log.defer(partial(_events, req, response, actor, base_url, datetime.now(UTC).replace(tzinfo=None)))


def _events(req: FhirRequest, response: FhirResponse, actor: Actor | None, base_url: str,
            when: datetime) -> list[tuple[dict, str | None]]:
    interaction, args = interaction_of(req)
    if interaction in ("capabilities", "unknown"):
        return []
    events = []
    if interaction == "batch/transaction":
        kind = req.body.get("type") if isinstance(req.body, dict) else None
        interaction = kind if kind in ("batch", "transaction") else "batch"
        for entry_request, status, location in _applied_entries(req, response):
            events.append(_rest_event(entry_request, status, location, actor, base_url, when))
    location = _location(response.headers.get("Location"))
    events.append(_rest_event(req, response.status, location, actor, base_url, when, interaction, args,
                              response.stored))
    return events


def _rest_event(req: FhirRequest, status: int, location: str | None, actor: Actor | None, base_url: str,
                when: datetime, interaction: str | None = None, args: list[str] | None = None,
                stored: StoredResource | None = None) -> tuple[dict, str | None]:
    """One event, and the resource whose Patient the writer should look up (None if known or none).

    A write knows the Patient compartments it put the resource in (a deletion, those it took it out of).
    For a read, the writer looks up the version read, a moment later; for a batch entry, what it finds then.
    """
    if interaction is None:
        interaction, args = interaction_of(req)
    args = args or []
    entities, resolve, patient = [], None, None
    if location is None and stored is not None and interaction in ("read", "vread", "update", "patch"):
        location = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"  # the version touched
    touched = location or (f"{args[0]}/{args[1]}" if len(args) >= 2 and interaction != "search-compartment" else None)
    if touched:
        entities.append({"what": {"reference": touched}, "type": SYSTEM_OBJECT})
        resource_type, _, rest = touched.partition("/")
        if resource_type == "Patient":
            patient = rest.split("/", 1)[0]
        elif stored is not None and stored.patients is not None:
            patient = stored.patients[0] if stored.patients else None
        elif stored is not None and resource_type in patient_compartment_types():
            resolve = f"{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
        elif resource_type in patient_compartment_types():
            resolve = touched
    if interaction.startswith("search") or interaction == "operation":
        params = [(k, v) for k, v in req.params if k not in _SECRETS]
        entities.append({"type": SYSTEM_OBJECT, "role": QUERY,
                         "description": f"{req.method} {req.path}",
                         "query": base64.b64encode(urlencode(params).encode()).decode()})
        patient = patient or _searched_patient(req, args) or (actor.patient if actor else None)
    if patient is not None:
        entities.insert(0, patient_entity(patient))
        resolve = None
    resource = event(event_id(), when, REST_TYPE, _subtype(_CODES.get(interaction, interaction)),
                     _ACTIONS.get(interaction, "E"), status, actor, base_url, entities)
    return resource, resolve


@lru_cache(maxsize=64)
def _subtype(code: str) -> dict:
    return {"system": INTERACTIONS, "code": code}


def _searched_patient(req: FhirRequest, args: list[str]) -> str | None:
    """The Patient a search is confined to: its compartment, or a `patient` or `subject` parameter."""
    if len(args) >= 2 and args[0] == "Patient":
        return args[1]
    for name, value in req.params:
        if name in _PATIENT_PARAMS and value and "," not in value:
            kind, _, id = value.rpartition("/")
            if kind in ("", "Patient") or kind.endswith("/Patient"):
                return id
    return None


def _location(location: object) -> str | None:
    """Type/id/_history/v of what a write stored, from its Location (a header or an entry's); None."""
    if not location or not isinstance(location, str):
        return None
    parts = urlsplit(location).path.split("/")
    if "_history" in parts:
        at = parts.index("_history")
        return "/".join(parts[at - 2:at + 2])
    return "/".join(parts[-2:])


def _applied_entries(req: FhirRequest, response: FhirResponse) -> Iterator[tuple[FhirRequest, int, str | None]]:
    """The entries of a batch or transaction, with each one's status and location; none when a
    transaction failed (nothing of it was applied: its own event records the failure)."""
    if response.status >= 400 or not isinstance(req.body, dict) or not isinstance(response.body, dict):
        return
    sent_entries, answers = req.body.get("entry"), response.body.get("entry")
    if not isinstance(sent_entries, list) or not isinstance(answers, list):
        return
    for sent, answered in zip(sent_entries, answers, strict=False):
        request = _dict(_dict(sent).get("request"))
        result = _dict(_dict(answered).get("response"))
        url = urlsplit(str(request.get("url", "")))
        entry_request = FhirRequest(str(request.get("method", "GET")).upper(), url.path.strip("/"),
                                    parse_qsl(url.query, keep_blank_values=True))
        status = str(result.get("status", "0")).split(" ", 1)[0]
        yield entry_request, int(status) if status.isdigit() else 0, _location(result.get("location"))


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}
