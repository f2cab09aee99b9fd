"""Patient/[id]/$pcp-report (profiles/OperationDefinition-pcp-report.json) over HTTP, on SQLite and PostgreSQL:
a hand-made enrolled member with problems, visits, a goal, a barrier, a referral, warfarin with ibuprofen and no
HbA1c; the story's exact sentences, each section and what it cites; the stored document Bundle and
DocumentReference; the second report's changes; the PDF rendered to images (one or two pages, not blank), a big
record still at most two, and the renderer's own stop on the second page; format=html and format=document;
refusals, and the caller's grant."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2
from conftest import BASE_URL
from fhirjson import FHIR_JSON
from program_world import BASE, SNOMED, load, operation, practitioner

from fhir_server.auth import tokens
from fhir_server.auth.clients import register
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.users import add_user
from fhir_server.care.pcp_report_facts import Section
from fhir_server.care.pcp_report_pdf import render
from fhir_server.store.db import unit_of_work

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "profiles" / "OperationDefinition-pcp-report.json"
PROFILE = BASE + "StructureDefinition/"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
REPORT = {"system": "http://loinc.org", "code": "18776-5", "display": "Plan of care note"}
NOW = datetime.now(UTC)
TODAY = NOW.date()
AGE = TODAY.year - 1951 - ((TODAY.month, TODAY.day) < (4, 2))  # Ann was born on 1951-04-02
SECTIONS = ["The member's story", "Care plan", "Medication alerts", "Open referrals", "Care gaps",
            "Care coordinator"]


def _day(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


def _put(client, *resources: dict) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def _condition(id: str, code: tuple[str, str], text: str, onset: str, **extra) -> dict:
    """A problem-list Condition (cw-problem) of Ann's, unless `extra` says otherwise."""
    return {"resourceType": "Condition", "id": id, "meta": {"profile": [PROFILE + "cw-problem"]},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                      "code": "problem-list-item"}]}], "subject": {"reference": "Patient/ann"},
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "code": {"coding": [{"system": code[0], "code": code[1]}], "text": text}, "onsetDateTime": onset, **extra}


def _encounter(id: str, kind: str, start: str, text: str | None = None) -> dict:
    return {"resourceType": "Encounter", "id": id, "status": "finished", "subject": {"reference": "Patient/ann"},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": kind},
            **({"type": [{"text": text}]} if text else {}), "period": {"start": start, "end": start}}


def _goal(progress: str, display: str) -> dict:
    return {"resourceType": "Goal", "id": "ann-a1c", "meta": {"profile": [PROFILE + "cw-goal"]},
            "lifecycleStatus": "active",
            "achievementStatus": {"coding": [{"system": ACHIEVEMENT, "code": progress, "display": display}]},
            "statusDate": _day(-3), "description": {"text": "HbA1c below 8%"}, "subject": {"reference": "Patient/ann"},
            "target": [{"measure": {"text": "HbA1c"}, "detailQuantity": {"comparator": "<", "value": 8, "unit": "%"},
                        "dueDate": "2027-06-30"}],
            "addresses": [{"reference": "Condition/ann-diabetes"}]}


def _request(n: int, code: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": f"ann-rx{n}", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/ann"}, "medicationCodeableConcept": {"coding": [{"system": RX,
                                                                                               "code": code}]}}


