"""The clinical facts the eCQMs (CMS122, CMS165, CMS50) read about a member, read in bulk.

A measure first finds the members with its qualifying condition (one search by code over all members),
then reads, per batch of those members, what its criteria look at: encounters in the period, the results
it scores, and the conditions, procedures, encounters and medicines that exclude a member. Each of those
becomes an `Event`: the codes it carries and the days it covers, so an exclusion is a question of "any
event with a code of this value set overlapping these days". Dates are the calendar days written in the
records; everything is read through the Repository protocol, so under the caller's grant.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

from fhir_server.care.measures.report import Period
from fhir_server.care.measures.subjects import Practices, Scope, batches
from fhir_server.care.program import BASE, codings, day_of, every, value_set_codes
from fhir_server.store.repository import Repository
from fhir_server.store.terminology import StoredTerminology

Codes = frozenset[tuple[str | None, str]]
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Encounter classes of a visit the eCQMs count (office, home, telehealth). Their qualifying-encounter value sets
# are mostly CPT, which needs an AMA licence, so the class stands in for them: an ambulatory, home health or
# virtual encounter that took place.
VISIT_CLASSES = frozenset({"AMB", "HH", "VR"})
# Settings whose readings CMS165 leaves out: an emergency department or an inpatient stay.
ACUTE_CLASSES = frozenset({"EMER", "IMP", "ACUTE", "NONAC", "OBSENC"})
_NOT_HELD = frozenset({"cancelled", "entered-in-error", "planned"})
_NOT_A_CONDITION = frozenset({"refuted", "entered-in-error"})
_ENDED = frozenset({"inactive", "remission", "resolved"})
_KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge" / "ingredient_map.json"


def value_set(terminology: StoredTerminology, name: str) -> Codes:
    """(system, code) of every member of the program's ValueSet `name` (in profiles/)."""
    return value_set_codes(terminology, f"{BASE}ValueSet/{name}", "the measure")


@cache
def ingredients_of() -> dict[str, frozenset[str]]:
    """RxNorm ingredient codes of each RxNorm drug code (care/knowledge/ingredient_map.json)."""
    codes = json.loads(_KNOWLEDGE.read_text())["codes"]
    return {code: frozenset(i["rxcui"] for i in entry["ingredients"] if i.get("rxcui"))
            for code, entry in codes.items()}


@dataclass(frozen=True)
class Event:
    """A coded fact of the record and the days it covers (an open end runs on)."""

    start: date | None
    end: date | None
    codes: Codes
    reference: str

    def overlaps(self, first: date, last: date) -> bool:
        return (self.start is None or self.start <= last) and (self.end is None or self.end >= first)


@dataclass
class Member:
    reference: str
    patient: dict
    practice: str | None
    qualifying: list[Event] = field(default_factory=list)  # the measure's qualifying conditions
    events: list[Event] = field(default_factory=list)  # what may exclude the member
    visits: list[str] = field(default_factory=list)  # Encounter references of visits in the period
    encounter_class: dict[str, str] = field(default_factory=dict)  # Encounter reference -> class code
    results: list[dict] = field(default_factory=list)  # the measure's Observations in the period

    def age_on(self, day: date) -> int | None:
        born = day_of(self.patient.get("birthDate"))
        if born is None:
            return None
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    def evidence(self, codes: Codes, first: date, last: date) -> str | None:
        """The first event (by reference) with one of `codes` overlapping the days `first` to `last`."""
        return min((e.reference for e in self.events if e.codes & codes and e.overlaps(first, last)), default=None)


def read_members(repo: Repository, members: Scope, period: Period, qualifying: Codes, exclusions: Codes,
                 results: tuple[str, ...]) -> list[Member]:
    """The members in scope with a qualifying condition that overlaps the period, with their visits and
    results (Observations coded `system|code` in `results`) in the period, and the events coded from
    `exclusions` (conditions, procedures, encounter types and dispositions, medicine ingredients) up to the
    period's end; the measure asks which of those overlap the days its criteria name."""
    found = _qualifying(repo, members, qualifying, period)
    if not found:
        return []
    practices = Practices(repo)
    chosen: dict[str, Member] = {}
    for batch in batches(sorted(found)):
        ids = ",".join(r.partition("/")[2] for r in batch)
        for patient in every(repo, "Patient", [("_id", ids)]):
            reference = f"Patient/{patient['id']}"
            chosen[reference] = Member(reference, patient, practices.of(patient), found[reference])
    for batch in batches(sorted(chosen)):
        _read_batch(repo, {r: chosen[r] for r in batch}, period, exclusions, results)
    return [chosen[r] for r in sorted(chosen)]


def _qualifying(repo: Repository, members: Scope, codes: Codes, period: Period) -> dict[str, list[Event]]:
    found: dict[str, list[Event]] = defaultdict(list)
    params = [("code", _tokens(codes))]
    if members.patients is not None and len(members.patients) <= 100:
        params.append(("subject", ",".join(sorted(members.patients))))
    for condition in every(repo, "Condition", params):
        patient = (condition.get("subject") or {}).get("reference")
        event = _condition_event(condition)
        if members.includes(patient) and event is not None and event.overlaps(period.start, period.end):
            found[patient].append(event)
    return found


