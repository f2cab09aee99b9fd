"""The program's own measures (profiles/Measure-cw-*.json) through Measure/[id]/$evaluate-measure, over HTTP on
SQLite and PostgreSQL: a hand-made year of program work in 2026 (calls, enrolments, care-plan steps, goals,
practices' participation), with the known count, score and strata of each; and work outside the period or
entered in error left out."""

from __future__ import annotations

import pytest
from fhirjson import FHIR_JSON
from program_world import BASE, load

PROGRAM = BASE + "CodeSystem/cw-program"
OUTCOME = BASE + "CodeSystem/cw-outreach-outcome"
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
PERIOD = {"periodStart": "2026-01-01", "periodEnd": "2026-12-31"}


def _call(id: str, member: str, sender: str, outcome: str, sent: str, status: str | None = None) -> dict:
    made = outcome in ("reached", "declined", "callback-requested")
    return {"resourceType": "Communication", "id": id, "status": status or ("completed" if made else "not-done"),
            "statusReason": {"coding": [{"system": OUTCOME, "code": outcome}]},
            "category": [{"coding": [{"system": PROGRAM, "code": "outreach-call"}]}],
            "subject": {"reference": f"Patient/{member}"}, "sent": sent, "sender": {"reference": sender}}


def _episode(id: str, member: str, start: str, status: str = "active") -> dict:
    return {"resourceType": "EpisodeOfCare", "id": id, "status": status,
            "type": [{"coding": [{"system": PROGRAM, "code": "chronic-care-coordination"}]}],
            "patient": {"reference": f"Patient/{member}"}, "period": {"start": start}}


def _plan(id: str, member: str, goals: list[str], status: str = "active") -> dict:
    return {"resourceType": "CarePlan", "id": id, "status": status, "intent": "plan",
            "category": [{"coding": [{"system": PROGRAM, "code": "chronic-care-coordination"}]}],
            "subject": {"reference": f"Patient/{member}"}, "goal": [{"reference": f"Goal/{g}"} for g in goals]}


def _step(id: str, plan: str, activity: str, recorded: str) -> dict:
    return {"resourceType": "Provenance", "id": id, "target": [{"reference": f"CarePlan/{plan}/_history/1"}],
            "recorded": recorded, "activity": {"coding": [{"system": PROGRAM, "code": activity}]},
            "agent": [{"who": {"reference": "Practitioner/rn"}}]}


def _goal(id: str, member: str, lifecycle: str, achievement: str | None, status_date: str | None,
          due: str | None) -> dict:
    goal = {"resourceType": "Goal", "id": id, "lifecycleStatus": lifecycle, "description": {"text": id},
            "subject": {"reference": f"Patient/{member}"}}
    if achievement:
        goal["achievementStatus"] = {"coding": [{"system": ACHIEVEMENT, "code": achievement}]}
    if status_date:
        goal["statusDate"] = status_date
    if due:
        goal["target"] = [{"measure": {"text": "target"}, "dueDate": due}]
    return goal


def _condition(id: str, member: str, code: str) -> dict:
    return {"resourceType": "Condition", "id": id, "subject": {"reference": f"Patient/{member}"},
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": "active"}]},
            "code": {"coding": [{"system": ICD, "code": code}]}, "onsetDateTime": "2019-01-01"}


YEAR = [
    # Calls: rn makes three in 2026 (one reaches Ann), lone one (voicemail); a 2025 call and one entered in
    # error are left out.
    _call("call-1", "ann", "Practitioner/rn", "no-answer", "2026-02-01T10:00:00Z"),
    _call("call-2", "ann", "Practitioner/rn", "reached", "2026-02-08T10:00:00Z"),
    _call("call-3", "bob", "Practitioner/rn", "wrong-number", "2026-03-01T10:00:00Z"),
    _call("call-4", "cat", "Practitioner/lone", "voicemail", "2026-03-02T10:00:00Z"),
    _call("call-old", "dee", "Practitioner/rn", "reached", "2025-12-30T10:00:00Z"),
    _call("call-void", "dee", "Practitioner/rn", "reached", "2026-05-01T10:00:00Z", status="entered-in-error"),
    # Ann is enrolled in 2026; Dee was enrolled in 2025, which the 2026 rate does not count.
    _episode("ep-ann", "ann", "2026-02-10"),
    _episode("ep-dee", "dee", "2025-06-01"),
    # Care plans: Ann's approved in April and reviewed in July; Dee's closed in September, approved in 2025.
    _plan("plan-ann", "ann", ["g-met", "g-due", "g-missed", "g-proposed", "g-next-year"]),
    _plan("plan-dee", "dee", ["g-dee"], status="completed"),
    _step("prov-1", "plan-ann", "plan-approval", "2026-04-10T10:00:00Z"),
    _step("prov-2", "plan-ann", "plan-review", "2026-07-01T10:00:00Z"),
    _step("prov-3", "plan-dee", "plan-closure", "2026-09-01T10:00:00Z"),
    _step("prov-4", "plan-dee", "plan-approval", "2025-05-01T10:00:00Z"),
    # Goals: one met, one due and open, one not achieved (in the denominator); one proposed and one due next
    # year (not); Dee's sustained.
    _goal("g-met", "ann", "completed", "achieved", "2026-06-01", "2026-09-01"),
    _goal("g-due", "ann", "active", "in-progress", None, "2026-10-01"),
    _goal("g-missed", "ann", "completed", "not-achieved", "2026-08-01", None),
    _goal("g-proposed", "ann", "proposed", None, None, "2026-05-01"),
    _goal("g-next-year", "ann", "active", "in-progress", None, "2027-03-01"),
    _goal("g-dee", "dee", "active", "sustaining", "2026-09-01", None),
    # Bob has three chronic conditions and is not enrolled: a candidate.
    _condition("bob-dm", "bob", "E11.9"), _condition("bob-htn", "bob", "I10"), _condition("bob-hf", "bob", "I50.9"),
]


