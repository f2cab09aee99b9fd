"""Measure/[id]/$evaluate-measure (measure-operation-evaluate-measure.html) for the program's Measures;
the logic is in care/measures/.

R4's reportType codes are subject, subject-list and population; the names of the MeasureReport types they
produce (individual, subject-list, summary) are taken as well. Without a reportType, a Patient subject gets
an individual report and anything else a summary. `practice` (an Organization) is the program's own input:
it limits the evaluation to that practice's members, as `practitioner` does to a PCP's.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs
from fhir_server.care.measures.evaluate import evaluate_measure, find_measure
from fhir_server.care.measures.report import Period
from fhir_server.care.measures.subjects import scope
from fhir_server.fhir.errors import bad_request

DECLARED = frozenset({"periodStart", "periodEnd", "reportType", "subject", "practitioner", "practice",
                      "lastReceivedOn"})
REPORT_TYPES = {"subject": "individual", "individual": "individual", "subject-list": "subject-list",
                "population": "summary", "summary": "summary"}
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def evaluate_measure_operation(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    inputs = Inputs(req, DECLARED, unsupported=frozenset({"lastReceivedOn"}))
    period = Period(_day(inputs.text("periodStart"), "periodStart", first=True),
                    _day(inputs.text("periodEnd"), "periodEnd", first=False))
    if period.end < period.start:
        raise bad_request(f"periodEnd ({period.end}) is before periodStart ({period.start})", "periodEnd")
    subject = inputs.reference("subject")
    asked = inputs.text("reportType")
    if asked is not None and asked not in REPORT_TYPES:
        raise bad_request(f"reportType is one of subject, subject-list or population, not {asked!r}", "reportType")
    report_type = REPORT_TYPES[asked] if asked else (
        "individual" if subject is not None and subject.startswith("Patient/") else "summary")
    if report_type == "individual" and (subject is None or not subject.startswith("Patient/")):
        raise bad_request("an individual report is for one subject: give subject=Patient/[id]", "subject")
    measure = find_measure(ctx.repo, id)
    members = scope(ctx.repo, subject, inputs.reference("practice"), inputs.reference("practitioner"))
    report = evaluate_measure(ctx.repo, ctx.program, measure, period, members, report_type,
                              subject if report_type == "individual" else None)
    return FhirResponse(200, report, interaction="operation", resource_type="Measure")


def _day(text: str | None, name: str, first: bool) -> date:
    """A period bound: a date, of which a year or month stands for its first day (periodStart) or its last
    (periodEnd)."""
    if text is None:
        raise bad_request(f"{name} is required", name)
    matched = _DATE.fullmatch(text)
    try:
        if matched is None:
            raise ValueError
        year, month, day = matched.groups()
        if day:
            return date(int(year), int(month), int(day))
        if month:
            return date(int(year), int(month), 1 if first else calendar.monthrange(int(year), int(month))[1])
        return date(int(year), 1, 1) if first else date(int(year), 12, 31)
    except ValueError:
        raise bad_request(f"{name} is a date (YYYY, YYYY-MM or YYYY-MM-DD), not {text!r}", name) from None
