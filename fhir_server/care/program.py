"""The care-coordination program's vocabulary and the facts its operations share: canonical URLs of the
profiles and code systems in profiles/, and where a member's practice and enrolment are found.

Everything here reads through the Repository protocol, so under the caller's grant (DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from fhir_server.fhir.errors import FhirError, Issue, error
from fhir_server.fhir.terminology.valueset import expand
from fhir_server.search.parse import parse_query
from fhir_server.store.repository import Repository
from fhir_server.store.terminology import StoredTerminology

BASE = "https://careweave.example.org/fhir/"
PROGRAM_SYSTEM = BASE + "CodeSystem/cw-program"
PROGRAM = {"system": PROGRAM_SYSTEM, "code": "chronic-care-coordination",
           "display": "Chronic-care coordination program"}
PARTICIPATION_URL = BASE + "StructureDefinition/program-participation"
PARTICIPATION_SYSTEM = BASE + "CodeSystem/cw-participation-status"
DISENROLLMENT_SYSTEM = BASE + "CodeSystem/cw-disenrollment-reason"
DISENROLLMENT_URL = BASE + "StructureDefinition/disenrollment-reason"
VERIFIED_BY_URL = BASE + "StructureDefinition/consent-verified-by"
SNOMED = "http://snomed.info/sct"
# EpisodeOfCare statuses while the member is in the program (episodeofcare.html#status).
OPEN_EPISODE = ("planned", "waitlist", "active", "onhold")


@dataclass(frozen=True)
class ProgramSettings:
    """How a deployment runs the program: FHIR_OUTREACH_ATTEMPTS (failed calls to a member, over 30 days
    or more, before the member is unable to reach) and FHIR_CANDIDATE_RULES (a rules file for
    $care-candidates; None for the shipped one)."""

    outreach_attempts: int = 3
    candidate_rules: str | None = None


def profile(name: str) -> str:
    return f"{BASE}StructureDefinition/{name}"


def now() -> str:
    """The current instant as a FHIR instant, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def instant(text: str) -> datetime:
    """A FHIR date or dateTime as the instant it starts at: a partial date is its first day, and a value
    without a time zone is taken as UTC."""
    if "T" not in text:
        text += {4: "-01-01", 7: "-01"}.get(len(text), "")
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def day_of(text: object, partial: bool = False) -> date | None:
    """The calendar day a FHIR date or dateTime names, as written (its time zone is not applied). A partial
    date (YYYY, YYYY-MM) names its first day when `partial`, else no day."""
    if not isinstance(text, str) or len(text) < (4 if partial else 10):
        return None
    try:
        return date.fromisoformat(text[:10] if len(text) >= 10 else text + "-01-01"[len(text) - 4:])
    except ValueError:
        return None


def effective(observation: dict) -> str | None:
    """When an Observation took effect: its dateTime or instant, else the end (or start) of its period."""
    period = observation.get("effectivePeriod") or {}
    when = (observation.get("effectiveDateTime") or observation.get("effectiveInstant") or period.get("end")
            or period.get("start"))
    return when if isinstance(when, str) else None


def quantity(element: dict) -> Decimal | None:
    """The value of an element's valueQuantity, exactly as written."""
    value = (element.get("valueQuantity") or {}).get("value")
    return Decimal(str(value)) if isinstance(value, int | float | Decimal) and not isinstance(value, bool) else None


def codings(concept: object) -> list[tuple[str | None, str]]:
    """(system, code) of a CodeableConcept's codings that have a code."""
    if not isinstance(concept, dict):
        return []
    return [(c.get("system"), c["code"]) for c in concept.get("coding") or []
            if isinstance(c, dict) and isinstance(c.get("code"), str)]