def _enrolled_ann(client) -> str:
    """Ann, enrolled, with her record; the reference of her care plan."""
    load(client)
    _put(client, practitioner("rn", "Nurse", "1497758544") | {"telecom": [
        {"system": "phone", "value": "555-0100"}, {"system": "email", "value": "alex.nurse@plan.example"}]})
    enrolled = operation(client, "Patient/ann/$enroll",
                         {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
                         {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-in"}},
                         {"name": "agreement", "valueBoolean": True}, {"name": "agreementDate", "valueDate": _day(-30)})
    assert enrolled.status_code == 200, enrolled.text
    plan = next(p["valueReference"]["reference"] for p in enrolled.json()["parameter"] if p["name"] == "carePlan")
    _put(client,
         _condition("ann-diabetes", (ICD10CM, "E11.9"), "Type 2 diabetes", "2014-05-01"),
         _condition("ann-htn", (SNOMED, "59621000"), "Hypertension", "2010-03-01"),
         _condition("ann-knee", (SNOMED, "239873007"), "Osteoarthritis of knee", "2018-09-10"),
         _condition("ann-old", (SNOMED, "10509002"), "Acute bronchitis", "2019-01-01",
                    clinicalStatus={"coding": [{"system": CLINICAL, "code": "resolved"}]}),
         _condition("ann-transport", (BASE + "CodeSystem/cw-barrier", "transportation"), "No transport to clinic",
                    "2026-01-01", meta={"profile": [PROFILE + "cw-barrier-concern"]},
                    category=[{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                                           "code": "health-concern"}]}],
                    note=[{"text": "ride benefit booked"}]),
         _encounter("ann-er", "EMER", _day(-60) + "T22:10:00Z", "Chest pain"),
         *(_encounter(f"ann-office-{n}", "AMB", _day(-40 - 70 * n) + "T09:00:00Z") for n in range(4)),
         _encounter("ann-office-old", "AMB", _day(-400) + "T09:00:00Z"),
         _goal("in-progress", "In Progress"),
         {"resourceType": "ServiceRequest", "id": "ann-podiatry", "meta": {"profile": [PROFILE + "cw-referral"]},
          "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                         "valueReference": {"reference": "Goal/ann-a1c"}}],
          "status": "active", "intent": "order",
          "category": [{"coding": [{"system": SNOMED, "code": "3457005"}]}],
          "code": {"text": "Podiatry consult"}, "subject": {"reference": "Patient/ann"},
          "authoredOn": _day(-10), "requester": {"reference": "Practitioner/dr-in"},
          "reasonReference": [{"reference": "Condition/ann-diabetes"}]},
         {"resourceType": "Task", "id": "ann-podiatry-task", "meta": {"profile": [PROFILE + "cw-referral-task"]},
          "status": "accepted", "businessStatus": {"coding": [{"system": BSER, "code": "3.0"}], "text": "Accepted"},
          "intent": "order",
          "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
          "focus": {"reference": "ServiceRequest/ann-podiatry"}, "for": {"reference": "Patient/ann"},
          "authoredOn": _day(-10), "lastModified": _day(-8) + "T10:00:00Z",
          "requester": {"reference": "Practitioner/rn"},
          "owner": {"reference": "Practitioner/dr-out", "display": "Dr Other, podiatry"}},
         _request(0, "855332"),  # warfarin 5 mg tablet
         _request(1, "5640"))  # ibuprofen, as the ingredient
    care_plan = client.get(f"/fhir/{plan}").json()
    care_plan |= {"addresses": [{"reference": f"Condition/{c}"} for c in ("ann-diabetes", "ann-htn", "ann-transport")],
                  "goal": [{"reference": "Goal/ann-a1c"}],
                  "activity": [{"reference": {"reference": "ServiceRequest/ann-podiatry"}}]}
    _put(client, care_plan)
    return plan


def _report(client, patient: str = "ann", format: str | None = "document", **headers):
    parts = [{"name": "format", "valueCode": format}] if format else []
    return client.post(f"/fhir/Patient/{patient}/$pcp-report", json={"resourceType": "Parameters", "parameter": parts},
                       headers={**FHIR_JSON, **headers})


def _document(client) -> dict:
    response = _report(client)
    assert response.status_code == 200, response.text
    return response.json()


def _sections(document: dict) -> dict[str, dict]:
    composition = document["entry"][0]["resource"]
    return {s["title"]: s for s in composition["section"]}


def _items(section: dict) -> list[str]:
    """The section's narrative as text: each paragraph and each list item."""
    div = section["text"]["div"]
    return [part.split("</")[0] for part in div.replace("<li>", "<p>").split("<p>")[1:]]


def _pages(pdf: bytes) -> list:
    """Each page rendered to an image (PIL), at 60 dpi."""
    document = pypdfium2.PdfDocument(pdf)
    return [document[n].render(scale=60 / 72).to_pil() for n in range(len(document))]


def _inked(image) -> float:
    """The share of the page's pixels that are not white."""
    grey = image.convert("L")
    histogram = grey.histogram()
    return 1 - sum(histogram[245:]) / (grey.width * grey.height)


# -- the sections -------------------------------------------------------------------------------------------


