"""Patient/[id]/$assign-outreach (profiles/OperationDefinition-assign-outreach.json) over HTTP, on SQLite and
PostgreSQL: a candidate given to a coordinator lands on their worklist as a first call; reassigning moves the
same Task, with the calls logged on it, to another coordinator; the refusals write nothing."""

from __future__ import annotations

from fhirjson import FHIR_JSON
from program_world import BASE, count, load, operation

OUTREACH = (BASE + "CodeSystem/cw-program", "outreach-call")


def _assign(client, member: str, coordinator: str, by: str | None = None):
    parts = [{"name": "coordinator", "valueReference": {"reference": coordinator}}]
    if by:
        parts.append({"name": "assignedBy", "valueReference": {"reference": by}})
    return operation(client, f"Patient/{member}/$assign-outreach", *parts)


def _out(response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {p["name"]: p["valueReference"]["reference"] for p in response.json()["parameter"]}


def _worklist(client, practitioner: str) -> list[tuple[str, str]]:
    entries = client.get(f"/fhir/Practitioner/{practitioner}/$worklist").json().get("entry", [])
    return [(e["resource"]["focus"]["reference"], e["resource"]["reasonCode"]["text"].partition(" overdue")[0])
            for e in entries]


def test_a_candidate_given_to_a_coordinator_is_on_their_worklist(client):
    load(client)
    out = _out(_assign(client, "dee", "Practitioner/rn", by="Practitioner/dr-in"))
    assert set(out) == {"task"} and out["task"].endswith("/_history/1")
    task_ref = out["task"].rsplit("/_history", 1)[0]
    task = client.get(f"/fhir/{task_ref}").json()
    assert task["status"] == "requested" and task["intent"] == "order"
    assert (task["code"]["coding"][0]["system"], task["code"]["coding"][0]["code"]) == OUTREACH
    assert task["for"] == {"reference": "Patient/dee"} and task["owner"] == {"reference": "Practitioner/rn"}
    assert task["meta"]["profile"] == [BASE + "StructureDefinition/cw-outreach-task"]
    assert task["note"][0]["text"] == "Assigned to Practitioner/rn"
    assert task["note"][0]["authorReference"] == {"reference": "Practitioner/dr-in"}
    assert _worklist(client, "rn") == [(task_ref, "first call to a new candidate")]
    checked = client.post("/fhir/Task/$validate", json=task, headers=FHIR_JSON).json()
    assert not [i for i in checked["issue"] if i["severity"] in ("error", "fatal")], checked


def test_reassigning_moves_the_same_task_and_its_calls(client):
    load(client)
    task_ref = _out(_assign(client, "dee", "Practitioner/rn"))["task"].rsplit("/_history", 1)[0]
    called = operation(client, "Patient/dee/$log-outreach", {"name": "party", "valueCode": "member"},
                       {"name": "outcome", "valueCode": "no-answer"})
    assert called.status_code == 200, called.text
    moved = _out(_assign(client, "dee", "Practitioner/lone"))
    assert moved == {"task": f"{task_ref}/_history/3", "previousOwner": "Practitioner/rn"}
    task = client.get(f"/fhir/{task_ref}").json()
    assert task["owner"] == {"reference": "Practitioner/lone"} and len(task["output"]) == 1
    assert [n["text"] for n in task["note"]][-1] == "Assigned to Practitioner/lone"
    assert _worklist(client, "rn") == [] and [f for f, _ in _worklist(client, "lone")] == [task_ref]
    # A PractitionerRole that is not a coordinator's cannot own outreach (cw-outreach-task's owner).
    refused = _assign(client, "dee", "PractitionerRole/dr-out-role")
    assert refused.status_code == 422 and refused.json()["issue"][0]["expression"] == ["Task.owner.reference"]
    assert count(client, "Task") == 1


def test_refusals_write_nothing(client):
    load(client)
    enrolled = operation(client, "Patient/ann/$enroll",
                         {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
                         {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-in"}},
                         {"name": "agreement", "valueBoolean": True},
                         {"name": "agreementDate", "valueDate": "2026-01-05"})
    assert enrolled.status_code == 200, enrolled.text
    _out(_assign(client, "dee", "Practitioner/rn"))
    before = count(client, "Task")
    for response, status, code, where in (
            (_assign(client, "nobody", "Practitioner/rn"), 404, "not-found", None),
            (_assign(client, "ann", "Practitioner/rn"), 422, "business-rule", "Patient"),
            (_assign(client, "dee", "Practitioner/rn"), 409, "duplicate", "coordinator"),
            (_assign(client, "bob", "Practitioner/ghost"), 422, "not-found", "coordinator"),
            (_assign(client, "bob", "Organization/plan"), 400, "invalid", "coordinator"),
            (_assign(client, "bob", "Practitioner/rn", by="Practitioner/ghost"), 422, "not-found", "assignedBy"),
            (operation(client, "Patient/bob/$assign-outreach"), 400, "invalid", "coordinator")):
        assert response.status_code == status, response.text
        issue = response.json()["issue"][0]
        assert issue["code"] == code, issue
        if where:
            assert issue["expression"] == [where], issue
    assert count(client, "Task") == before
