"""A measure's evaluation as a MeasureReport (measurereport.html).

An evaluator hands back, for each group of the Measure, the references of the subjects in each population
(`Tally`), each subject's stratum, and the resources that decided each subject's membership. This module
turns that into the MeasureReport of the type asked for: `individual` for one member, `summary` with counts
and scores, `subject-list` with the subjects of each population in contained Lists
(measurereport.html#subject-list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from fhir_server.care.measures.subjects import NO_STRATUM, Scope
from fhir_server.care.program import ProgramSettings, now
from fhir_server.store.repository import Repository

POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
# The order populations are listed in (measure-population codes, R4).
POPULATIONS = ("initial-population", "denominator", "denominator-exclusion", "denominator-exception", "numerator",
               "numerator-exclusion", "measure-population", "measure-population-exclusion", "measure-observation")


@dataclass(frozen=True)
class Period:
    """The measurement period, both days included."""

    start: date
    end: date


@dataclass(frozen=True)
class Evaluation:
    """What an evaluator is given: the store under the caller's grant, the period, the members in scope,
    and the deployment's program settings."""

    repo: Repository
    period: Period
    members: Scope
    program: ProgramSettings


@dataclass
class Tally:
    """One group's result: the subjects in each population, each subject's stratum, and the evidence."""

    populations: dict[str, set[str]]
    strata: dict[str, str] = field(default_factory=dict)  # subject reference -> stratum (a reference, or none)
    evidence: dict[str, set[str]] = field(default_factory=dict)  # subject reference -> resources evaluated

    def add_evidence(self, subject: str, *references: str | None) -> None:
        self.evidence.setdefault(subject, set()).update(r for r in references if r)


def measure_report(measure: dict, period: Period, tallies: list[Tally], report_type: str,
                   subject: str | None) -> dict:
    """The MeasureReport of `measure` for `period`, one group per tally (the Measure's groups, in order)."""
    report: dict = {"resourceType": "MeasureReport", "status": "complete", "type": report_type,
                    "measure": measure["url"] + (f"|{measure['version']}" if measure.get("version") else ""),
                    "date": now(), "period": {"start": period.start.isoformat(), "end": period.end.isoformat()}}
    if subject is not None:
        report["subject"] = {"reference": subject}
    if measure.get("improvementNotation"):
        report["improvementNotation"] = measure["improvementNotation"]
    contained: list[dict] = []
    report["group"] = [_group(definition, tally, report_type, index, contained)
                       for index, (definition, tally) in enumerate(zip(measure["group"], tallies, strict=True))]
    if report_type == "individual":
        evaluated = sorted({r for tally in tallies for r in tally.evidence.get(subject or "", ())})
        if evaluated:
            report["evaluatedResource"] = [{"reference": r} for r in evaluated]
    if contained:
        report["contained"] = contained
    return report


def proportion(tally: Tally, members: set[str] | None = None) -> Decimal | None:
    """numerator / (denominator - exclusions - exceptions) over `members` (all when None); None when nothing
    is left to divide by (measure-scoring#proportion)."""
    def count(code: str) -> int:
        found = tally.populations.get(code, set())
        return len(found if members is None else found & members)

    denominator = count("denominator") - count("denominator-exclusion") - count("denominator-exception")
    if denominator <= 0:
        return None
    numerator = count("numerator") - count("numerator-exclusion")
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), ROUND_HALF_EVEN)


def _group(definition: dict, tally: Tally, report_type: str, index: int, contained: list[dict]) -> dict:
    codes = [p["code"]["coding"][0]["code"] for p in definition["population"]]
    group: dict = {}
    if definition.get("id"):
        group["id"] = definition["id"]
    if definition.get("code"):
        group["code"] = definition["code"]
    group["population"] = []
    for code in codes:
        subjects = sorted(tally.populations.get(code, set()))
        population = {"code": _population_code(code), "count": len(subjects)}
        if report_type == "subject-list":
            list_id = f"group{index + 1}-{code}"
            listed = {"resourceType": "List", "id": list_id, "status": "current", "mode": "snapshot",
                      "title": f"{definition.get('id') or f'group {index + 1}'}: {code}"}
            if subjects:  # an empty List has no entry array (list.html: emptyReason may say why)
                listed["entry"] = [{"item": {"reference": s}} for s in subjects]
            else:
                listed["emptyReason"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                                                     "code": "nilknown"}]}
            contained.append(listed)
            population["subjectResults"] = {"reference": f"#{list_id}"}
        group["population"].append(population)
    if "denominator" in codes:
        score = proportion(tally)
        if score is not None:
            group["measureScore"] = {"value": score}
    if definition.get("stratifier") and report_type != "individual":
        group["stratifier"] = [_stratifier(stratifier, tally, codes) for stratifier in definition["stratifier"]]
    return group


def _stratifier(definition: dict, tally: Tally, codes: list[str]) -> dict:
    """One stratum per value the subjects of the initial population have, in the order of the values."""
    subjects = set().union(*tally.populations.values()) if tally.populations else set()
    values = sorted({tally.strata.get(s, NO_STRATUM) for s in subjects})
    strata = []
    for value in values:
        members = {s for s in subjects if tally.strata.get(s, NO_STRATUM) == value}
        stratum: dict = {"value": {"text": value},
                         "population": [{"code": _population_code(code),
                                         "count": len(tally.populations.get(code, set()) & members)}
                                        for code in codes]}
        if "denominator" in codes:
            score = proportion(tally, members)
            if score is not None:
                stratum["measureScore"] = {"value": score}
        strata.append(stratum)
    return {"code": [definition["code"]], **({"stratum": strata} if strata else {})}


def _population_code(code: str) -> dict:
    return {"coding": [{"system": POPULATION_SYSTEM, "code": code}]}
