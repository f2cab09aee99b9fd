"""Practitioner/[id]/$worklist (profiles/OperationDefinition-worklist.json) over HTTP, on SQLite and
PostgreSQL: each kind of item (outreach, referrals, plan reviews, alerts, care gaps, teach-backs) appears when
due and not before, with its priority and reason, in a stable order by priority, member risk and due date;
other coordinators' work stays off the list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhirjson import FHIR_JSON
from program_world import BASE, load, operation

NOW = datetime.now(UTC)


def _at(days: float) -> str:
    return (NOW + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _put(client, *resources: dict) -> None:
    for resource in resources:
        response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code in (200, 201), response.text


def _enroll(client, member: str) -> dict[str, str]:
    response = operation(client, f"Patient/{member}/$enroll",
                         {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
                         {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-in"}},
                         {"name": "agreement", "valueBoolean": True},
                         {"name": "agreementDate", "valueDate": _at(-1)[:10]})
    assert response.status_code == 200, response.text
    return {p["name"]: p["valueReference"]["reference"] for p in response.json()["parameter"]}


def _outreach(id: str, member: str, owner: str, callback: str | None) -> dict:
    """An outreach Task; with no callback, one that no call has been logged on yet (a new candidate)."""
    task = {"resourceType": "Task", "id": id, "status": "in-progress" if callback else "requested", "intent": "order",
            "code": {"coding": [{"system": BASE + "CodeSystem/cw-program", "code": "outreach-call"}]},
            "for": {"reference": f"Patient/{member}"}, "authoredOn": _at(-3), "owner": {"reference": owner}}
    if callback:
        task |= {"restriction": {"period": {"start": callback}},
                 "output": [{"type": {"text": "call"}, "valueReference": {"reference": f"Communication/{id}"}}]}
    return task


def _referral(id: str, member: str, last_modified: str, status: str = "accepted") -> dict:
    return {"resourceType": "Task", "id": id, "status": status, "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": "ServiceRequest/cardiology"}, "for": {"reference": f"Patient/{member}"},
            "authoredOn": _at(-60), "lastModified": last_modified}


def _condition(id: str, member: str) -> dict:
    return {"resourceType": "Condition", "id": id, "subject": {"reference": f"Patient/{member}"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]}, "code": {"text": id}}


def _worklist(client, practitioner: str = "rn") -> list[dict]:
    response = client.get(f"/fhir/Practitioner/{practitioner}/$worklist")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "collection" and bundle["total"] == len(bundle.get("entry", []))
    return [e["resource"] for e in bundle.get("entry", [])]


def _same(tasks: list[dict]) -> list[dict]:
    """The tasks without `authoredOn`, which is the moment of the answer."""
    return [{k: v for k, v in task.items() if k != "authoredOn"} for task in tasks]


def _summary(tasks: list[dict]) -> list[tuple[str, str, str]]:
    return [(t["priority"], t["focus"]["reference"], t["reasonCode"]["text"].partition(";")[0]) for t in tasks]


def test_an_empty_worklist(client):
    load(client)
    assert _worklist(client) == []
    assert client.get("/fhir/Practitioner/nobody/$worklist").status_code == 404


def test_each_kind_of_work_in_order(client):
    load(client)
    ann = _enroll(client, "ann")
    _put(client,
         _outreach("call-overdue", "bob", "Practitioner/rn", _at(-2)),
         _outreach("call-soon", "cat", "PractitionerRole/rn-role", _at(0.5)),
         _outreach("call-later", "dee", "Practitioner/rn", _at(5)),
         _outreach("someone-else", "dee", "Practitioner/dr-in", _at(-2)),
         _referral("stalled-long", "ann", _at(-40)), _referral("stalled", "ann", _at(-20)),
         _referral("moving", "ann", _at(-2)), _referral("done", "ann", _at(-90), status="completed"),
         _condition("c1", "ann"), _condition("c2", "ann"), _condition("c3", "bob"),
         {"resourceType": "DetectedIssue", "id": "alert", "status": "final", "severity": "high",
          "code": {"text": "warfarin with ibuprofen"}, "patient": {"reference": "Patient/ann"},
          "identifiedDateTime": _at(-1)},
         {"resourceType": "DetectedIssue", "id": "handled", "status": "final", "severity": "high",
          "patient": {"reference": "Patient/ann"}, "mitigation": [{"action": {"text": "PCP stopped ibuprofen"}}]})
    plan = client.get(f"/fhir/{ann['carePlan']}").json()
    # Approved 85 days ago (written unclaimed: the profile would want the plan's problems, beside the point here).
    plan |= {"status": "active", "note": [{"time": _at(-85), "text": "Approved"}]}
    del plan["meta"]
    _put(client, plan)
    tasks = _worklist(client)
    assert _summary(tasks) == [
        ("asap", "DetectedIssue/alert", "high alert not yet acted on: warfarin with ibuprofen"),
        ("asap", "Task/call-overdue", f"callback overdue since {_at(-2)[:10]}"),
        ("urgent", "Task/stalled-long", f"referral accepted with no progress for 40 days (since {_at(-40)[:10]})"),
        ("urgent", "Task/call-soon", f"callback due {_at(0.5)[:16]}+00:00"),
        ("routine", "Task/stalled", f"referral accepted with no progress for 20 days (since {_at(-20)[:10]})"),
        ("routine", ann["carePlan"], f"care plan review due {_at(5)[:10]} (last {_at(-85)[:10]})"),
        ("routine", "Task/call-later", f"callback due {_at(5)[:10]}"),
    ]
    assert [t["reasonCode"]["text"].rpartition("member has ")[2] for t in tasks[:3]] == [
        "2 active conditions", "1 active condition", "2 active conditions"]
    for task in tasks:
        assert task["owner"] == {"reference": "Practitioner/rn"} and task["status"] == "ready"
        outcome = client.post("/fhir/Task/$validate", json=task, headers=FHIR_JSON).json()
        assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")], outcome
    assert _same(_worklist(client)) == _same(tasks)  # the same data gives the same list


def test_only_the_coordinators_own_work(client):
    load(client)
    _put(client, _outreach("mine", "bob", "Practitioner/rn", _at(-1)),
         _outreach("theirs", "bob", "Practitioner/dr-in", _at(-1)),
         _outreach("assigned", "cat", "Practitioner/rn", None),
         _referral("not-my-member", "ann", _at(-30)))
    assert _summary(_worklist(client)) == [  # equal priority and risk: the longer overdue first
        ("asap", "Task/assigned", f"first call to a new candidate overdue since {_at(-3)[:10]}"),
        ("asap", "Task/mine", f"callback overdue since {_at(-1)[:10]}")]
    assert [t["focus"]["reference"] for t in _worklist(client, "dr-in")] == ["Task/theirs"]
    assert client.get("/fhir/Practitioner/rn/$worklist?count=3").status_code == 400


def test_care_gaps_of_the_coordinators_members(client):
    """Open care gaps of the coordinator's members (care/care_gaps.py): an out-of-control result is urgent and
    focused on it, a missing test routine and focused on the member; members of no episode of theirs stay off."""
    load(client)
    _enroll(client, "ann")
    icd10, loinc = "http://hl7.org/fhir/sid/icd-10-cm", "http://loinc.org"

    def coded(id: str, member: str, code: str) -> dict:
        return _condition(id, member) | {"code": {"coding": [{"system": icd10, "code": code}]}}

    def lab(id: str, code: str, value: float, day: str) -> dict:
        return {"resourceType": "Observation", "id": id, "status": "final", "subject": {"reference": "Patient/ann"},
                "code": {"coding": [{"system": loinc, "code": code}]}, "effectiveDateTime": day,
                "valueQuantity": {"value": value, "unit": "%"}}

    today, a1c_day, egfr_day = _at(0)[:10], _at(-10)[:10], _at(-400)[:10]
    _put(client, coded("ann-dm", "ann", "E11.9"), coded("ann-htn", "ann", "I10"), coded("ann-ckd", "ann", "N18.3"),
         lab("ann-a1c", "4548-4", 9.6, a1c_day), lab("ann-egfr", "33914-3", 52, egfr_day),
         {"resourceType": "Immunization", "id": "ann-flu", "status": "completed", "occurrenceDateTime": today,
          "patient": {"reference": "Patient/ann"},
          "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "150"}]}},
         coded("bob-dm", "bob", "E11.9"))  # bob has gaps too, but is not one of the coordinator's members
    tasks = _worklist(client)
    assert _summary(tasks) == [
        ("urgent", "Observation/ann-a1c", f"last HbA1c 9.6% on {a1c_day}"),
        ("routine", "Observation/ann-egfr", f"no eGFR since {egfr_day}"),  # due about a month ago
        ("routine", "Patient/ann", "no blood pressure on record"),
        ("routine", "Patient/ann", "no urine albumin/creatinine ratio on record"),
    ]
    assert {t["for"]["reference"] for t in tasks} == {"Patient/ann"}
    assert tasks[2]["restriction"]["period"]["end"] == f"{today}T00:00:00Z"
    assert tasks[0]["reasonCode"]["text"].endswith("member has 3 active conditions")
    for task in tasks:
        outcome = client.post("/fhir/Task/$validate", json=task, headers=FHIR_JSON).json()
        assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")], outcome
    assert _same(_worklist(client)) == _same(tasks)


def _education(id: str, member: str, requester: str, due: str | None, authored: str, status: str = "ready") -> dict:
    task = {"resourceType": "Task", "id": id, "status": status, "intent": "order",
            "code": {"coding": [{"system": BASE + "CodeSystem/cw-education", "code": "review-material"}]},
            "focus": {"reference": "DocumentReference/cw-education-diabetes", "display": "Living well with diabetes"},
            "for": {"reference": f"Patient/{member}"}, "owner": {"reference": f"Patient/{member}"},
            "requester": {"reference": requester}, "authoredOn": authored}
    if due:
        task["restriction"] = {"period": {"end": due}}
    return task


def test_teach_backs_show_when_near_or_overdue(client):
    load(client)
    _put(client,
         _education("due-soon", "ann", "Practitioner/rn", _at(2), _at(-5)),
         _education("overdue", "bob", "PractitionerRole/rn-role", _at(-1), _at(-10)),
         _education("not-yet", "cat", "Practitioner/rn", _at(10), _at(-1)),
         _education("no-due-date", "dee", "Practitioner/rn", None, _at(-15)),
         _education("done", "ann", "Practitioner/rn", _at(-1), _at(-10), status="completed"),
         _education("other-coordinator", "ann", "Practitioner/dr-in", _at(-1), _at(-10)))
    on = 'teach-back on "Living well with diabetes"'
    assert _summary(_worklist(client)) == [
        ("urgent", "Task/no-due-date", f"{on} overdue since {_at(-1)[:10]} (given {_at(-15)[:10]})"),
        ("urgent", "Task/overdue", f"{on} overdue since {_at(-1)[:10]} (given {_at(-10)[:10]})"),
        ("routine", "Task/due-soon", f"{on} due {_at(2)[:10]} (given {_at(-5)[:10]})")]
    assert [t["focus"]["reference"] for t in _worklist(client, "dr-in")] == ["Task/other-coordinator"]
