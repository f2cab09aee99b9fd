"""Members who qualify for the chronic-care coordination program, ranked (`Patient/$care-candidates`).

The rules are data: knowledge/candidate_rules.json, or the file FHIR_CANDIDATE_RULES names (docs/program.md).
They hold the chronic condition groups, each a ValueSet in profiles/ expanded once per call through the
terminology kernel; the Charlson comorbidity index (Quan 2005's ICD-10 categories as code prefixes, Quan
2011's weights); hospital use in the look-back months; polypharmacy; a recent discharge; the score's
weights; what qualifies; and the exclusions. A member qualifies when one of the qualification alternatives
holds; the score is the sum of each measure times its weight, counted once the measure reaches its `from`,
and each measure that counts is one reason. Members already enrolled, who declined in the last months, in
hospice care, or deceased are left out.

Records are read in bulk, one search per type for a batch of members, through the Repository protocol and
so under the caller's grant: a coordinator ranks only the members they may read. Dates are compared as the
calendar days written in the records.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from fhir_server.care.outreach import OUTCOME_SYSTEM, OUTREACH_CALL, call_party
from fhir_server.care.program import (
    BASE,
    DISENROLLMENT_SYSTEM,
    DISENROLLMENT_URL,
    OPEN_EPISODE,
    PROGRAM,
    PROGRAM_SYSTEM,
    codings,
    day_of,
    every,
    read_named,
    value_set_codes,
)
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.store.repository import Repository
from fhir_server.store.terminology import StoredTerminology

RULES_FILE = Path(__file__).with_name("knowledge") / "candidate_rules.json"
REASON_SYSTEM = BASE + "CodeSystem/cw-candidate-reason"
# The measures a member is scored on, in the order their reasons are given, with the reason's code.
MEASURES = {
    "chronicConditions": ("chronic-conditions", "Chronic conditions"),
    "inpatientStays": ("inpatient-stays", "Inpatient stays"),
    "emergencyVisits": ("emergency-visits", "Emergency visits"),
    "recentDischarge": ("recent-discharge", "Recent discharge"),
    "activeMedications": ("polypharmacy", "Polypharmacy"),
    "charlsonIndex": ("charlson-index", "Charlson comorbidity index"),
}
_BATCH = 400  # members per search, as OR-ed patient references
_CLINICAL_ACTIVE = frozenset({"active", "recurrence", "relapse"})  # condition-clinical codes of a live problem
_NOT_A_CONDITION = frozenset({"refuted", "entered-in-error"})  # condition-ver-status
_ENCOUNTER_DID_NOT_HAPPEN = frozenset({"planned", "cancelled", "entered-in-error"})
_ENCOUNTER_OPEN = ("arrived", "triaged", "in-progress", "onleave")  # encounter-status of a stay going on
_EPISODE_ENDED = frozenset({"finished", "cancelled"})


# -- the rules ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Weighted:
    """A measure's points per unit, counted once the measure reaches `start` (the rules' `from`)."""

    weight: Decimal
    start: int


@dataclass(frozen=True)
class Group:
    code: str
    display: str
    value_set: str


@dataclass(frozen=True)
class CharlsonCategory:
    code: str
    weight: int
    prefixes: tuple[str, ...]  # ICD-10 code prefixes without the dot
    snomed: frozenset[str]
    supersedes: frozenset[str]


@dataclass(frozen=True)
class Rules:
    groups: tuple[Group, ...]
    lookback_months: int
    inpatient_classes: frozenset[str]
    emergency_classes: frozenset[str]
    discharge_days: int
    icd10_systems: frozenset[str]
    categories: tuple[CharlsonCategory, ...]
    qualification: tuple[dict[str, int], ...]
    declined_months: int
    hospice_value_set: str
    hospice_discharge_months: int
    scoring: dict[str, Weighted]  # by measure name


def load_rules(path: str | None = None) -> Rules:
    """The rules in `path`, or the shipped ones; read once per process. The app reads them as it starts
    (app.py), so a file that cannot be used stops the start; here it is a 500 naming the file, since it is
    the server's configuration that is wrong, not the request."""
    return _load(str(path or RULES_FILE))


