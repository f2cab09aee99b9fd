"""CMS122 Diabetes: Glycemic Status Assessment Greater Than 9% (an inverse measure: lower is better).

The specification's criteria, summarised in our words, each where it is evaluated below:
- initial population: members aged 18 to 75 at the end of the period, with diabetes at some time in the
  period and a visit in it;
- denominator: the initial population;
- denominator exclusions: hospice, palliative care, frailty with advanced illness (care/measures/exclusions.py);
- numerator: the last glycemic status assessment (HbA1c, or glucose management indicator) of the period
  is above 9.0%, or has no result, or there was none in the period.
"""

from __future__ import annotations

from decimal import Decimal

from fhir_server.care.measures.clinical import Member, read_members, value_set
from fhir_server.care.measures.exclusions import Exclusions
from fhir_server.care.measures.report import Evaluation, Tally
from fhir_server.care.measures.subjects import NO_STRATUM
from fhir_server.care.program import effective, instant, quantity
from fhir_server.store.terminology import StoredTerminology

URL = "https://careweave.example.org/fhir/Measure/cms122"
LOINC = "http://loinc.org"
# HbA1c (three LOINC codes of haemoglobin A1c / total haemoglobin, in %) and the glucose management indicator.
GLYCEMIC_STATUS = ("4548-4", "17856-6", "4549-2", "97506-0")
POOR_CONTROL = Decimal(9)  # %: a last result above it is poor control
AGES = (18, 75)


def evaluate(evaluation: Evaluation) -> list[Tally]:
    repo, period, members = evaluation.repo, evaluation.period, evaluation.members
    terminology = StoredTerminology(repo)
    exclusions = Exclusions.load(terminology)
    found = read_members(repo, members, period, value_set(terminology, "cw-chronic-diabetes"), exclusions.codes(),
                         tuple(f"{LOINC}|{c}" for c in GLYCEMIC_STATUS))
    tally = Tally({code: set() for code in ("initial-population", "denominator", "denominator-exclusion",
                                            "numerator")})
    for member in found:
        age = member.age_on(period.end)
        if age is None or not AGES[0] <= age <= AGES[1] or not member.visits:
            continue
        subject = member.reference
        tally.strata[subject] = member.practice or NO_STRATUM
        tally.add_evidence(subject, min(e.reference for e in member.qualifying), member.visits[0])
        tally.populations["initial-population"].add(subject)
        tally.populations["denominator"].add(subject)
        excluded = exclusions.excluded(member, period)
        if excluded:
            tally.populations["denominator-exclusion"].add(subject)
            tally.add_evidence(subject, excluded)
            continue
        last = _last_assessment(member)
        if last is None or quantity(last) is None or quantity(last) > POOR_CONTROL:
            tally.populations["numerator"].add(subject)
        if last is not None:
            tally.add_evidence(subject, f"Observation/{last['id']}")
    return [tally]


def _last_assessment(member: Member) -> dict | None:
    """The member's last glycemic status result of the period, by its effective time (the id breaks ties)."""
    dated = [(instant(when), o["id"], o) for o in member.results if (when := effective(o))]
    return max(dated, key=lambda d: (d[0], d[1]))[2] if dated else None

