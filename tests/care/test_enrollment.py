"""Patient/[id]/$enroll and $disenroll (profiles/OperationDefinition-enroll.json, -disenroll.json) over HTTP,
on SQLite and PostgreSQL: what an enrolment writes and that each piece meets its program profile, the
refusals (no agreement, a practice outside the program, unknown people, enrolled twice), and leaving with
history kept. A refusal writes nothing."""

from __future__ import annotations

import pytest
from fhirjson import FHIR_JSON
from program_world import BASE, count, issue_expressions, load, operation

AGREED = [{"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
          {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-in"}},
          {"name": "agreement", "valueBoolean": True}, {"name": "agreementDate", "valueDateTime": "2026-11-20"}]
WRITTEN = ("Consent", "EpisodeOfCare", "CareTeam", "CarePlan")


def _enroll(client, patient: str, *parts: dict, replace: dict | None = None):
    given = {p["name"]: p for p in AGREED} | (replace or {})
    return operation(client, f"Patient/{patient}/$enroll", *[p for p in given.values() if p is not None], *parts)


def _written(response) -> dict[str, str]:
    return {p["name"]: p["valueReference"]["reference"] for p in response.json()["parameter"]}


def _nothing_written(client) -> None:
    assert [count(client, t) for t in WRITTEN] == [0, 0, 0, 0]


def test_enrolment_writes_consent_episode_team_and_draft_plan(client):
    load(client)
    response = _enroll(client, "ann")
    assert response.status_code == 200, response.text
    written = _written(response)
    assert set(written) == {"consent", "episodeOfCare", "careTeam", "carePlan"}
    resources = {name: client.get(f"/fhir/{ref}").json() for name, ref in written.items()}
    consent, episode, team, plan = (resources[n] for n in ("consent", "episodeOfCare", "careTeam", "carePlan"))
    assert consent["status"] == "active" and consent["dateTime"] == "2026-11-20"
    assert consent["performer"] == [{"reference": "Patient/ann"}]
    assert consent["verification"][0]["extension"][0]["valueReference"] == {"reference": "Practitioner/rn"}
    assert consent["organization"] == [{"reference": "Organization/plan"}]
    assert episode["status"] == "active" and episode["period"] == {"start": "2026-11-20"}
    assert episode["careManager"] == {"reference": "Practitioner/rn"}
    assert episode["team"] == [{"reference": written["careTeam"]}]
    assert episode["managingOrganization"] == {"reference": "Organization/plan"}
    members = {p["role"][0]["coding"][0]["code"]: p["member"]["reference"] for p in team["participant"]}
    assert members == {"116154003": "Patient/ann", "446050000": "Practitioner/dr-in", "768820003": "Practitioner/rn"}
    assert plan["status"] == "draft" and plan["careTeam"] == [{"reference": written["careTeam"]}]
    for resource in resources.values():
        [claimed] = resource["meta"]["profile"]
        assert claimed.startswith(BASE + "StructureDefinition/cw-")
        outcome = client.post(f"/fhir/{resource['resourceType']}/$validate", json=resource, headers=FHIR_JSON).json()
        assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")], outcome


def test_the_script_and_roles_may_be_named(client):
    load(client)
    script = {"resourceType": "QuestionnaireResponse", "id": "script-ann", "status": "completed",
              "subject": {"reference": "Patient/ann"}}
    assert client.put("/fhir/QuestionnaireResponse/script-ann", json=script, headers=FHIR_JSON).status_code == 201
    named = {"name": "script", "valueReference": {"reference": "QuestionnaireResponse/script-ann"}}
    response = _enroll(client, "ann", named,
                       replace={"coordinator": {"name": "coordinator",
                                                "valueReference": {"reference": "PractitionerRole/rn-role"}},
                                "pcp": {"name": "pcp", "valueReference": {"reference": "PractitionerRole/dr-in-role"}}})
    assert response.status_code == 200, response.text
    consent = client.get(f"/fhir/{_written(response)['consent']}").json()
    assert consent["sourceReference"] == {"reference": "QuestionnaireResponse/script-ann"}


@pytest.mark.parametrize(("patient", "replace", "expression"), [
    ("ann", {"agreement": {"name": "agreement", "valueBoolean": False}}, "agreement"),
    ("bob", {}, "Patient.generalPractitioner"),  # the practice declined
    ("dee", {}, "Patient.generalPractitioner"),  # the practice was never asked
    ("cat", {}, "Patient.generalPractitioner"),  # no PCP on record
    ("ann", {"pcp": {"name": "pcp", "valueReference": {"reference": "Practitioner/nobody"}}}, "pcp"),
    ("ann", {"coordinator": {"name": "coordinator", "valueReference": {"reference": "Practitioner/nobody"}}},
     "coordinator"),
    ("ann", {"coordinator": {"name": "coordinator", "valueReference": {"reference": "Practitioner/lone"}}},
     "coordinator"),  # works for no organization, so no health plan to enrol with
])
def test_refusals_are_422_and_write_nothing(client, patient, replace, expression):
    load(client)
    response = _enroll(client, patient, replace=replace)
    assert response.status_code == 422, response.text
    assert expression in issue_expressions(response), response.text
    _nothing_written(client)


@pytest.mark.parametrize(("replace", "expression"), [
    ({"agreement": None}, "agreement"),
    ({"coordinator": None}, "coordinator"),
    ({"pcp": None}, "pcp"),
    ({"agreementDate": None}, "agreementDate"),
    ({"agreementDate": {"name": "agreementDate", "valueDateTime": "2026-11-20T10:00:00"}}, "agreementDate"),
    ({"agreementDate": {"name": "agreementDate", "valueDateTime": "2999-01-01"}}, "agreementDate"),
    ({"agreementDate": {"name": "agreementDate", "valueString": "last Tuesday"}}, "agreementDate"),
    ({"pcp": {"name": "pcp", "valueReference": {"reference": "Patient/ann"}}}, "pcp"),
    ({"agreement": {"name": "agreement", "valueString": "yes"}}, "agreement"),
])
def test_bad_input_is_400_naming_it(client, replace, expression):
    load(client)
    response = _enroll(client, "ann", replace=replace)
    assert response.status_code in (400, 422), response.text
    if replace.get("agreement") is None and expression == "agreement":
        assert response.status_code == 422  # no agreement given is the business rule, not bad syntax
    else:
        assert response.status_code == 400
    assert expression in issue_expressions(response), response.text
    _nothing_written(client)


def test_an_unknown_member_is_404_and_enrolling_twice_409(client):
    load(client)
    assert _enroll(client, "nobody").status_code == 404
    assert _enroll(client, "ann").status_code == 200
    again = _enroll(client, "ann")
    assert again.status_code == 409, again.text
    assert [count(client, t) for t in WRITTEN] == [1, 1, 1, 1]


def test_after_the_practice_agrees_its_members_can_be_enrolled(client):
    load(client)
    assert _enroll(client, "bob", replace={"pcp": {"name": "pcp",
                                                   "valueReference": {"reference": "Practitioner/dr-out"}}}
                   ).status_code == 422
    agreed = operation(client, "Organization/not-in-program/$participation", {"name": "status", "valueCode": "agreed"})
    assert agreed.status_code == 200, agreed.text
    response = _enroll(client, "bob", replace={"pcp": {"name": "pcp",
                                                       "valueReference": {"reference": "Practitioner/dr-out"}}})
    assert response.status_code == 200, response.text


def test_disenrolment_closes_everything_and_keeps_history(client):
    load(client)
    written = _written(_enroll(client, "ann"))
    response = operation(client, "Patient/ann/$disenroll", {"name": "reason", "valueCode": "member-request"},
                         {"name": "text", "valueString": "Prefers to manage with her PCP alone"})
    assert response.status_code == 200, response.text
    closed = {(p["name"], p["valueReference"]["reference"]) for p in response.json()["parameter"]}
    assert closed == {(name, ref) for name, ref in written.items()}
    episode = client.get(f"/fhir/{written['episodeOfCare']}").json()
    assert episode["status"] == "finished" and "end" in episode["period"]
    assert episode["statusHistory"][0]["status"] == "active"
    [reason] = [e for e in episode["extension"] if e["url"].endswith("/disenrollment-reason")]
    assert reason["valueCodeableConcept"]["coding"][0]["code"] == "member-request"
    assert client.get(f"/fhir/{written['careTeam']}").json()["status"] == "inactive"
    assert client.get(f"/fhir/{written['carePlan']}").json()["status"] == "revoked"
    assert client.get(f"/fhir/{written['consent']}").json()["status"] == "inactive"
    for reference in written.values():
        assert len(client.get(f"/fhir/{reference}/_history").json()["entry"]) == 2
    again = _enroll(client, "ann")  # a member who left may join again
    assert again.status_code == 200, again.text


@pytest.mark.parametrize(("parts", "status", "expression"), [
    ([{"name": "reason", "valueCode": "member-request"}], 422, "Patient"),  # not enrolled
    ([], 400, "reason"),
    ([{"name": "reason", "valueCode": "bored"}], 422, None),  # not a disenrolment reason: the episode is refused
])
def test_disenrolment_refusals(client, parts, status, expression):
    load(client)
    if expression != "Patient":
        assert _enroll(client, "ann").status_code == 200
    before = count(client, "EpisodeOfCare", status="finished")
    response = operation(client, "Patient/ann/$disenroll", *parts)
    assert response.status_code == status, response.text
    if expression:
        assert expression in issue_expressions(response)
    assert count(client, "EpisodeOfCare", status="finished") == before
    assert operation(client, "Patient/nobody/$disenroll", {"name": "reason", "valueCode": "moved"}).status_code == 404
