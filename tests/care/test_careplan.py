"""CarePlan/[id]/$quality-check, $activate, $review and $close (profiles/OperationDefinition-quality-check.json
and the others) over HTTP, on SQLite and PostgreSQL: each rule of the documentation standard found where it
is broken, each step's refusals (wrong status 409, short of the standard 422, nothing written) and what a
step records (the plan's new version, a note, a Provenance naming who)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fhirjson import FHIR_JSON
from program_world import BASE, count, issue_expressions, load, operation

TODAY = datetime.now(UTC).date().isoformat()
LATER = (datetime.now(UTC) + timedelta(days=120)).date().isoformat()
LONG_AGO = (datetime.now(UTC) - timedelta(days=200)).date().isoformat()
PROFILE = BASE + "StructureDefinition/"
GOAL_EXTENSION = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"


def _condition(id: str, category: tuple[str, str], code: tuple[str, str], profile: str) -> dict:
    return {"resourceType": "Condition", "id": id, "meta": {"profile": [PROFILE + profile]},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "category": [{"coding": [{"system": category[0], "code": category[1]}]}],
            "code": {"coding": [{"system": code[0], "code": code[1]}]}, "subject": {"reference": "Patient/ann"}}


PROBLEM = _condition("diabetes", ("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item"),
                     ("http://snomed.info/sct", "44054006"), "cw-problem")
BARRIER = _condition("no-car", ("http://hl7.org/fhir/us/core/CodeSystem/condition-category", "health-concern"),
                     (BASE + "CodeSystem/cw-barrier", "transportation"), "cw-barrier-concern")


def _goal(id: str = "a1c", *, addresses: str = "Condition/diabetes", due: str | None = LATER,
          status_date: str | None = TODAY, lifecycle: str = "active") -> dict:
    """A goal; one without a due date cannot claim cw-goal, so it claims nothing (as an EHR's might)."""
    claim = {"meta": {"profile": [PROFILE + "cw-goal"]}} if due else {}
    return {"resourceType": "Goal", "id": id, **claim, "lifecycleStatus": lifecycle,
            "achievementStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                                              "code": "in-progress"}]},
            **({"statusDate": status_date} if status_date else {}),
            "description": {"text": "HbA1c below 8%"}, "subject": {"reference": "Patient/ann"},
            "target": [{"measure": {"text": "HbA1c"}, **({"dueDate": due} if due else {})}],
            "addresses": [{"reference": addresses}]}


def _referral(id: str = "cardiology", goal: str | None = "Goal/a1c", reason: str = "Condition/diabetes") -> dict:
    return {"resourceType": "ServiceRequest", "id": id, "meta": {"profile": [PROFILE + "cw-referral"]},
            **({"extension": [{"url": GOAL_EXTENSION, "valueReference": {"reference": goal}}]} if goal else {}),
            "status": "active", "intent": "order",
            "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
            "code": {"text": "Cardiology consult"}, "subject": {"reference": "Patient/ann"}, "authoredOn": TODAY,
            "requester": {"reference": "PractitionerRole/dr-in-role"}, "reasonReference": [{"reference": reason}]}


def _put(client, *resources: dict) -> None:
    for resource in resources:
        response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code in (200, 201), response.text


def _enrolled_plan(client) -> str:
    load(client)
    response = operation(client, "Patient/ann/$enroll",
                         {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
                         {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-in"}},
                         {"name": "agreement", "valueBoolean": True}, {"name": "agreementDate", "valueDate": TODAY})
    assert response.status_code == 200, response.text
    return next(p["valueReference"]["reference"] for p in response.json()["parameter"] if p["name"] == "carePlan")


def _fill(client, plan_ref: str, *, goals=("Goal/a1c",), activities=("ServiceRequest/cardiology",),
          addresses=("Condition/diabetes",)) -> dict:
    plan = client.get(f"/fhir/{plan_ref}").json()
    plan |= {"addresses": [{"reference": a} for a in addresses], "goal": [{"reference": g} for g in goals],
             "activity": [{"reference": {"reference": a}} for a in activities]}
    response = client.put(f"/fhir/{plan_ref}", json=plan, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return response.json()


def _ready(client) -> str:
    """An enrolled member's plan that meets the standard: a problem, a barrier worked by a goal's referral."""
    plan_ref = _enrolled_plan(client)
    _put(client, PROBLEM, BARRIER, _goal(), _referral())
    _fill(client, plan_ref)
    return plan_ref


def _findings(client, plan_ref: str, **params: str) -> list[tuple[str, str]]:
    outcome = client.get(f"/fhir/{plan_ref}/$quality-check", params=params).json()
    assert outcome["resourceType"] == "OperationOutcome"
    return [(i["expression"][0], i["diagnostics"].rpartition("(")[2].rstrip(")"))
            for i in outcome["issue"] if i["severity"] == "error"]


def test_a_plan_that_meets_the_standard_has_no_findings(client):
    plan_ref = _ready(client)
    outcome = client.get(f"/fhir/{plan_ref}/$quality-check").json()
    assert [i["severity"] for i in outcome["issue"]] == ["information"]


def test_a_fresh_draft_plan_falls_short_on_problems_and_goals(client):
    plan_ref = _enrolled_plan(client)
    assert _findings(client, plan_ref) == [("CarePlan.addresses", "cp-1"), ("CarePlan.goal", "cp-3")]


@pytest.mark.parametrize(("setup", "expected"), [
    # a goal addressing something the plan does not
    (lambda c: _put(c, _goal(addresses="Condition/no-car")), [("CarePlan.goal[0]", "cp-3")]),
    # a goal without a due date
    (lambda c: _put(c, _goal(due=None)), [("CarePlan.goal[0]", "cp-4")]),
    # an intervention pertaining to no goal
    (lambda c: _put(c, _referral(goal=None)), [("CarePlan.activity[0].reference", "cp-5")]),
], ids=["goal-off-plan", "goal-without-due-date", "intervention-without-goal"])
def test_each_rule_is_found_where_it_is_broken(client, setup, expected):
    plan_ref = _ready(client)
    setup(client)
    assert _findings(client, plan_ref) == expected


def test_barriers_need_work_or_a_note_and_references_must_resolve(client):
    plan_ref = _ready(client)
    plan = _fill(client, plan_ref, goals=("Goal/a1c",), addresses=("Condition/diabetes", "Condition/no-car"))
    assert plan["addresses"][1] == {"reference": "Condition/no-car"}
    assert _findings(client, plan_ref) == [("CarePlan.addresses[1]", "cp-6")]  # the barrier is not worked
    barrier = BARRIER | {"note": [{"text": "Member's son drives her; nothing to arrange"}]}
    _put(client, barrier)
    assert _findings(client, plan_ref) == []  # a note is enough
    _put(client, BARRIER)
    _put(client, _referral("ride", goal="Goal/a1c", reason="Condition/no-car"))
    _fill(client, plan_ref, activities=("ServiceRequest/cardiology", "ServiceRequest/ride"),
          addresses=("Condition/diabetes", "Condition/no-car"))
    assert _findings(client, plan_ref) == []  # an intervention for it is enough
    client.delete("/fhir/ServiceRequest/ride")
    assert ("CarePlan.activity[1].reference", "cp-5") in _findings(client, plan_ref)


def test_progress_must_be_recent_on_an_active_plan(client):
    plan_ref = _ready(client)
    assert operation(client, f"{plan_ref}/$activate",
                     {"name": "approvedBy", "valueReference": {"reference": "Practitioner/dr-in"}}).status_code == 200
    _put(client, _goal(status_date=LONG_AGO))
    assert _findings(client, plan_ref) == [("CarePlan.goal[0]", "cp-7")]
    assert _findings(client, plan_ref, asOf=(datetime.now(UTC) - timedelta(days=150)).date().isoformat()) == []
    review = operation(client, f"{plan_ref}/$review",
                       {"name": "reviewedBy", "valueReference": {"reference": "Practitioner/rn"}})
    assert review.status_code == 422 and issue_expressions(review) == ["CarePlan.goal[0]"]


def test_activation_review_and_closure_are_recorded(client):
    plan_ref = _ready(client)
    activated = operation(client, f"{plan_ref}/$activate",
                          {"name": "approvedBy", "valueReference": {"reference": "Practitioner/dr-in"}})
    assert activated.status_code == 200, activated.text
    plan = activated.json()
    assert plan["status"] == "active" and plan["period"]["start"]
    assert {"reference": "Practitioner/dr-in"} in plan["contributor"]
    reviewed = operation(client, f"{plan_ref}/$review",
                         {"name": "reviewedBy", "valueReference": {"reference": "Practitioner/rn"}},
                         {"name": "note", "valueString": "HbA1c down to 8.4%"})
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["note"][-1]["text"] == "Reviewed: HbA1c down to 8.4%"
    still_open = operation(client, f"{plan_ref}/$close", {"name": "reason", "valueString": "goals met"},
                           {"name": "closedBy", "valueReference": {"reference": "Practitioner/rn"}})
    assert still_open.status_code == 422 and ("CarePlan.goal[0]") in issue_expressions(still_open)
    _put(client, _goal(lifecycle="completed") | {"achievementStatus": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/goal-achievement", "code": "achieved"}]}})
    closed = operation(client, f"{plan_ref}/$close", {"name": "reason", "valueString": "goals met"},
                       {"name": "closedBy", "valueReference": {"reference": "Practitioner/rn"}})
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "completed" and closed.json()["period"]["end"]
    provenance = client.get("/fhir/Provenance").json()["entry"]
    steps = sorted((p["resource"]["activity"]["coding"][0]["code"], p["resource"]["agent"][0]["who"]["reference"],
                    p["resource"]["target"][0]["reference"]) for p in provenance)
    plan_id = plan_ref.partition("/")[2]
    assert steps == [("plan-approval", "Practitioner/dr-in", f"CarePlan/{plan_id}/_history/3"),
                     ("plan-closure", "Practitioner/rn", f"CarePlan/{plan_id}/_history/5"),
                     ("plan-review", "Practitioner/rn", f"CarePlan/{plan_id}/_history/4")]


@pytest.mark.parametrize(("step", "parts", "status", "expression"), [
    ("$review", [{"name": "reviewedBy", "valueReference": {"reference": "Practitioner/rn"}}], 409, "CarePlan.status"),
    ("$close", [{"name": "reason", "valueString": "x"},
                {"name": "closedBy", "valueReference": {"reference": "Practitioner/rn"}}], 409, "CarePlan.status"),
    ("$activate", [], 400, "approvedBy"),
    ("$activate", [{"name": "approvedBy", "valueReference": {"reference": "Practitioner/nobody"}}], 422, "approvedBy"),
    ("$activate", [{"name": "approvedBy", "valueReference": {"reference": "Patient/ann"}}], 400, "approvedBy"),
    ("$close", [{"name": "closedBy", "valueReference": {"reference": "Practitioner/rn"}}], 400, "reason"),
])
def test_step_refusals_write_nothing(client, step, parts, status, expression):
    plan_ref = _ready(client)
    response = operation(client, f"{plan_ref}/{step}", *parts)
    assert response.status_code == status, response.text
    assert expression in issue_expressions(response)
    assert client.get(f"/fhir/{plan_ref}").json()["meta"]["versionId"] == "2"
    assert count(client, "Provenance") == 0


def test_a_plan_short_of_the_standard_is_not_activated(client):
    plan_ref = _enrolled_plan(client)
    response = operation(client, f"{plan_ref}/$activate",
                         {"name": "approvedBy", "valueReference": {"reference": "Practitioner/dr-in"}})
    assert response.status_code == 422
    assert issue_expressions(response) == ["CarePlan.addresses", "CarePlan.goal"]
    assert client.get(f"/fhir/{plan_ref}").json()["status"] == "draft"


def test_unknown_plans_bad_dates_and_get(client):
    assert client.get("/fhir/CarePlan/nothing/$quality-check").status_code == 404
    plan_ref = _ready(client)
    response = client.get(f"/fhir/{plan_ref}/$quality-check", params={"asOf": "soon"})
    assert response.status_code == 400 and issue_expressions(response) == ["asOf"]
    assert client.get(f"/fhir/{plan_ref}/$activate?approvedBy=Practitioner/dr-in").status_code == 405
