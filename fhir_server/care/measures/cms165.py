"""CMS165 Controlling High Blood Pressure.

The specification's criteria, summarised in our words, each where it is evaluated below:
- initial population: members aged 18 to 85 at the end of the period, with essential hypertension that
  began before the period's first six months were over and lasted into the period, and a visit in it;
- denominator: the initial population;
- denominator exclusions: those CMS122 has too (hospice, palliative care, frailty with advanced illness);
  end-stage renal disease, chronic kidney disease stage 5, dialysis or a kidney transplant before the period
  ends; pregnancy in the period; and frailty alone from the age of 81;
- numerator: the last blood pressure of the period is below 140/90. When a day has several readings, the
  lowest systolic and the lowest diastolic of that day stand for it; readings taken in an emergency
  department or during an inpatient stay do not count; a day without both a systolic and a diastolic
  reading cannot show control.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from fhir_server.care.candidates import months_before
from fhir_server.care.measures.clinical import (
    ACUTE_CLASSES,
    Member,
    read_members,
    value_set,
)
from fhir_server.care.measures.exclusions import Exclusions
from fhir_server.care.measures.report import Evaluation, Period, Tally
from fhir_server.care.measures.subjects import NO_STRATUM
from fhir_server.care.program import codings, day_of, effective, quantity
from fhir_server.store.terminology import StoredTerminology

URL = "https://careweave.example.org/fhir/Measure/cms165"
LOINC = "http://loinc.org"
BP_PANELS = ("85354-9", "55284-4")  # the blood pressure panel, and the older systolic-and-diastolic one
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
LIMITS = (Decimal(140), Decimal(90))  # mmHg: controlled is below both
AGES = (18, 85)
FRAIL_ALONE_AGE = 81


def evaluate(evaluation: Evaluation) -> list[Tally]:
    repo, period, members = evaluation.repo, evaluation.period, evaluation.members
    terminology = StoredTerminology(repo)
    exclusions = Exclusions.load(terminology)
    kidney, pregnancy = value_set(terminology, "cw-kidney-failure"), value_set(terminology, "cw-pregnancy")
    found = read_members(repo, members, period, value_set(terminology, "cw-essential-hypertension"),
                         exclusions.codes() | kidney | pregnancy,
                         tuple(f"{LOINC}|{c}" for c in (*BP_PANELS, SYSTOLIC, DIASTOLIC)))
    six_months_in = months_before(period.start, -6)  # the day after the first six months: diagnoses begin before it
    tally = Tally({code: set() for code in ("initial-population", "denominator", "denominator-exclusion",
                                            "numerator")})
    for member in found:
        age = member.age_on(period.end)
        began_early = [e.reference for e in member.qualifying if e.start is None or e.start < six_months_in]
        if age is None or not AGES[0] <= age <= AGES[1] or not member.visits or not began_early:
            continue
        subject = member.reference
        tally.strata[subject] = member.practice or NO_STRATUM
        tally.add_evidence(subject, min(began_early), member.visits[0])
        tally.populations["initial-population"].add(subject)
        tally.populations["denominator"].add(subject)
        excluded = (exclusions.excluded(member, period)
                    or member.evidence(kidney, date.min, period.end)
                    or member.evidence(pregnancy, period.start, period.end)
                    or _frail_alone(member, period, exclusions))
        if excluded:
            tally.populations["denominator-exclusion"].add(subject)
            tally.add_evidence(subject, excluded)
            continue
        readings = _last_day(member)
        if readings is not None:
            systolic, diastolic, references = readings
            tally.add_evidence(subject, *references)
            if systolic is not None and diastolic is not None and systolic < LIMITS[0] and diastolic < LIMITS[1]:
                tally.populations["numerator"].add(subject)
    return [tally]


def _frail_alone(member: Member, period: Period, exclusions: Exclusions) -> str | None:
    age = member.age_on(period.end)
    return member.evidence(exclusions.frailty, period.start, period.end) if age and age >= FRAIL_ALONE_AGE else None


def _last_day(member: Member) -> tuple[Decimal | None, Decimal | None, list[str]] | None:
    """The lowest systolic and lowest diastolic of the last day with a reading outside acute care, and the
    Observations of that day."""
    by_day: dict[date, list[tuple[str, Decimal, str]]] = defaultdict(list)  # day -> (code, value, reference)
    for observation in member.results:
        day = day_of(effective(observation))
        encounter = (observation.get("encounter") or {}).get("reference")
        if day is None or member.encounter_class.get(encounter) in ACUTE_CLASSES:
            continue
        reference = f"Observation/{observation['id']}"
        parts = [observation] + list(observation.get("component") or [])
        for part in parts:
            value = quantity(part)
            for system, code in codings(part.get("code")):
                if system == LOINC and code in (SYSTOLIC, DIASTOLIC) and value is not None:
                    by_day[day].append((code, value, reference))
    if not by_day:
        return None
    readings = by_day[max(by_day)]
    systolic = min((v for c, v, _ in readings if c == SYSTOLIC), default=None)
    diastolic = min((v for c, v, _ in readings if c == DIASTOLIC), default=None)
    return systolic, diastolic, sorted({r for _, _, r in readings})