@pytest.fixture
def year(client):
    load(client)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in YEAR]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return client


def _report(client, measure: str, **params: str) -> dict:
    response = client.get(f"/fhir/Measure/{measure}/$evaluate-measure", params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _counts(group: dict) -> dict[str, int]:
    return {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}


def _strata(group: dict) -> dict[str, tuple[dict[str, int], float | None]]:
    return {s["value"]["text"]: (_counts(s), s.get("measureScore", {}).get("value"))
            for s in group["stratifier"][0]["stratum"]}


def test_outreach_attempts_and_reach_rate_per_coordinator(year):
    [group] = _report(year, "cw-outreach")["group"]
    assert _counts(group) == {"initial-population": 4, "denominator": 4, "numerator": 1}
    assert group["measureScore"]["value"] == 0.25
    assert _strata(group) == {
        "Practitioner/lone": ({"initial-population": 1, "denominator": 1, "numerator": 0}, 0),
        "Practitioner/rn": ({"initial-population": 3, "denominator": 3, "numerator": 1}, 0.3333)}


def test_enrolment_rate(year):
    [group] = _report(year, "cw-enrollment-rate")["group"]
    assert _counts(group) == {"initial-population": 3, "denominator": 3, "numerator": 1}  # Ann of Ann, Bob, Cat
    assert group["measureScore"]["value"] == 0.3333
    strata = _strata(group)
    assert strata["Organization/in-program"][0]["numerator"] == 1 and strata["none"][0]["denominator"] == 1


def test_care_plans_activated_reviewed_and_closed(year):
    report = _report(year, "cw-care-plans", reportType="subject-list")
    groups = {g["id"]: g for g in report["group"]}
    assert {id: _counts(g) for id, g in groups.items()} == {step: {"initial-population": 1} for step in (
        "activated", "reviewed", "closed")}
    lists = {item["id"]: [e["item"]["reference"] for e in item.get("entry", [])] for item in report["contained"]}
    assert lists["group1-initial-population"] == ["CarePlan/plan-ann"]
    assert lists["group3-initial-population"] == ["CarePlan/plan-dee"]
    assert "measureScore" not in groups["activated"]


def test_goals_met(year):
    [group] = _report(year, "cw-goals-met", reportType="subject-list")["group"]
    assert _counts(group) == {"initial-population": 4, "denominator": 4, "numerator": 2}  # g-met and g-dee
    assert group["measureScore"]["value"] == 0.5
    only_ann = _report(year, "cw-goals-met", subject="Patient/ann", reportType="population")
    assert _counts(only_ann["group"][0]) == {"initial-population": 3, "denominator": 3, "numerator": 1}


def test_practices_participating(year):
    [group] = _report(year, "cw-practices-participating")["group"]
    # in-program agreed since 2025; not-in-program declined; never-asked has no status and is not counted.
    assert _counts(group) == {"initial-population": 2, "denominator": 2, "numerator": 1}
    assert group["measureScore"]["value"] == 0.5
    before = _report(year, "cw-practices-participating", periodStart="2024-01-01", periodEnd="2024-12-31")
    assert _counts(before["group"][0])["numerator"] == 0


def test_members_identified(year):
    [group] = _report(year, "cw-members-identified", reportType="subject-list")["group"]
    assert _counts(group) == {"initial-population": 1}
    assert _strata(group) == {"Organization/not-in-program": ({"initial-population": 1}, None)}
    individual = _report(year, "cw-members-identified", subject="Patient/bob")
    assert individual["type"] == "individual" and _counts(individual["group"][0]) == {"initial-population": 1}


def test_the_demo_data_set_gives_each_program_measure_something_to_count(client):
    from fhir_server.care.demo import REFERENCE_DATE, demo_bundle

    response = client.post("/fhir", json=demo_bundle(members=40, seed=7), headers=FHIR_JSON)
    assert response.status_code == 200, response.text[:500]
    year = {"periodStart": str(REFERENCE_DATE.year - 1), "periodEnd": str(REFERENCE_DATE.year)}
    counted = {measure: [_counts(g)["initial-population"] for g in _report(client, measure, **year)["group"]]
               for measure in ("cw-outreach", "cw-enrollment-rate", "cw-care-plans", "cw-goals-met",
                               "cw-practices-participating")}
    # Every measure counts something; the demo closes no care plan, so that group alone is empty.
    assert all(n > 0 for ns in counted.values() for n in ns[:2]) and counted["cw-care-plans"][2] == 0, counted