def test_the_story_and_every_section(client):
    plan = _enrolled_ann(client)
    document = _document(client)
    sections = _sections(document)
    assert list(sections) == SECTIONS
    assert _items(sections["The member's story"]) == [
        f"Ann Rivera is a {AGE}-year-old woman with hypertension (since 2010) and type 2 diabetes (since 2014), "
        "and 1 other active problem. In the last 12 months she had 1 emergency visit and 4 office visits.",
        f"Latest: office visit on {_day(-40)}; emergency visit on {_day(-60)} (Chest pain); "
        f"office visit on {_day(-110)}.",
        "This is the first report to the PCP office.",
        "Hypertension, since 2010-03-01 (chronic)",
        "Type 2 diabetes, since 2014-05-01 (chronic)",
        "Osteoarthritis of knee, since 2018-09-10",
    ]
    assert [e["reference"] for e in sections["The member's story"]["entry"]] == [
        "Patient/ann", "Condition/ann-htn", "Condition/ann-diabetes", "Condition/ann-knee", "Encounter/ann-office-0",
        "Encounter/ann-er", "Encounter/ann-office-1"]
    assert _items(sections["Care plan"]) == [
        "Chronic-care coordination plan is draft.",
        f"Goal: HbA1c below 8%: in progress, active (as of {_day(-3)}); target HbA1c &lt;8 % by 2027-06-30",
        "Barrier: No transport to clinic (ride benefit booked)",
    ]
    assert [e["reference"] for e in sections["Care plan"]["entry"]] == [plan, "Goal/ann-a1c", "Condition/ann-transport"]
    # The interaction, the age alert (she is over 65) and the missing INR, each with what to do.
    assert _items(sections["Medication alerts"]) == [
        "High: Drug interaction: ibuprofen, warfarin. Action: Ask the member to avoid over-the-counter NSAIDs; "
        "suggest acetaminophen for pain and tell the prescriber.",
        f"Moderate: High-risk drug at 65 and over: ibuprofen at age {AGE}. Action: Prefer acetaminophen; if an "
        "NSAID is needed, the shortest course and a kidney check.",
        "Moderate: Monitoring lab missing: warfarin: no INR result in the last 84 days. Action: Arrange the test "
        "with the PCP.",
    ]
    alerts = [e["reference"] for e in sections["Medication alerts"]["entry"]]
    assert len(alerts) == 3 and all(a.startswith("urn:uuid:") for a in alerts)
    issues = {e["fullUrl"]: e["resource"] for e in document["entry"]}
    assert [issues[a]["code"]["coding"][0]["code"] for a in alerts] == ["DRG", "AGE", "LAB"]
    assert _items(sections["Open referrals"]) == [
        f"Podiatry consult: accepted (Accepted), to Dr Other, podiatry, since {_day(-8)}"]
    assert [e["reference"] for e in sections["Open referrals"]["entry"]] == [
        "Task/ann-podiatry-task", "ServiceRequest/ann-podiatry"]
    gaps = _items(sections["Care gaps"])
    assert f"Diabetes: no HbA1c in 6 months: no HbA1c on record; due {TODAY}" in gaps
    assert f"Hypertension: no blood pressure in 12 months: no blood pressure on record; due {TODAY}" in gaps
    assert _items(sections["Care coordinator"]) == [
        "Alex Nurse, care coordinator: phone 555-0100; email alex.nurse@plan.example."]


def test_the_document_and_the_document_reference_are_stored(client):
    _enrolled_ann(client)
    response = _report(client, format=None)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    location = response.headers["location"]
    assert location.startswith(f"{BASE_URL}/DocumentReference/") and location.endswith("/_history/1")
    reference = client.get("/fhir/" + location.removeprefix(BASE_URL + "/")).json()
    assert reference["status"] == "current" and reference["type"]["coding"] == [REPORT]
    assert reference["subject"] == {"reference": "Patient/ann"} and reference["author"] == [
        {"reference": "Practitioner/rn"}]
    pdf, bundle = reference["content"]
    assert pdf["attachment"]["contentType"] == "application/pdf"
    assert base64.b64decode(pdf["attachment"]["data"]) == response.content
    assert bundle["attachment"]["contentType"] == "application/fhir+json"
    assert reference["context"]["related"] == [{"reference": bundle["attachment"]["url"]}]
    document = client.get(f"/fhir/{bundle['attachment']['url']}").json()
    assert document["type"] == "document" and document["identifier"] == reference["masterIdentifier"]
    assert document["timestamp"] == reference["date"]
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition" and composition["type"]["coding"] == [REPORT]
    assert (composition["subject"]["reference"], composition["author"], composition["status"]) == (
        "Patient/ann", [{"reference": "Practitioner/rn"}], "final")
    assert composition["title"] == "Primary care report: Ann Rivera" and composition["date"] == reference["date"]
    # The document stands alone: every reference a section cites is an entry of the Bundle.
    full_urls = {e["fullUrl"] for e in document["entry"]}
    cited = [e["reference"] for s in composition["section"] for e in s.get("entry", [])]
    assert all(r in full_urls or f"{BASE_URL}/{r}" in full_urls for r in cited)
    checked = client.post("/fhir/Bundle/$validate", json=document, headers=FHIR_JSON).json()
    assert [i for i in checked["issue"] if i["severity"] in ("error", "fatal")] == [], checked


