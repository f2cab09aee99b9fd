"""A primary-care practice's decision to take part in the program (`Organization/[id]/$participation`).

The decision is the practice's `program-participation` extension (profiles/): its status, since when
(`period`), a note and the practice's contact. Each decision is a new version of the Organization, so
its history is the practice's participation history (http.html#history). The statuses move as a
recruitment does: a practice is invited, then agrees or declines; one that agreed may withdraw; one that
declined or withdrew may be invited again or agree later. Anything else is a 409 naming both statuses.
"""

from __future__ import annotations

import copy

from fhir_server.care.program import PARTICIPATION_URL, now, participation_status, read_named
from fhir_server.fhir.errors import FhirError, Issue, bad_request
from fhir_server.store.repository import Repository

STATUSES = ("invited", "agreed", "declined", "withdrawn")
_NEXT = {
    None: {"invited", "agreed", "declined"},
    "invited": {"invited", "agreed", "declined"},
    "agreed": {"withdrawn"},
    "declined": {"invited", "agreed"},
    "withdrawn": {"invited", "agreed"},
}


def record_participation(repo: Repository, organization_id: str, status: str, note: str | None = None,
                         contact: str | None = None) -> dict:
    """Write the practice's new participation status; the updated Organization."""
    if status not in STATUSES:
        raise bad_request(f"status is one of {', '.join(STATUSES)}, not {status!r}", "status")
    stored = repo.read("Organization", organization_id)
    organization = copy.deepcopy(stored.resource())
    previous = participation_status(organization)
    if status not in _NEXT.get(previous, set()):
        raise FhirError(409, [Issue("business-rule", f"a practice whose participation is {previous or 'not recorded'} "
                                                     f"cannot move to {status}", expression=("status",))])
    if contact is not None:
        read_named(repo, contact, ("Practitioner", "PractitionerRole"), "contact")
    parts = [{"url": "status", "valueCode": status}]
    period = _period(organization, previous, status)
    if period:
        parts.append({"url": "period", "valuePeriod": period})
    if note:
        parts.append({"url": "note", "valueString": note})
    if contact:
        parts.append({"url": "contact", "valueReference": {"reference": contact}})
    others = [e for e in organization.get("extension") or [] if e.get("url") != PARTICIPATION_URL]
    organization["extension"] = [*others, {"url": PARTICIPATION_URL, "extension": parts}]
    updated, _ = repo.update("Organization", organization_id, organization, if_match=stored.etag)
    return updated.resource()


def _period(organization: dict, previous: str | None, status: str) -> dict | None:
    """When participation began (agreed) and ended (withdrawn); none while only invited or declined."""
    if status == "agreed":
        return {"start": now()}
    if status == "withdrawn":
        started = next((p.get("valuePeriod", {}).get("start") for e in organization.get("extension") or []
                        if e.get("url") == PARTICIPATION_URL for p in e.get("extension") or []
                        if p.get("url") == "period"), None)
        return {"start": started, "end": now()} if started else {"end": now()}
    return None