@lru_cache(maxsize=4)
def _load(path: str) -> Rules:
    try:
        return _rules(json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise FhirError(500, [Issue("exception", f"the candidate rules in {path} cannot be used "
                                                 f"({type(exc).__name__}: {exc})")]) from None


def _rules(raw: dict) -> Rules:
    chronic, use, discharge = raw["chronicConditions"], raw["utilisation"], raw["recentDischarge"]
    medications, charlson, exclusions = raw["polypharmacy"], raw["charlson"], raw["exclusions"]
    qualification = tuple({str(k): int(v) for k, v in alternative.items()}
                          for alternative in raw["qualification"]["anyOf"])
    unknown = {k for alternative in qualification for k in alternative} - set(MEASURES)
    if unknown or not qualification:
        raise ValueError(f"qualification.anyOf takes minimums of {', '.join(MEASURES)}; "
                         f"not {', '.join(sorted(unknown)) or 'an empty list'}")
    return Rules(
        groups=tuple(Group(str(g["code"]), str(g["display"]), str(g["valueSet"])) for g in chronic["groups"]),
        lookback_months=int(use["lookbackMonths"]),
        inpatient_classes=frozenset(use["inpatientClasses"]),
        emergency_classes=frozenset(use["emergencyClasses"]),
        discharge_days=int(discharge["withinDays"]),
        icd10_systems=frozenset(charlson["icd10Systems"]),
        categories=tuple(CharlsonCategory(str(c["code"]), int(c["weight"]),
                                          tuple(p.replace(".", "") for p in c["icd10"]), frozenset(c["snomed"]),
                                          frozenset(c.get("supersedes", ()))) for c in charlson["categories"]),
        qualification=qualification,
        declined_months=int(exclusions["declinedWithinMonths"]),
        hospice_value_set=str(exclusions["hospiceValueSet"]),
        hospice_discharge_months=int(exclusions["hospiceDischargeWithinMonths"]),
        scoring={
            "chronicConditions": _weighted(chronic),
            "inpatientStays": _weighted(use["inpatientStays"]),
            "emergencyVisits": _weighted(use["emergencyVisits"]),
            "recentDischarge": _weighted(discharge),
            "activeMedications": _weighted(medications),
            "charlsonIndex": _weighted(charlson),
        },
    )


def _weighted(section: dict) -> Weighted:
    return Weighted(Decimal(str(section["weight"])), int(section.get("from", 1)))


# -- the answer ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    code: str
    display: str
    text: str


@dataclass(frozen=True)
class Candidate:
    patient: str  # Patient/id
    name: str | None
    score: Decimal
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Ranking:
    candidates: list[Candidate]  # the first `count`, best first
    qualified: int  # how many members qualify in all


def find_candidates(repo: Repository, rules: Rules, as_of: date, practice: str | None = None,
                    count: int = 50) -> Ranking:
    """The members who qualify on `as_of` (all look-back windows end that day), best score first, ties by
    Patient id; only the members of `practice` (an Organization reference) when given."""
    members = {id: patient for id, patient in _members(repo, practice) if not _deceased(patient)}
    terminology = StoredTerminology(repo)
    group_of: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, group in enumerate(rules.groups):
        for key in value_set_codes(terminology, group.value_set, "the candidate rules"):
            group_of[key].append(index)
    hospice = value_set_codes(terminology, rules.hospice_value_set, "the candidate rules")
    records = _records(repo, rules, as_of, list(members), hospice)
    qualified = []
    for id, patient in members.items():
        candidate = _assess(rules, as_of, id, patient, records[id], group_of, hospice)
        if candidate is not None:
            qualified.append(candidate)
    qualified.sort(key=lambda c: (-c.score, c.patient))
    return Ranking(qualified[:count], len(qualified))


# -- reading in bulk ----------------------------------------------------------------------------------------



def _members(repo: Repository, practice: str | None) -> Iterator[tuple[str, dict]]:
    """Every Patient the caller may read; with `practice`, those whose generalPractitioner is the practice
    or a PractitionerRole at it (as care/program.py's member_practice reads it)."""
    if practice is None:
        yield from ((p["id"], p) for p in every(repo, "Patient", []))
        return
    organization = read_named(repo, practice, ("Organization",), "practice")
    reference = f"Organization/{organization['id']}"
    roles = [f"PractitionerRole/{r['id']}" for r in every(repo, "PractitionerRole", [("organization", reference)])]
    seen = set()
    for batch in _batches([reference, *roles]):
        for patient in every(repo, "Patient", [("general-practitioner", ",".join(batch))]):
            if patient["id"] not in seen:
                seen.add(patient["id"])
                yield patient["id"], patient


def _deceased(patient: dict) -> bool:
    return patient.get("deceasedBoolean") is True or "deceasedDateTime" in patient


@dataclass
class _Record:
    """What one member's assessment reads."""

    conditions: list[dict] = field(default_factory=list)
    encounters: list[dict] = field(default_factory=list)
    medications: list[dict] = field(default_factory=list)
    episodes: list[dict] = field(default_factory=list)
    calls: list[dict] = field(default_factory=list)
    hospice_requests: list[dict] = field(default_factory=list)


def _records(repo: Repository, rules: Rules, as_of: date, ids: list[str],
             hospice: frozenset[tuple[str, str]]) -> dict[str, _Record]:
    """The members' records, one search per type for each batch of members."""
    records: dict[str, _Record] = defaultdict(_Record)
    since = min(months_before(as_of, rules.lookback_months), months_before(as_of, rules.hospice_discharge_months),
                as_of - timedelta(days=rules.discharge_days))
    declined_since = months_before(as_of, rules.declined_months)
    hospice_codes = ",".join(f"{system}|{code}" for system, code in sorted(hospice))
    call = f"{OUTREACH_CALL['system']}|{OUTREACH_CALL['code']}"
    for batch in _batches([f"Patient/{id}" for id in ids]):
        patients = ("patient", ",".join(batch))
        searches = [
            ("Condition", "subject", "conditions", []),
            ("Encounter", "subject", "encounters", [("date", f"ge{since}"), ("date", f"le{as_of}")]),
            ("Encounter", "subject", "encounters", [("status", ",".join(_ENCOUNTER_OPEN)), ("type", hospice_codes)]),
            ("MedicationRequest", "subject", "medications", [("status", "active")]),
            ("MedicationStatement", "subject", "medications", [("status", "active")]),
            ("EpisodeOfCare", "patient", "episodes", []),
            ("Communication", "subject", "calls", [("category", call), ("status", "completed"),
                                                   ("sent", f"ge{declined_since}")]),
            ("ServiceRequest", "subject", "hospice_requests", [("status", "active"), ("code", hospice_codes)]),
        ]
        for resource_type, subject, kept, params in searches:
            for resource in every(repo, resource_type, [patients, *params]):
                owner = _patient_id(resource.get(subject))
                if owner is not None:
                    getattr(records[owner], kept).append(resource)
    return records


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]


