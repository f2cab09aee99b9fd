"""The report for the PCP office record (`Patient/[id]/$pcp-report`, docs/program.md).

One to two pages, generated from the record under the caller's grant: the member's story (age, key problems
with their onset, the last 12 months' visits, what changed since the last report), the program care plan
with its goals' progress and the barriers, the medication review's alerts (computed, not persisted) with
what to do, the open referrals, the care gaps, and the coordinator's contact. Each call stores it as a FHIR
document (documents.html: a Bundle of type document whose first entry is a Composition, with every resource
the sections cite, so that it stands alone) and a DocumentReference (LOINC 18776-5) holding the PDF and
pointing at the Bundle, ready for the exchange with the PCP's EHR. "What changed" compares the record with
the document of the member's last report made here (the DocumentReference whose masterIdentifier is ours).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import date

from fhir_server.care.candidates import Rules
from fhir_server.care.pcp_report_facts import Facts, Previous, Report, active, name_of
from fhir_server.care.pcp_report_html import narrative
from fhir_server.care.pcp_report_html import render as render_html
from fhir_server.care.pcp_report_pdf import render as render_pdf
from fhir_server.care.pcp_report_sections import alerts, care_plan, contact, gaps, referrals
from fhir_server.care.pcp_report_story import story
from fhir_server.care.program import BASE, PROGRAM, now, search
from fhir_server.fhir.errors import FhirError
from fhir_server.store.repository import Repository, StoredResource

LOINC = "http://loinc.org"
FHIR_JSON = "application/fhir+json"
REPORT_TYPE = {"system": LOINC, "code": "18776-5", "display": "Plan of care note"}
MEMBER_ID = BASE + "sid/member-id"  # the health plan's member number (cw-member-patient)
# The document identifier (Bundle.identifier, DocumentReference.masterIdentifier) of the reports made here.
REPORT_SYSTEM = BASE + "sid/pcp-report"
TITLE = "Primary care report"
FOOTER = "Made by CareWeave from the member's record for the PCP office; not a substitute for the chart. Written"
# The author when the member has no coordinator (not enrolled): the program, by name (Reference.display).
PROGRAM_AUTHOR = {"display": "CareWeave chronic-care coordination program"}


@dataclass(frozen=True)
class Written:
    report: Report
    bundle: dict  # the stored document Bundle
    document_reference: StoredResource
    pdf: bytes


def write_report(repo: Repository, patient_id: str, base_url: str, rules: Rules) -> Written:
    """Gather, compose and store the member's report: its document Bundle, then its DocumentReference."""
    member = f"Patient/{patient_id}"
    patient = repo.read("Patient", patient_id).resource()
    written_at = now()
    as_of = date.fromisoformat(written_at[:10])
    conditions = [c for c in search(repo, "Condition", [("patient", member)], count=1000) if active(c, as_of)]
    facts = Facts(member, patient, as_of, _previous(repo, member), conditions)
    facts.cite(patient)
    # The story comes first in the report but is written last: it tells what the other sections found new.
    later = (care_plan(repo, facts), alerts(repo, facts), referrals(repo, facts), gaps(repo, facts),
             contact(repo, facts))
    report = Report(f"{TITLE}: {name_of(patient)}", _heading(patient, facts.as_of), written_at,
                    (story(repo, facts, rules), *later))
    author = {"reference": facts.coordinator} if facts.coordinator else PROGRAM_AUTHOR
    identifier = {"system": REPORT_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"}
    bundle = repo.create(_document(report, facts, author, identifier, base_url))[0]
    rendered = pdf(report)
    document = repo.create(_document_reference(report, facts, author, identifier, bundle.reference, rendered))[0]
    return Written(report, bundle.resource(), document, rendered)


def _previous(repo: Repository, member: str) -> Previous | None:
    """The last report made here for the member, from the document its DocumentReference points at."""
    # Two reports may share a date to the second; the later write is the later report.
    for reference in search(repo, "DocumentReference", [("patient", member), ("type", f"{LOINC}|{REPORT_TYPE['code']}"),
                                                        ("_sort", "-date,-_lastUpdated")], count=20):
        if (reference.get("masterIdentifier") or {}).get("system") != REPORT_SYSTEM:
            continue  # a care-plan note from elsewhere: not ours to compare with
        target = next((c["attachment"].get("url", "") for c in reference.get("content") or []
                       if c.get("attachment", {}).get("contentType") == FHIR_JSON), "")
        try:
            document = repo.read("Bundle", target.partition("/")[2]).resource() if target.startswith("Bundle/") \
                else None
        except FhirError:
            document = None  # gone or not readable: what it cited is unknown, so all on record counts as new
        resources = [e.get("resource") or {} for e in (document or {}).get("entry") or []]
        return Previous(reference.get("date") or "", {
            f"{r['resourceType']}/{r['id']}": r for r in resources if "id" in r and "resourceType" in r},
            frozenset(i.get("value") for r in resources if r.get("resourceType") == "DetectedIssue"
                      for i in r.get("identifier") or []))
    return None


def _heading(patient: dict, as_of: date) -> str:
    """Who the report is about, in one line: birth date, gender, the first identifier, and the report's day."""
    parts = [f"born {patient['birthDate']}" if patient.get("birthDate") else "birth date unknown",
             patient.get("gender", "gender unknown")]
    parts += [f"member id {i['value']}" for i in patient.get("identifier") or []
              if i.get("system") == MEMBER_ID and i.get("value")][:1]
    return ", ".join([*parts, f"report of {as_of.isoformat()}"])


# -- the document and its DocumentReference -----------------------------------------------------------------


def _document(report: Report, facts: Facts, author: dict, identifier: dict, base_url: str) -> dict:
    """The FHIR document (documents.html): Composition first, then each resource it cites, with full URLs.
    The computed alerts have no id on the server, so they travel as urn:uuid entries."""
    local = {r: f"urn:uuid:{uuid.uuid4()}" for r in facts.cited if r.startswith("DetectedIssue/")}

    def url(reference: str) -> str:
        return local.get(reference) or f"{base_url.rstrip('/')}/{reference}"

    composition = {
        "resourceType": "Composition", "id": "report", "status": "final",
        "type": {"coding": [REPORT_TYPE], "text": TITLE}, "category": [{"coding": [PROGRAM]}],
        "subject": {"reference": facts.member, "display": name_of(facts.patient)}, "date": report.date,
        "author": [author], "title": report.title,
        "section": [{"title": s.title, "code": {"text": s.key},
                     "text": {"status": "generated", "div": narrative(s.paragraphs, s.items)},
                     **({"entry": [{"reference": local.get(e, e)} for e in s.entries]} if s.entries else {})}
                    for s in report.sections]}
    return {"resourceType": "Bundle", "identifier": identifier, "type": "document", "timestamp": report.date,
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": composition},
                      *({"fullUrl": url(r), "resource": _without_local_id(resource, r in local)}
                        for r, resource in facts.cited.items())]}