def test_the_second_report_says_what_changed(client):
    _enrolled_ann(client)
    first = _document(client)
    after = datetime.fromisoformat(first["timestamp"].replace("Z", "+00:00")) + timedelta(seconds=1)
    _put(client, _condition("ann-ckd", (SNOMED, "431855005"), "Chronic kidney disease stage 1", _day(-1)),
         _encounter("ann-office-new", "AMB", after.isoformat().replace("+00:00", "Z")),
         _goal("improving", "Improving"), _request(2, "849574"))  # naproxen: another NSAID
    story = _items(_sections(_document(client))["The member's story"])
    assert story[2] == (
        f"Since the last report on {first['timestamp'][:10]}: new problem chronic kidney disease stage 1; "
        f"office visit on {after.date()}; goal HbA1c below 8% now improving, active; new alert drug interaction "
        "(naproxen, warfarin); new alert therapeutic duplication (ibuprofen, naproxen); new alert high-risk drug "
        "at 65 and over (ibuprofen, naproxen).")
    third = _items(_sections(_document(client))["The member's story"])
    assert third[2] == f"Nothing new since the last report on {TODAY}."


def test_a_member_who_is_not_enrolled(client):
    load(client)
    sections = _sections(_report(client, "bob").json())
    assert _items(sections["The member's story"])[0] == (
        f"Bob Rivera is a {AGE}-year-old woman with no active problems on record. In the last 12 months she had "
        "no visits on record.")
    assert _items(sections["Care plan"]) == ["No program care plan is on record."]
    assert _items(sections["Medication alerts"]) == [
        "No medication alerts: the review of the active medicines found nothing."]
    assert _items(sections["Open referrals"]) == ["No open referrals."]
    assert _items(sections["Care gaps"]) == ["No open care gaps."]
    assert _items(sections["Care coordinator"]) == [
        "No care coordinator is assigned: the member is not enrolled in the program."]
    document = _report(client, "bob").json()
    assert document["entry"][0]["resource"]["author"] == [{"display": "CareWeave chronic-care coordination program"}]


# -- the formats --------------------------------------------------------------------------------------------


def test_the_pdf_renders_to_one_or_two_pages_that_are_not_blank(client):
    _enrolled_ann(client)
    response = _report(client, format="pdf")
    assert response.status_code == 200
    pages = _pages(response.content)
    assert 1 <= len(pages) <= 2
    assert _inked(pages[0]) > 0.02


def test_a_big_record_still_fits_two_pages(client):
    _enrolled_ann(client)
    codes = ["855332", "5640", "849574", "3355", "140587", "1364430", "1114195", "6809", "36567", "83367",
             "17767", "29046", "3640", "6470", "10582", "6851", "704", "3322", "8640", "2551"]
    _put(client, *(_condition(f"ann-extra-{n}", (SNOMED, str(100000 + n)),
                              f"A long-named problem number {n} that goes on and on to fill the line", "2020-01-01")
                   for n in range(30)),
         *(_request(10 + n, code) for n, code in enumerate(codes)))
    document = _document(client)
    sections = _sections(document)
    story = _items(sections["The member's story"])
    assert story[-1] == "and 25 more"
    assert _items(sections["Medication alerts"])[-1].startswith("and ")
    pages = _pages(base64.b64decode(_pdf_of(client, document)))
    assert 1 <= len(pages) <= 2 and all(_inked(p) > 0.02 for p in pages)


