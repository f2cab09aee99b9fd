"""Organization/[id]/$participation (profiles/OperationDefinition-participation.json) over HTTP, on SQLite
and PostgreSQL: each decision is a new version of the practice, moves follow the recruitment, and a
refusal writes nothing."""

from __future__ import annotations

import pytest
from program_world import PARTICIPATION, load, operation


def _status(client, id: str) -> dict[str, object]:
    organization = client.get(f"/fhir/Organization/{id}").json()
    [extension] = [e for e in organization.get("extension", []) if e["url"] == PARTICIPATION]
    return {p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in extension["extension"]}


def test_a_practice_is_invited_agrees_and_withdraws_with_its_history(client):
    load(client)
    steps = [("invited", "Sent the program pack"), ("agreed", "Dr Other signs up"), ("withdrawn", "Too busy")]
    for status, note in steps:
        response = operation(client, "Organization/never-asked/$participation",
                             {"name": "status", "valueCode": status}, {"name": "note", "valueString": note},
                             {"name": "contact", "valueReference": {"reference": "PractitionerRole/dr-never-role"}})
        assert response.status_code == 200, response.text
        assert response.json()["resourceType"] == "Organization"
        current = _status(client, "never-asked")
        assert current["status"] == status and current["note"] == note
        assert current["contact"] == {"reference": "PractitionerRole/dr-never-role"}
    period = _status(client, "never-asked")["period"]
    assert period["start"] <= period["end"]
    history = client.get("/fhir/Organization/never-asked/_history").json()
    assert len(history["entry"]) == 4  # as loaded, then one version per decision
    recorded = [next(p["valueCode"] for e in entry["resource"].get("extension", []) if e["url"] == PARTICIPATION
                     for p in e["extension"] if p["url"] == "status")
                for entry in history["entry"][:3]]
    assert recorded == ["withdrawn", "agreed", "invited"]  # newest first (http.html#history)


def test_a_practice_that_declined_may_agree_later(client):
    load(client)
    response = operation(client, "Organization/not-in-program/$participation",
                         {"name": "status", "valueCode": "agreed"})
    assert response.status_code == 200, response.text
    assert _status(client, "not-in-program")["status"] == "agreed"
    assert "start" in _status(client, "not-in-program")["period"]


def test_a_query_string_call_works_too(client):
    load(client)
    response = client.post("/fhir/Organization/never-asked/$participation?status=invited",
                           json={"resourceType": "Parameters"}, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text
    assert _status(client, "never-asked")["status"] == "invited"


@pytest.mark.parametrize(("organization", "status"), [("in-program", "agreed"), ("in-program", "invited"),
                                                       ("in-program", "declined"), ("never-asked", "withdrawn"),
                                                       ("not-in-program", "withdrawn")])
def test_an_illegal_move_is_409_naming_both_statuses(client, organization, status):
    load(client)
    before = client.get(f"/fhir/Organization/{organization}").json()["meta"]["versionId"]
    response = operation(client, f"Organization/{organization}/$participation",
                         {"name": "status", "valueCode": status})
    assert response.status_code == 409, response.text
    issue = response.json()["issue"][0]
    current = _status(client, organization)["status"] if organization != "never-asked" else "not recorded"
    assert current in issue["diagnostics"] and status in issue["diagnostics"]
    assert client.get(f"/fhir/Organization/{organization}").json()["meta"]["versionId"] == before


@pytest.mark.parametrize(("parts", "expression"), [
    ([], "status"),
    ([{"name": "status", "valueCode": "participating"}], "status"),
    ([{"name": "status", "valueCode": "agreed"}, {"name": "colour", "valueString": "red"}], "colour"),
    ([{"name": "status", "valueCode": "agreed"}, {"name": "contact", "valueReference": {"reference": "Patient/ann"}}],
     "contact"),
])
def test_bad_input_is_400_naming_it(client, parts, expression):
    load(client)
    response = operation(client, "Organization/never-asked/$participation", *parts)
    assert response.status_code == 400, response.text
    assert expression in [e for i in response.json()["issue"] for e in i.get("expression", [])]
    assert client.get("/fhir/Organization/never-asked").json()["meta"]["versionId"] == "1"


def test_an_unknown_contact_is_422_and_an_unknown_practice_404(client):
    load(client)
    response = operation(client, "Organization/never-asked/$participation", {"name": "status", "valueCode": "invited"},
                         {"name": "contact", "valueReference": {"reference": "Practitioner/nobody"}})
    assert response.status_code == 422, response.text
    assert client.get("/fhir/Organization/never-asked").json()["meta"]["versionId"] == "1"
    response = operation(client, "Organization/nowhere/$participation", {"name": "status", "valueCode": "invited"})
    assert response.status_code == 404


def test_it_changes_data_so_get_is_405_and_it_is_declared(client):
    response = client.get("/fhir/Organization/in-program/$participation?status=agreed")
    assert response.status_code == 405
    statement = client.get("/fhir/metadata").json()
    organization = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Organization")
    definition = "https://careweave.example.org/fhir/OperationDefinition/participation"
    assert {"name": "participation", "definition": definition} in organization["operation"]
