"""One member walked through the whole program over HTTP, on SQLite and PostgreSQL (docs/program.md):
candidate -> practice agreed -> two failed calls and one that reaches her -> enrolled -> a care plan with two
goals, a barrier and a cardiology referral -> the PCP's approval -> the referral accepted, scheduled and
completed with the consult note -> goals achieved -> review -> closure. Each step shows where a coordinator
would look: the worklist, and the history of what it changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhirjson import FHIR_JSON
from program_world import BASE, load, operation

NOW = datetime.now(UTC)
TODAY = NOW.date().isoformat()
PROGRAM = BASE + "CodeSystem/cw-program"
PROFILE = BASE + "StructureDefinition/"
BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"


def _at(days: float) -> str:
    return (NOW + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _put(client, resource: dict) -> dict:
    response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _parts(parameters: dict) -> dict[str, object]:
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in parameters["parameter"]}


def _worklist(client) -> list[tuple[str, str]]:
    """The coordinator's worklist but its care gaps (Dee has no results on file, so she has several)."""
    bundle = _ok(client.get("/fhir/Practitioner/rn/$worklist"))
    return [(e["resource"]["priority"], e["resource"]["focus"]["reference"]) for e in bundle.get("entry", [])
            if not e["resource"]["identifier"][0]["value"].startswith("care-gap:")]


def _versions(client, reference: str) -> list[str]:
    history = _ok(client.get(f"/fhir/{reference}/_history"))
    return [e["resource"].get("status") for e in reversed(history["entry"])]


def _condition(id: str, category: tuple[str, str], code: tuple[str, str], profile: str | None = None) -> dict:
    return {"resourceType": "Condition", "id": id, **({"meta": {"profile": [PROFILE + profile]}} if profile else {}),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "category": [{"coding": [{"system": category[0], "code": category[1]}]}],
            "code": {"coding": [{"system": code[0], "code": code[1]}]}, "subject": {"reference": "Patient/dee"},
            "onsetDateTime": "2019-03-01"}


PROBLEM_LIST = ("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")


def _goal(id: str, text: str, achieved: bool = False) -> dict:
    return {"resourceType": "Goal", "id": id, "meta": {"profile": [PROFILE + "cw-goal"]},
            "lifecycleStatus": "completed" if achieved else "active",
            "achievementStatus": {"coding": [{"system": ACHIEVEMENT,
                                              "code": "achieved" if achieved else "in-progress"}]},
            "statusDate": TODAY, "description": {"text": text}, "subject": {"reference": "Patient/dee"},
            "target": [{"measure": {"text": text}, "dueDate": _at(120)[:10]}],
            "addresses": [{"reference": "Condition/dee-diabetes" if id == "dee-a1c" else "Condition/dee-hf"}]}


def _referral_task(status: str, business: str, **extra) -> dict:
    return {"resourceType": "Task", "id": "dee-cardiology-task", "meta": {"profile": [PROFILE + "cw-referral-task"]},
            "status": status, "businessStatus": {"coding": [{"system": BSER, "code": business}]}, "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": "ServiceRequest/dee-cardiology"}, "for": {"reference": "Patient/dee"},
            "authoredOn": _at(-30), "requester": {"reference": "Practitioner/rn"},
            "owner": {"reference": "Practitioner/dr-out"}, **extra}