def _patient_id(reference: object) -> str | None:
    target = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(target, str) or "Patient/" not in target:
        return None
    return target.rsplit("Patient/", 1)[1]


# -- one member ---------------------------------------------------------------------------------------------


def _assess(rules: Rules, as_of: date, id: str, patient: dict, record: _Record,
            group_of: dict[tuple[str, str], list[int]], hospice: frozenset[tuple[str, str]]) -> Candidate | None:
    """The member as a candidate, or None when they are excluded or do not qualify."""
    conditions = [c for c in record.conditions if _active(c, as_of)]
    if _enrolled(record) or _declined(rules, as_of, record) or _in_hospice(rules, as_of, record, conditions, hospice):
        return None
    groups = sorted({i for c in conditions for key in codings(c.get("code")) for i in group_of.get(key, ())})
    stays, visits, discharged = _hospital_use(rules, as_of, record.encounters)
    medications = _medications(as_of, record.medications)
    measures = {"chronicConditions": len(groups), "inpatientStays": stays, "emergencyVisits": visits,
                "recentDischarge": int(discharged is not None), "activeMedications": len(medications),
                "charlsonIndex": _charlson(rules, conditions)}
    if not any(all(measures[name] >= least for name, least in alternative.items())
               for alternative in rules.qualification):
        return None
    texts = {
        "chronicConditions": f"{_counted(len(groups), 'chronic condition')}: "
                             + ", ".join(rules.groups[i].display for i in groups),
        "inpatientStays": f"{_counted(stays, 'inpatient stay')} in {rules.lookback_months} months",
        "emergencyVisits": f"{_counted(visits, 'emergency visit')} in {rules.lookback_months} months",
        "recentDischarge": "discharged from hospital " + (
            "today" if discharged == 0 else f"{_counted(discharged or 0, 'day')} ago"),
        "activeMedications": _counted(len(medications), "active medication"),
        "charlsonIndex": f"Charlson comorbidity index {measures['charlsonIndex']}",
    }
    score = Decimal(0)
    reasons = []
    for name, (code, display) in MEASURES.items():
        weighted = rules.scoring[name]
        if measures[name] >= max(weighted.start, 1):
            score += weighted.weight * measures[name]
            reasons.append(Reason(code, display, texts[name]))
    return Candidate(f"Patient/{id}", _name(patient), score, tuple(reasons))


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _active(condition: dict, as_of: date) -> bool:
    """A problem the member has on `as_of`: clinicalStatus active, recurrence or relapse, or none given and
    not abated; neither refuted nor entered in error; begun (onset, else recorded) by then."""
    verification = {c for _, c in codings(condition.get("verificationStatus"))}
    if verification & _NOT_A_CONDITION:
        return False
    began = day_of(condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start")
                   or condition.get("recordedDate"), partial=True)
    if began is not None and began > as_of:
        return False
    status = {c for _, c in codings(condition.get("clinicalStatus"))}
    if status:
        return bool(status & _CLINICAL_ACTIVE)
    return not any(key.startswith("abatement") for key in condition)