def reference_parts(reference: str, allowed: tuple[str, ...], name: str) -> tuple[str, str]:
    """(type, id) of a relative literal reference to one of `allowed`; 400 naming the input otherwise."""
    resource_type, _, id = reference.partition("/")
    if resource_type not in allowed or not id or "/" in id:
        raise FhirError(400, [Issue("invalid", f"{name} is a reference to a {' or '.join(allowed)} "
                                               f"(Type/id), not {reference!r}", expression=(name,))])
    return resource_type, id


def read_named(repo: Repository, reference: str, allowed: tuple[str, ...], name: str) -> dict:
    """The resource an input names; 422 naming the input when it is not there (or not visible)."""
    resource_type, id = reference_parts(reference, allowed, name)
    try:
        return repo.read(resource_type, id).resource()
    except FhirError as exc:
        if exc.status in (404, 410):
            raise error(422, "not-found", f"{name}: {reference} is not on this server", name) from None
        raise


def search(repo: Repository, resource_type: str, params: list[tuple[str, str]], count: int = 100) -> list[dict]:
    """The first `count` matches of a search written as query parameters, under the caller's grant."""
    query = parse_query(resource_type, [*params, ("_total", "none")])
    return [stored.resource() for stored in repo.search(query, count=count).resources]


def every(repo: Repository, resource_type: str, params: list[tuple[str, str]], page: int = 1000) -> Iterator[dict]:
    """Every match of a search written as query parameters, page after page, under the caller's grant."""
    query = parse_query(resource_type, [*params, ("_total", "none")])
    cursor = None
    while True:
        found = repo.search(query, count=page, cursor=cursor)
        for stored in found.resources:
            yield stored.resource()
        cursor = found.next_cursor
        if cursor is None:
            return


def value_set_codes(terminology: StoredTerminology, url: str, needed_by: str) -> frozenset[tuple[str, str]]:
    """(system, code) of every member of the ValueSet `url`, expanded through the terminology kernel; a 500
    naming `needed_by` when the server holds no such ValueSet (stored, in profiles/ or in R4)."""
    value_set = terminology.value_set(url, None)
    if value_set is None:
        raise FhirError(500, [Issue("not-found", f"{needed_by} needs the ValueSet {url}, which this server does "
                                                 "not hold")])
    return frozenset((m.system, m.code) for m in expand(value_set, terminology).members)


def extension_parts(resource: dict, url: str) -> dict[str, dict]:
    """The parts of the resource's complex extension `url`, by their url (extensibility.html); empty without it."""
    for extension in resource.get("extension") or []:
        if extension.get("url") == url:
            return {part.get("url"): part for part in extension.get("extension") or [] if isinstance(part, dict)}
    return {}


def participation_status(organization: dict) -> str | None:
    """The practice's current program-participation status (invited | agreed | declined | withdrawn)."""
    return extension_parts(organization, PARTICIPATION_URL).get("status", {}).get("valueCode")


def member_practice(repo: Repository, patient: dict) -> dict | None:
    """The primary-care practice of a member: the Organization among `generalPractitioner`, or that of a
    PractitionerRole there (the PCP at the practice)."""
    for gp in patient.get("generalPractitioner") or []:
        target = gp.get("reference") if isinstance(gp, dict) else None
        if not isinstance(target, str):
            continue
        resource_type, _, id = target.partition("/")
        try:
            if resource_type == "Organization":
                return repo.read("Organization", id).resource()
            if resource_type == "PractitionerRole":
                role = repo.read("PractitionerRole", id).resource()
                organization = (role.get("organization") or {}).get("reference", "")
                if organization.startswith("Organization/"):
                    return repo.read("Organization", organization.partition("/")[2]).resource()
        except FhirError:
            continue
    return None


def open_episodes(repo: Repository, patient_id: str) -> list[dict]:
    """The member's program EpisodeOfCare(s) that are not finished or cancelled."""
    return search(repo, "EpisodeOfCare", [("patient", f"Patient/{patient_id}"), ("status", ",".join(OPEN_EPISODE)),
                                          ("type", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")])