def _without_local_id(resource: dict, local: bool) -> dict:
    return {k: v for k, v in resource.items() if k != "id"} if local else resource


def _document_reference(report: Report, facts: Facts, author: dict, identifier: dict, bundle: str,
                        pdf: bytes) -> dict:
    return {
        "resourceType": "DocumentReference", "masterIdentifier": identifier, "status": "current",
        "docStatus": "final", "type": {"coding": [REPORT_TYPE], "text": TITLE}, "category": [{"coding": [PROGRAM]}],
        "subject": {"reference": facts.member}, "date": report.date, "author": [author],
        "description": report.title,
        "content": [
            {"attachment": {"contentType": "application/pdf", "language": "en", "data": base64.b64encode(pdf).decode(),
                            "title": f"{report.title}.pdf", "creation": report.date}},
            {"attachment": {"contentType": FHIR_JSON, "url": bundle, "title": "FHIR document"}},
        ],
        "context": {"related": [{"reference": bundle}]},
    }


def pdf(report: Report) -> bytes:
    """The report as the PDF the DocumentReference holds (care/pcp_report_pdf.py)."""
    return render_pdf(report.title, report.heading, report.sections, f"{FOOTER} {report.date}.")


def page(report: Report) -> str:
    """The report as an HTML page (care/pcp_report_html.py)."""
    return render_html(report.title, report.heading, report.sections, f"{FOOTER} {report.date}.")
