"""Evaluate a Measure for a period (measure-operation-evaluate-measure.html).

The Measure is the stored one with that id, else the one shipped in profiles/ (Measure-[id].json), so the
program's measures work on a server nobody has loaded them into. Its logic is found by the Measure's URL;
a stored Measure we have no logic for is a 422, since the server does not run CQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache

from fhir_server.care.measures import care_plans, cms50, cms122, cms165, enrolment, outreach
from fhir_server.care.measures.report import Evaluation, Period, Tally, measure_report
from fhir_server.care.measures.subjects import Scope
from fhir_server.care.program import ProgramSettings
from fhir_server.fhir.errors import FhirError, error
from fhir_server.fhir.search_parameters import PROFILES
from fhir_server.store.repository import Repository

EVALUATORS: dict[str, Callable[[Evaluation], list[Tally]]] = {
    cms122.URL: cms122.evaluate,
    cms165.URL: cms165.evaluate,
    cms50.URL: cms50.evaluate,
    enrolment.IDENTIFIED: enrolment.members_identified,
    enrolment.PRACTICES: enrolment.practices_participating,
    enrolment.ENROLLMENT: enrolment.enrollment_rate,
    care_plans.CARE_PLANS: care_plans.care_plans,
    care_plans.GOALS: care_plans.goals_met,
    outreach.URL: outreach.outreach,
}


@cache
def shipped() -> dict[str, dict]:
    """The program's Measures in profiles/, by id."""
    found = (json.loads(path.read_text()) for path in sorted(PROFILES.glob("Measure-*.json")))
    return {measure["id"]: measure for measure in found}


def find_measure(repo: Repository, id: str) -> dict:
    """The stored Measure `id`, else the shipped one; 404 when neither is there."""
    try:
        return repo.read("Measure", id).resource()
    except FhirError as exc:
        if exc.status == 404 and id in shipped():
            return shipped()[id]
        raise


def evaluate_measure(repo: Repository, program: ProgramSettings, measure: dict, period: Period, members: Scope,
                     report_type: str, subject: str | None) -> dict:
    """The MeasureReport of `measure` over the members in scope."""
    evaluator = EVALUATORS.get(str(measure.get("url", "")).partition("|")[0])
    if evaluator is None:
        raise error(422, "not-supported", f"Measure/{measure.get('id')} ({measure.get('url')}) has no logic on this "
                                          "server: it evaluates the program's measures only, and does not run CQL",
                    "Measure")
    tallies = evaluator(Evaluation(repo, period, members, program))
    return measure_report(measure, period, tallies, report_type, subject)