def test_one_member_through_the_program(client):
    load(client)
    # Dee has diabetes (coded in ICD-10-CM) and heart failure (SNOMED CT), so she qualifies.
    icd10, snomed = "http://hl7.org/fhir/sid/icd-10-cm", "http://snomed.info/sct"
    _put(client, _condition("dee-diabetes", PROBLEM_LIST, (icd10, "E11.9"), "cw-problem"))
    _put(client, _condition("dee-hf", PROBLEM_LIST, (snomed, "88805009"), "cw-problem"))

    # 1. She is a candidate; her practice has never been asked.
    candidates = _ok(client.get("/fhir/Patient/$care-candidates", params={"asOf": TODAY}))
    [dee] = [c for c in candidates["parameter"] if c["name"] == "candidate"
             and any((p.get("valueReference") or {}).get("reference") == "Patient/dee" for p in c["part"])]
    reasons = [p["valueCodeableConcept"]["text"] for p in dee["part"] if p["name"] == "reason"]
    assert any(r.startswith("2 chronic conditions: ") for r in reasons), reasons
    refused = operation(client, "Patient/dee/$enroll",
                        {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
                        {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-out"}},
                        {"name": "agreement", "valueBoolean": True}, {"name": "agreementDate", "valueDate": TODAY})
    assert refused.status_code == 422  # not before her practice takes part

    # 2. Her practice is invited and agrees.
    for status in ("invited", "agreed"):
        _ok(operation(client, "Organization/never-asked/$participation", {"name": "status", "valueCode": status}))
    assert _versions(client, "Organization/never-asked") == [None, None, None]  # as loaded, invited, agreed

    # 3. Two calls fail (the second promises a callback in two days), the third reaches her.
    first = _parts(_ok(operation(client, "Patient/dee/$log-outreach", {"name": "party", "valueCode": "member"},
                                 {"name": "outcome", "valueCode": "no-answer"},
                                 {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}})))
    task = first["task"]["reference"]
    assert _worklist(client) == [("asap", task)]  # the outreach is open, due since it was opened
    second = _parts(_ok(operation(client, "Patient/dee/$log-outreach", {"name": "party", "valueCode": "member"},
                                  {"name": "outcome", "valueCode": "voicemail"},
                                  {"name": "callbackAt", "valueDateTime": _at(2)})))
    assert second["attempts"] == 2 and second["status"] == "in-progress"
    assert _worklist(client) == [("routine", task)]  # now due at the callback
    third = _parts(_ok(operation(client, "Patient/dee/$log-outreach", {"name": "party", "valueCode": "member"},
                                 {"name": "outcome", "valueCode": "reached"},
                                 {"name": "note", "valueString": "Agrees to join; wants help getting to clinic"})))
    assert third["status"] == "completed"
    assert _worklist(client) == []
    assert _versions(client, task) == ["in-progress", "in-progress", "completed"]

    # 4. She is enrolled.
    written = _parts(_ok(operation(
        client, "Patient/dee/$enroll", {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
        {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-out"}},
        {"name": "agreement", "valueBoolean": True}, {"name": "agreementDate", "valueDate": TODAY})))
    plan_ref = written["carePlan"]["reference"]
    assert dee not in _ok(client.get("/fhir/Patient/$care-candidates", params={"asOf": TODAY}))["parameter"]

    # 5. The care plan: two goals, a transport barrier, a cardiology referral for the heart failure goal.
    _put(client, _condition("dee-transport", ("http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                                              "health-concern"), (BASE + "CodeSystem/cw-barrier", "transportation"),
                            "cw-barrier-concern") | {"note": [{"text": "Plan's ride benefit booked for visits"}]})
    _put(client, _goal("dee-a1c", "HbA1c below 8%"))
    _put(client, _goal("dee-weight", "Weight stable within 2 kg"))
    _put(client, {"resourceType": "ServiceRequest", "id": "dee-cardiology",
                  "meta": {"profile": [PROFILE + "cw-referral"]},
                  "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal",
                                 "valueReference": {"reference": "Goal/dee-weight"}}],
                  "status": "active", "intent": "order",
                  "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
                  "code": {"text": "Cardiology consult"}, "subject": {"reference": "Patient/dee"},
                  "authoredOn": TODAY, "requester": {"reference": "Practitioner/dr-out"},
                  "reasonReference": [{"reference": "Condition/dee-hf"}]})
    plan = _ok(client.get(f"/fhir/{plan_ref}"))
    plan |= {"addresses": [{"reference": f"Condition/{c}"} for c in ("dee-diabetes", "dee-hf", "dee-transport")],
             "goal": [{"reference": "Goal/dee-a1c"}, {"reference": "Goal/dee-weight"}],
             "activity": [{"reference": {"reference": "ServiceRequest/dee-cardiology"}}]}
    _put(client, plan)
    check = _ok(client.get(f"/fhir/{plan_ref}/$quality-check"))
    assert [i["severity"] for i in check["issue"]] == ["information"], check

    # 6. The PCP approves it.
    approval = {"name": "approvedBy", "valueReference": {"reference": "Practitioner/dr-out"}}
    assert _ok(operation(client, f"{plan_ref}/$activate", approval))["status"] == "active"

    # 7. The referral: requested, accepted then idle for three weeks (on the worklist), scheduled, completed.
    _put(client, _referral_task("requested", "2.0"))
    _put(client, _referral_task("accepted", "3.0", lastModified=_at(-21)))
    assert _worklist(client) == [("routine", "Task/dee-cardiology-task")]
    _put(client, _referral_task("in-progress", "5.1.1", lastModified=_at(0)))
    assert _worklist(client) == []
    skipped = client.put("/fhir/Task/dee-cardiology-task", json=_referral_task("requested", "2.0"), headers=FHIR_JSON)
    assert skipped.status_code == 409
    _put(client, {"resourceType": "DocumentReference", "id": "dee-consult-note", "status": "current",
                  "type": {"text": "Cardiology consult note"}, "subject": {"reference": "Patient/dee"},
                  "content": [{"attachment": {"contentType": "text/plain", "data": "U3RhYmxlIEhGLCBjb250aW51ZS4="}}]})
    _put(client, _referral_task("completed", "6.0", lastModified=_at(0), output=[{
        "type": {"text": "Consult note"}, "valueReference": {"reference": "DocumentReference/dee-consult-note"}}]))
    assert _versions(client, "Task/dee-cardiology-task") == ["requested", "accepted", "in-progress", "completed"]

    # 8. Both goals are achieved; 9. the plan is reviewed; 10. and closed.
    _put(client, _goal("dee-a1c", "HbA1c below 8%", achieved=True))
    _put(client, _goal("dee-weight", "Weight stable within 2 kg", achieved=True))
    _ok(operation(client, f"{plan_ref}/$review",
                  {"name": "reviewedBy", "valueReference": {"reference": "Practitioner/rn"}},
                  {"name": "note", "valueString": "Both goals met; consult done"}))
    closed = _ok(operation(client, f"{plan_ref}/$close", {"name": "reason", "valueString": "goals met"},
                           {"name": "closedBy", "valueReference": {"reference": "Practitioner/rn"}}))
    assert closed["status"] == "completed"
    assert _versions(client, plan_ref) == ["draft", "draft", "active", "active", "completed"]
    provenance = _ok(client.get("/fhir/Provenance"))["entry"]
    assert sorted(p["resource"]["activity"]["coding"][0]["code"] for p in provenance) == [
        "plan-approval", "plan-closure", "plan-review"]
    assert _worklist(client) == []
