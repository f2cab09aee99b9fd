"""CMS50 Closing the Referral Loop: Receipt of Specialist Report, from the program's referral Tasks.

The specification's criteria, summarised in our words, each where it is evaluated below:
- initial population: members, of any age, with a visit in the period and a referral to another provider
  made in the period, early enough for the report to come back: by two months before the period ends
  (31 October for a calendar year);
- denominator: the initial population; there are no exclusions;
- numerator: the referring side received the report of the provider the member was referred to, for the
  member's first referral of the period, after the referral and by the end of the period.

A referral is a Task asking for a referral ServiceRequest to be fulfilled (care/referrals.py); it is made on
the ServiceRequest's authoredOn, else the Task's. Its loop is closed when the Task is completed and has an
output naming a DocumentReference or DiagnosticReport (the consult note or report), received on its date
(DocumentReference.date, DiagnosticReport.issued), else on the day the Task was last changed.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from fhir_server.care.candidates import months_before
from fhir_server.care.measures.clinical import encounters, is_visit
from fhir_server.care.measures.report import Evaluation, Period, Tally
from fhir_server.care.measures.subjects import NO_STRATUM, Practices, Scope, batches
from fhir_server.care.program import day_of, every
from fhir_server.care.referrals import TASK_CODES, is_referral_task
from fhir_server.store.repository import Repository

URL = "https://careweave.example.org/fhir/Measure/cms50"
REPORTS = ("DocumentReference", "DiagnosticReport")
_VOID = frozenset({"entered-in-error", "cancelled", "rejected", "draft"})


def evaluate(evaluation: Evaluation) -> list[Tally]:
    repo, period, members = evaluation.repo, evaluation.period, evaluation.members
    last_referral_day = months_before(period.end, 2)
    referrals = _referrals(repo, members, period, last_referral_day)
    tally = Tally({code: set() for code in ("initial-population", "denominator", "numerator")})
    if not referrals:
        return [tally]
    practices = Practices(repo)
    for batch in batches(sorted(referrals)):
        visits: dict[str, list[str]] = defaultdict(list)
        for encounter in encounters(repo, batch, period):
            if is_visit(encounter, period):
                visits[encounter["subject"]["reference"]].append(f"Encounter/{encounter['id']}")
        ids = ",".join(r.partition("/")[2] for r in batch)
        patients = {f"Patient/{p['id']}": p for p in every(repo, "Patient", [("_id", ids)])}
        received = _received(repo, [referrals[s][1] for s in batch if s in visits])
        for subject in batch:
            if subject not in visits or subject not in patients:
                continue
            made, task = referrals[subject]
            tally.strata[subject] = practices.of(patients[subject]) or NO_STRATUM
            tally.populations["initial-population"].add(subject)
            tally.populations["denominator"].add(subject)
            tally.add_evidence(subject, f"Task/{task['id']}", task["focus"]["reference"], min(visits[subject]))
            report = _closing_report(task, made, period.end, received)
            if report is not None:
                tally.populations["numerator"].add(subject)
                tally.add_evidence(subject, report)
    return [tally]


def _referrals(repo: Repository, members: Scope, period: Period, last_day: date) -> dict[str, tuple[date, dict]]:
    """Each member's first referral made in the period by `last_day`, with the day it was made."""
    tasks = [t for t in every(repo, "Task", [("code", f"{TASK_CODES}|fulfill")])
             if is_referral_task(t) and t.get("status") not in _VOID and _asks_for_a_request(t)
             and members.includes((t.get("for") or {}).get("reference"))]
    requests = {}
    focus = sorted({t["focus"]["reference"].partition("/")[2] for t in tasks})
    for batch in batches(focus):
        requests.update({r["id"]: r for r in every(repo, "ServiceRequest", [("_id", ",".join(batch))])})
    first: dict[str, tuple[date, dict]] = {}
    for task in tasks:
        request = requests.get(task["focus"]["reference"].partition("/")[2]) or {}
        if request.get("status") in ("entered-in-error", "revoked"):
            continue
        made = day_of(request.get("authoredOn")) or day_of(task.get("authoredOn"))
        subject = task["for"]["reference"]
        if made is None or not period.start <= made <= last_day:
            continue
        if subject not in first or (made, task["id"]) < (first[subject][0], first[subject][1]["id"]):
            first[subject] = (made, task)
    return first


def _asks_for_a_request(task: dict) -> bool:
    focus = (task.get("focus") or {}).get("reference")
    return isinstance(focus, str) and focus.startswith("ServiceRequest/")


def _received(repo: Repository, tasks: list[dict]) -> dict[str, date | None]:
    """The day each report the Tasks name as outputs was received, by reference."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for task in tasks:
        for output in task.get("output") or []:
            resource_type, _, id = str((output.get("valueReference") or {}).get("reference", "")).partition("/")
            if resource_type in REPORTS and id:
                wanted[resource_type].add(id)
    days: dict[str, date | None] = {}
    for resource_type, ids in wanted.items():
        for batch in batches(sorted(ids)):
            for report in every(repo, resource_type, [("_id", ",".join(batch))]):
                if report.get("status") not in ("entered-in-error", "cancelled", "superseded"):
                    days[f"{resource_type}/{report['id']}"] = day_of(report.get("date") or report.get("issued"))
    return days


def _closing_report(task: dict, made: date, end: date, received: dict[str, date | None]) -> str | None:
    """The report that closed the referral's loop in time, when one did."""
    if task.get("status") != "completed":
        return None
    for output in task.get("output") or []:
        reference = (output.get("valueReference") or {}).get("reference")
        if reference in received:
            day = received[reference] or day_of(task.get("lastModified"))
            if day is not None and made <= day <= end:
                return reference
    return None