def _enrolled(record: _Record) -> bool:
    return any(e.get("status") in OPEN_EPISODE and _is_program(e) for e in record.episodes)


def _declined(rules: Rules, as_of: date, record: _Record) -> bool:
    """A program enrolment ended at the member's request, or an outreach call to the member they declined,
    within the months the rules give."""
    since = months_before(as_of, rules.declined_months)
    for episode in record.episodes:
        if episode.get("status") in _EPISODE_ENDED and _is_program(episode) and _within(
                day_of((episode.get("period") or {}).get("end"), partial=True), since, as_of):
            reasons = [e.get("valueCodeableConcept") for e in episode.get("extension") or []
                       if e.get("url") == DISENROLLMENT_URL]
            if any((DISENROLLMENT_SYSTEM, "member-request") in codings(r) for r in reasons):
                return True
    return any((OUTCOME_SYSTEM, "declined") in codings(call.get("statusReason"))
               and call_party(call) in (None, "member")
               and _within(day_of(call.get("sent"), partial=True), since, as_of)
               for call in record.calls)


def _in_hospice(rules: Rules, as_of: date, record: _Record, conditions: list[dict],
                hospice: frozenset[tuple[str, str]]) -> bool:
    """Hospice care going on: an active EpisodeOfCare, an open Encounter, an active ServiceRequest or an
    active Condition coded from the hospice ValueSet; or a discharge to hospice within the months given."""
    def coded(concepts: object) -> bool:
        return any(key in hospice for concept in (concepts if isinstance(concepts, list) else [concepts])
                   for key in codings(concept))

    since = months_before(as_of, rules.hospice_discharge_months)
    return (any(e.get("status") == "active" and coded(e.get("type")) for e in record.episodes)
            or any(e.get("status") in _ENCOUNTER_OPEN and coded(e.get("type")) for e in record.encounters)
            or any(coded(r.get("code")) for r in record.hospice_requests)
            or any(coded(c.get("code")) for c in conditions)
            or any(coded((e.get("hospitalization") or {}).get("dischargeDisposition"))
                   and _within(day_of((e.get("period") or {}).get("end"), partial=True), since, as_of)
                   for e in record.encounters))