def _read_batch(repo: Repository, batch: dict[str, Member], period: Period, exclusions: Codes,
                results: tuple[str, ...]) -> None:
    subjects = ("subject", ",".join(batch))
    for encounter in encounters(repo, list(batch), period):
        member = batch[encounter["subject"]["reference"]]
        reference = f"Encounter/{encounter['id']}"
        kind = (encounter.get("class") or {}).get("code")
        member.encounter_class[reference] = kind
        window = encounter.get("period") or {}
        start, end = day_of(window.get("start")), day_of(window.get("end") or window.get("start"))
        if is_visit(encounter, period):
            member.visits.append(reference)
        coded = {k for concept in encounter.get("type") or [] for k in codings(concept)}
        coded |= set(codings((encounter.get("hospitalization") or {}).get("dischargeDisposition")))
        if coded & exclusions:
            member.events.append(Event(start, end, frozenset(coded), reference))
    if not exclusions:
        return
    tokens = _tokens(exclusions)
    for condition in every(repo, "Condition", [subjects, ("code", tokens)]):
        member, event = batch.get((condition.get("subject") or {}).get("reference")), _condition_event(condition)
        if member is not None and event is not None:
            member.events.append(event)
    for procedure in every(repo, "Procedure", [subjects, ("code", tokens), ("date", f"le{period.end}")]):
        member = batch.get((procedure.get("subject") or {}).get("reference"))
        if member is not None and procedure.get("status") not in ("entered-in-error", "not-done"):
            window = procedure.get("performedPeriod") or {}
            start = day_of(procedure.get("performedDateTime") or window.get("start"))
            end = day_of(procedure.get("performedDateTime") or window.get("end")) or start
            member.events.append(Event(start, end, frozenset(codings(procedure.get("code"))),
                                       f"Procedure/{procedure['id']}"))
    # A medicine is matched by its ingredients: the drug codes the ingredient map knows for them, and the
    # ingredient codes themselves (as an EHR may send them).
    ingredients = {code for system, code in exclusions if system == RXNORM}
    drugs = ingredients | {code for code, found in ingredients_of().items() if found & ingredients}
    if drugs:
        for request in every(repo, "MedicationRequest", [subjects, ("code", ",".join(f"{RXNORM}|{c}" for c in
                                                                                    sorted(drugs)))]):
            member = batch.get((request.get("subject") or {}).get("reference"))
            if member is not None and request.get("status") not in ("entered-in-error", "cancelled"):
                day = day_of(request.get("authoredOn"))
                found = {(RXNORM, i) for s, c in codings(request.get("medicationCodeableConcept")) if s == RXNORM
                         for i in {c} | ingredients_of().get(c, frozenset())}
                # An active prescription is taken from the day it was written on; any other, on that day.
                end = None if request.get("status") in ("active", "on-hold") else day
                member.events.append(Event(day, end, frozenset(found), f"MedicationRequest/{request['id']}"))
    if results:
        for observation in every(repo, "Observation", [subjects, ("code", ",".join(results)),
                                                        ("date", f"ge{period.start}"), ("date", f"le{period.end}")]):
            member = batch.get((observation.get("subject") or {}).get("reference"))
            if member is not None and observation.get("status") in ("final", "amended", "corrected"):
                member.results.append(observation)


def encounters(repo: Repository, patients: list[str], period: Period) -> list[dict]:
    """The encounters of `patients` (at most a batch) in the period that took place or are taking place."""
    found = every(repo, "Encounter", [("subject", ",".join(patients)), ("date", f"ge{period.start}"),
                                      ("date", f"le{period.end}")])
    return [e for e in found if e.get("status") not in _NOT_HELD
            and (e.get("subject") or {}).get("reference") in patients]


def is_visit(encounter: dict, period: Period) -> bool:
    """An ambulatory, home or virtual encounter that began in the period."""
    start = day_of((encounter.get("period") or {}).get("start"))
    return (encounter.get("class") or {}).get("code") in VISIT_CLASSES and start is not None \
        and period.start <= start <= period.end


def _condition_event(condition: dict) -> Event | None:
    """The days a condition covers: onset (else recorded) to abatement; a condition no longer active
    and without an abatement date covers its first day only. None when refuted or entered in error."""
    if {c for _, c in codings(condition.get("verificationStatus"))} & _NOT_A_CONDITION:
        return None
    onset = condition.get("onsetPeriod") or {}
    start = day_of(condition.get("onsetDateTime") or onset.get("start") or condition.get("recordedDate"))
    abatement = condition.get("abatementPeriod") or {}
    end = day_of(condition.get("abatementDateTime") or abatement.get("end") or abatement.get("start"))
    if end is None and {c for _, c in codings(condition.get("clinicalStatus"))} & _ENDED:
        end = start
    return Event(start, end, frozenset(codings(condition.get("code"))), f"Condition/{condition['id']}")


def _tokens(codes: Codes) -> str:
    return ",".join(f"{system}|{code}" for system, code in sorted(codes, key=lambda c: (c[0] or "", c[1])))