def test_text_that_would_run_past_two_pages_stops_on_the_second():
    """The renderer's own guard, for texts longer than the caps allow for: two pages, the second saying where
    the rest is; characters outside Latin-1 do not stop it."""
    line = "A long line \u2014 with \u201cquotes\u201d, \u2265 signs and \u6f22\u5b57 \u2026 " * 5
    sections = [Section(f"s{n}", f"Section {n}", (line,), tuple(line for _ in range(10)), ()) for n in range(8)]
    document = pypdfium2.PdfDocument(render("Primary care report: Test", "heading", sections, "footer"))
    assert len(document) == 2
    last = document[1].get_textpage().get_text_range()
    assert "The rest of this report is in the FHIR document it was stored with." in last
    assert '\u2014' not in last and '"quotes"' in last and ">= signs and ??" in last


def _pdf_of(client, document: dict) -> str:
    """The base64 PDF of the DocumentReference stored with a document Bundle."""
    found = client.get("/fhir/DocumentReference", params={"patient": "Patient/ann", "_count": "100"}).json()
    return next(e["resource"]["content"][0]["attachment"]["data"] for e in found["entry"]
                if e["resource"]["masterIdentifier"] == document["identifier"])


def test_format_html(client):
    _enrolled_ann(client)
    response = _report(client, format="html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert page.startswith("<!DOCTYPE html>") and "<h1>Primary care report: Ann Rivera</h1>" in page
    assert all(f"<h2>{title.replace(chr(39), '&#x27;')}</h2>" in page for title in SECTIONS)


def test_accept_chooses_the_format_when_none_is_given(client):
    _enrolled_ann(client)
    for accept, media in (("application/pdf", "application/pdf"), ("text/html", "text/html; charset=utf-8"),
                          ("application/fhir+json", "application/fhir+json"), ("*/*", "application/pdf")):
        response = _report(client, format=None, Accept=accept)
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].startswith(media), accept
    refused = _report(client, format=None, Accept="application/msword")
    assert refused.status_code == 406 and refused.json()["resourceType"] == "OperationOutcome"
    assert client.get("/fhir/Patient/ann", headers={"Accept": "application/pdf"}).status_code == 406  # not a report


# -- refusals and the grant ---------------------------------------------------------------------------------


def test_refusals(client):
    load(client)
    assert _report(client, "nobody").status_code == 404
    bad = _report(client, format="docx")
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["format"]
    assert client.post("/fhir/Patient/ann/$pcp-report", params={"asOf": "2026-01-01"}).status_code == 400
    assert client.get("/fhir/Patient/ann/$pcp-report").status_code == 405  # it stores the report
    assert client.get("/fhir/DocumentReference", params={"_summary": "count"}).json()["total"] == 0


def _token(engine, scope: str) -> str:
    username = "nurse-" + secrets.token_hex(4)
    add_user(engine, username=username, password="correct horse battery", role="coordinator",
             practitioner="Practitioner/rn")
    app = register(engine, client_type="public", name="Reports", scope=scope,
                   redirect_uris=["http://127.0.0.1:9999/callback"]).client_id
    key = KeyRing(engine).signing_key(datetime.now(UTC).replace(tzinfo=None))
    with unit_of_work(engine, write=True) as conn:
        token, _ = tokens.issue(conn, key, issuer=BASE_URL, client_id=app, scope=scope,
                                lifetime=timedelta(minutes=5), subject=username)
    return token


def test_the_caller_s_grant(client, smart, engine):
    _enrolled_ann(client)
    read_only = {"Authorization": f"Bearer {_token(engine, 'user/*.rs')}"}
    assert _report(smart, **read_only).status_code == 403  # the report is written: it needs create
    writer = {"Authorization": f"Bearer {_token(engine, 'user/*.cruds')}"}
    assert _report(smart, "bob", **writer).status_code == 404  # not on any of the coordinator's care teams
    assert _report(smart, **writer).status_code == 200


def test_the_operation_definition(client):
    definition = json.loads(DEFINITION.read_text())
    response = client.post("/fhir/OperationDefinition/$validate", json=definition, headers=FHIR_JSON)
    assert response.status_code == 200
    assert [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")] == []
    assert {p["name"] for p in definition["parameter"] if p["use"] == "in"} == {"format"}
    patient = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "pcp-report", "definition": definition["url"]} in patient["operation"]