def _hospital_use(rules: Rules, as_of: date, encounters: list[dict]) -> tuple[int, int, int | None]:
    """Inpatient stays and emergency visits in the look-back months, each on the day it ended (or began,
    while open); and the days since the latest discharge from an inpatient stay, if within the rules' days."""
    since = months_before(as_of, rules.lookback_months)
    stays, visits, discharged = set(), set(), None
    for encounter in encounters:
        if encounter.get("status") in _ENCOUNTER_DID_NOT_HAPPEN:
            continue
        period = encounter.get("period") or {}
        began, ended = day_of(period.get("start"), partial=True), day_of(period.get("end"), partial=True)
        if began is None or began > as_of:
            continue
        day = min(ended or began, as_of)
        kind = ((encounter.get("class") or {}).get("code"))
        inpatient = kind in rules.inpatient_classes
        if _within(day, since, as_of):
            if inpatient:
                stays.add(encounter["id"])
            elif kind in rules.emergency_classes:
                visits.add(encounter["id"])
        if inpatient and ended is not None and ended <= as_of and (as_of - ended).days <= rules.discharge_days:
            days = (as_of - ended).days
            discharged = days if discharged is None else min(discharged, days)
    return len(stays), len(visits), discharged


def _medications(as_of: date, requests: list[dict]) -> set[tuple[str | None, str]]:
    """The distinct medications of the active MedicationRequests and MedicationStatements that began by
    `as_of`: by the first coding of the medication's code, else its text or reference."""
    found = set()
    for resource in requests:
        began = day_of(resource.get("authoredOn") or resource.get("effectiveDateTime")
                       or (resource.get("effectivePeriod") or {}).get("start"), partial=True)
        if began is not None and began > as_of:
            continue
        concept = resource.get("medicationCodeableConcept")
        if isinstance(concept, dict):
            coded = codings(concept)
            key = coded[0] if coded else (None, str(concept.get("text")))
        else:
            key = (None, str((resource.get("medicationReference") or {}).get("reference")))
        found.add(key)
    return found


def _charlson(rules: Rules, conditions: list[dict]) -> int:
    """The Charlson comorbidity index: the weights of the categories the member's active conditions fall in,
    each once, without the categories a present one supersedes (Quan 2011)."""
    present = set()
    for condition in conditions:
        for system, code in codings(condition.get("code")):
            bare = code.replace(".", "")
            for category in rules.categories:
                if (system in rules.icd10_systems and bare.startswith(category.prefixes)) or (
                        system == "http://snomed.info/sct" and code in category.snomed):
                    present.add(category.code)
    superseded = {s for c in rules.categories if c.code in present for s in c.supersedes}
    return sum(c.weight for c in rules.categories if c.code in present - superseded)


# -- small readers ------------------------------------------------------------------------------------------



def _is_program(episode: dict) -> bool:
    return any((PROGRAM_SYSTEM, PROGRAM["code"]) in codings(t) for t in episode.get("type") or [])


def _name(patient: dict) -> str | None:
    for name in patient.get("name") or []:
        text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
        if text:
            return text
    return None




def _within(day: date | None, since: date, as_of: date) -> bool:
    """In the window that ends on `as_of` and began after `since`."""
    return day is not None and since < day <= as_of


def months_before(day: date, months: int) -> date:
    """The same day `months` calendar months earlier (the month's last day when it has fewer days)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))
