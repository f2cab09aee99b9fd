"""Patient/[id]/$assign-education and Task/[id]/$record-teach-back (profiles/OperationDefinition-assign-education.json
and -record-teach-back.json), over HTTP on SQLite and PostgreSQL: materials chosen by the member's conditions and
medicines or by name, the Task, CommunicationRequest and DocumentReference written, the teach-back of each outcome,
and refusals that write nothing. The last tests check the shipped materials themselves."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON
from program_world import count, issue_expressions, load, operation

ROOT = Path(__file__).resolve().parents[2]
MATERIALS = ROOT / "fhir_server" / "care" / "knowledge" / "education"
INDEX = json.loads((MATERIALS / "index.json").read_text())
BASE = "https://careweave.example.org/fhir/"
EDUCATION = BASE + "CodeSystem/cw-education"
OUTCOME = BASE + "CodeSystem/cw-teach-back-outcome"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
RN = "Practitioner/rn"
WRITTEN = ("Task", "CommunicationRequest", "DocumentReference", "Observation")
DIABETES, HEART_FAILURE, COPD = "44054006", "88805009", "13645005"
WARFARIN, METFORMIN = "855332", "860975"


def _condition(id: str, patient: str, code: str, clinical: str = "active", verification: str = "confirmed") -> dict:
    return {"resourceType": "Condition", "id": id,
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": clinical}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": verification}]},
            "code": {"coding": [{"system": SNOMED, "code": code}]}, "subject": {"reference": f"Patient/{patient}"}}


def _medicine(id: str, patient: str, rxnorm: str) -> dict:
    return {"resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
            "subject": {"reference": f"Patient/{patient}"}}


@pytest.fixture
def world(client):
    """The program world (tests/program_world.py): coordinator rn; ann is diabetic; bob has heart failure and takes
    warfarin; cat takes warfarin and metformin; dee has only a refuted diabetes and a resolved COPD."""
    load(client)
    for resource in (_condition("ann-dm", "ann", DIABETES), _condition("bob-hf", "bob", HEART_FAILURE),
                     _medicine("bob-warfarin", "bob", WARFARIN), _medicine("cat-warfarin", "cat", WARFARIN),
                     _medicine("cat-metformin", "cat", METFORMIN),
                     _condition("dee-dm", "dee", DIABETES, verification="refuted"),
                     _condition("dee-copd", "dee", COPD, clinical="resolved")):
        response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code == 201, response.text
    return client


def _assign(client, patient: str, *materials: str, coordinator: str | None = RN, due: str | None = None,
            medium: str | None = None):
    parts = [{"name": "material", "valueString": m} for m in materials]
    if coordinator:
        parts.append({"name": "coordinator", "valueReference": {"reference": coordinator}})
    if due:
        parts.append({"name": "due", "valueDate": due})
    if medium:
        parts.append({"name": "medium", "valueCode": medium})
    return operation(client, f"Patient/{patient}/$assign-education", *parts)


def _assigned(client, patient: str, *materials: str, **inputs) -> list[dict]:
    """Each assignment of a call that must succeed, as {part name: value}."""
    response = _assign(client, patient, *materials, **inputs)
    assert response.status_code == 200, response.text
    return [{p["name"]: p.get("valueString") or p["valueReference"]["reference"] for p in a["part"]}
            for a in response.json()["parameter"]]


def _teach_back(client, task: str, outcome: str | None, note: str | None = None, coordinator: str | None = RN):
    parts = [{"name": "outcome", "valueCode": outcome}] if outcome else []
    if note:
        parts.append({"name": "note", "valueString": note})
    if coordinator:
        parts.append({"name": "coordinator", "valueReference": {"reference": coordinator}})
    return operation(client, f"{task}/$record-teach-back", *parts)


def _taught(client, task: str, outcome: str, note: str | None = None) -> dict:
    response = _teach_back(client, task, outcome, note)
    assert response.status_code == 200, response.text
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in response.json()["parameter"]}


def _read(client, reference: str) -> dict:
    response = client.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    return response.json()


def _versions(client, reference: str) -> list[dict]:
    """The resource's versions, oldest first."""
    bundle = client.get(f"/fhir/{reference}/_history").json()
    return sorted((e["resource"] for e in bundle["entry"]), key=lambda r: int(r["meta"]["versionId"]))


def _counts(client) -> dict[str, int]:
    return {t: count(client, t) for t in WRITTEN}


def _code(concept: dict) -> tuple[str, str]:
    coding = concept["coding"][0]
    return coding["system"], coding["code"]


# -- assignment -----------------------------------------------------------------------------------------------------


def test_a_diabetic_member_gets_the_diabetes_material(world):
    [assignment] = _assigned(world, "ann")
    assert assignment["material"] == "diabetes"
    assert assignment["documentReference"] == "DocumentReference/cw-education-diabetes"
    task = _read(world, assignment["task"])
    assert task["meta"]["profile"] == [BASE + "StructureDefinition/cw-education-task"]
    assert (task["status"], task["intent"], task["priority"]) == ("ready", "order", "routine")
    assert _code(task["code"]) == (EDUCATION, "review-material")
    assert task["for"] == task["owner"] == {"reference": "Patient/ann"}
    assert task["requester"] == {"reference": RN}
    assert task["focus"] == {"reference": "DocumentReference/cw-education-diabetes",
                             "display": "Living well with diabetes"}
    assert task["authoredOn"] and "restriction" not in task
    request = _read(world, assignment["communicationRequest"])
    assert request["meta"]["profile"] == [BASE + "StructureDefinition/cw-communication-request"]
    assert request["status"] == "active"
    assert request["basedOn"] == [{"reference": assignment["task"]}]
    assert _code(request["category"][0]) == (EDUCATION, "patient-education")
    assert request["subject"] == {"reference": "Patient/ann"}
    assert request["recipient"] == [{"reference": "Patient/ann"}]
    assert request["requester"] == request["sender"] == {"reference": RN}
    assert request["payload"] == [{"contentReference": {"reference": "DocumentReference/cw-education-diabetes",
                                                        "display": "Living well with diabetes"}}]
    assert "medium" not in request


def test_the_material_is_stored_with_the_shipped_text(world):
    _assigned(world, "ann")
    document = _read(world, "DocumentReference/cw-education-diabetes")
    assert document["meta"]["profile"] == [BASE + "StructureDefinition/cw-education-material"]
    assert (document["status"], document["docStatus"]) == ("current", "final")
    assert document["identifier"] == [{"system": BASE + "sid/education-material", "value": "diabetes"}]
    assert _code(document["type"]) == (EDUCATION, "education-material")
    assert _code(document["category"][0]) == (EDUCATION, "patient-education")
    assert "Standards of Care in Diabetes-2025" in document["description"]
    attachment = document["content"][0]["attachment"]
    assert (attachment["contentType"], attachment["language"], attachment["title"]) == (
        "text/markdown", "en", "Living well with diabetes")
    assert base64.b64decode(attachment["data"]).decode() == (MATERIALS / "diabetes.md").read_text()
    assert document["context"]["related"][0]["identifier"]["value"] == BASE + "ValueSet/cw-chronic-diabetes"
    assert "subject" not in document


def test_the_material_is_written_once_and_again_only_when_it_changed(world):
    _assigned(world, "ann", "diabetes")
    _assigned(world, "bob", "diabetes")
    assert len(_versions(world, "DocumentReference/cw-education-diabetes")) == 1
    edited = _read(world, "DocumentReference/cw-education-diabetes")
    edited["description"] = "Edited by hand"
    assert world.put("/fhir/DocumentReference/cw-education-diabetes", json=edited,
                     headers=FHIR_JSON).status_code == 200
    _assigned(world, "cat", "diabetes")
    versions = _versions(world, "DocumentReference/cw-education-diabetes")
    assert len(versions) == 3
    assert versions[-1]["description"] == versions[0]["description"] != "Edited by hand"


def test_heart_failure_and_warfarin_get_both_materials(world):
    assigned = _assigned(world, "bob")
    assert [a["material"] for a in assigned] == ["heart-failure", "anticoagulation"]
    assert len({a["task"] for a in assigned}) == len({a["communicationRequest"] for a in assigned}) == 2
    assert count(world, "DocumentReference") == 2


def test_two_medicines_get_the_adherence_material(world):
    assert [a["material"] for a in _assigned(world, "cat")] == ["anticoagulation", "medication-adherence"]


def test_named_material_with_due_date_and_medium(world):
    due = (datetime.now(UTC) + timedelta(days=14)).date().isoformat()
    [assignment] = _assigned(world, "dee", "copd", due=due, medium="mail")
    assert assignment["material"] == "copd"
    assert _read(world, assignment["task"])["restriction"] == {"period": {"end": due}}
    request = _read(world, assignment["communicationRequest"])
    assert request["medium"] == [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                                              "code": "MAILWRIT", "display": "mail"}]}]


def test_a_fitting_material_with_an_open_task_is_left_out(world):
    _assigned(world, "bob", "heart-failure")
    assert [a["material"] for a in _assigned(world, "bob")] == ["anticoagulation"]


@pytest.mark.parametrize(("patient", "materials", "inputs", "status", "code", "expression"), [
    ("nobody", (), {}, 404, "not-found", None),
    ("ann", ("asthma",), {}, 400, "invalid", "material"),
    ("ann", (), {"medium": "fax"}, 400, "invalid", "medium"),
    ("ann", (), {"due": "2020-01-01"}, 400, "invalid", "due"),
    ("ann", (), {"coordinator": None}, 400, "invalid", "coordinator"),
    ("ann", (), {"coordinator": "Practitioner/ghost"}, 422, "not-found", "coordinator"),
    ("dee", (), {}, 422, "business-rule", "material"),
], ids=["unknown patient", "unknown material", "unknown medium", "past due date", "no coordinator",
        "coordinator not on the server", "no material fits"])
def test_refusals_write_nothing(world, patient, materials, inputs, status, code, expression):
    response = _assign(world, patient, *materials, **inputs)
    assert response.status_code == status, response.text
    assert response.json()["issue"][0]["code"] == code
    if expression:
        assert issue_expressions(response) == [expression]
    assert _counts(world) == dict.fromkeys(WRITTEN, 0)


def test_a_material_with_an_open_task_is_not_assigned_twice(world):
    [first] = _assigned(world, "ann", "diabetes")
    before = _counts(world)
    for materials in (("diabetes", "copd"), ()):
        response = _assign(world, "ann", *materials)
        assert response.status_code == 409, response.text
        assert response.json()["issue"][0]["code"] == "duplicate"
        assert first["task"] in response.json()["issue"][0]["diagnostics"]
        assert _counts(world) == before
    _taught(world, first["task"], "understood")
    assert [a["material"] for a in _assigned(world, "ann")] == ["diabetes"]


# -- teach-back -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("outcome", "status", "statuses", "request_status", "again"), [
    ("understood", "completed", ["ready", "in-progress", "completed"], "completed", False),
    ("partly-understood", "completed", ["ready", "in-progress", "completed"], "completed", True),
    ("not-understood", "completed", ["ready", "in-progress", "completed"], "completed", True),
    ("declined", "cancelled", ["ready", "cancelled"], "revoked", False),
])
def test_teach_back(world, outcome, status, statuses, request_status, again):
    [assignment] = _assigned(world, "ann")
    done = _taught(world, assignment["task"], outcome, note="Knew the low blood sugar signs")
    assert done["task"] == {"reference": assignment["task"]} and done["status"] == status
    assert done["communicationRequest"] == {"reference": assignment["communicationRequest"]}
    task = _read(world, assignment["task"])
    assert [v["status"] for v in _versions(world, assignment["task"])] == statuses
    assert task["businessStatus"]["coding"][0] == {"system": OUTCOME, "code": outcome,
                                                   "display": outcome.replace("-", " ").capitalize()}
    assert [o["type"]["coding"][0]["code"] for o in task["output"]] == ["teach-back", "teach-back"]
    assert task["output"][0]["valueCodeableConcept"] == task["businessStatus"]
    assert task["output"][1]["valueReference"] == done["observation"]
    assert task["note"][0]["text"] == "Knew the low blood sugar signs"
    assert ("statusReason" in task) == (outcome == "declined")
    observation = _read(world, done["observation"]["reference"])
    assert observation["status"] == "final"
    assert _code(observation["code"]) == (EDUCATION, "teach-back")
    assert observation["subject"] == {"reference": "Patient/ann"}
    assert observation["focus"] == [{"reference": "DocumentReference/cw-education-diabetes"}]
    assert observation["performer"] == [{"reference": RN}]
    assert observation["valueCodeableConcept"] == task["businessStatus"]
    assert _read(world, assignment["communicationRequest"])["status"] == request_status
    assert ("followUp" in done) == again
    if again:
        follow_up = _read(world, done["followUp"]["reference"])
        assert follow_up["status"] == "ready" and follow_up["basedOn"] == [{"reference": assignment["task"]}]
        assert (follow_up["focus"], follow_up["for"], follow_up["owner"]) == (task["focus"], task["for"], task["owner"])
        assert follow_up["requester"] == {"reference": RN}
        assert _code(follow_up["code"]) == (EDUCATION, "review-material")
        # The follow-up ends with a teach-back of its own; no request to send the material again was made.
        closed = _taught(world, done["followUp"]["reference"], "understood")
        assert closed["status"] == "completed" and "communicationRequest" not in closed


def test_an_ended_task_takes_no_teach_back(world):
    [assignment] = _assigned(world, "ann")
    _taught(world, assignment["task"], "understood")
    before = _counts(world)
    response = _teach_back(world, assignment["task"], "understood")
    assert response.status_code == 409, response.text
    assert response.json()["issue"][0]["code"] == "business-rule"
    assert issue_expressions(response) == ["Task.status"]
    assert _counts(world) == before


def test_teach_back_refusals(world):
    [assignment] = _assigned(world, "ann")
    outreach = {"resourceType": "Task", "id": "call", "status": "in-progress", "intent": "order",
                "code": {"coding": [{"system": BASE + "CodeSystem/cw-program", "code": "outreach-call"}]},
                "for": {"reference": "Patient/ann"}}
    assert world.put("/fhir/Task/call", json=outreach, headers=FHIR_JSON).status_code == 201
    before = _counts(world)
    cases = [("Task/nothing", "understood", RN, 404, "not-found", []),
             (assignment["task"], "maybe", RN, 400, "invalid", ["outcome"]),
             (assignment["task"], None, RN, 400, "invalid", ["outcome"]),
             (assignment["task"], "understood", None, 400, "invalid", ["coordinator"]),
             (assignment["task"], "understood", "Practitioner/ghost", 422, "not-found", ["coordinator"]),
             ("Task/call", "understood", RN, 422, "business-rule", ["Task.code"])]
    for task, outcome, coordinator, status, code, expressions in cases:
        response = _teach_back(world, task, outcome, coordinator=coordinator)
        assert response.status_code == status, (task, outcome, response.text)
        assert response.json()["issue"][0]["code"] == code
        assert issue_expressions(response) == expressions
    assert _counts(world) == before
    assert _read(world, assignment["task"])["status"] == "ready"


# -- the definitions and the materials ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "resource_type", "inputs"), [
    ("assign-education", "Patient", {"material", "coordinator", "due", "medium"}),
    ("record-teach-back", "Task", {"outcome", "note", "coordinator"}),
])
def test_the_operation_definition_is_valid_and_listed(client, name, resource_type, inputs):
    definition = json.loads((ROOT / "profiles" / f"OperationDefinition-{name}.json").read_text())
    response = client.post("/fhir/OperationDefinition/$validate", json=definition, headers=FHIR_JSON)
    assert response.status_code == 200
    assert [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")] == []
    assert {p["name"] for p in definition["parameter"] if p["use"] == "in"} == inputs
    listed = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == resource_type)
    assert {"name": name, "definition": definition["url"]} in listed["operation"]


def test_every_material_file_is_in_the_index_and_every_entry_has_its_file():
    files = {path.name for path in MATERIALS.glob("*.md")}
    assert files == {m["file"] for m in INDEX["materials"]}
    assert [m["id"] for m in INDEX["materials"]] == [
        "diabetes", "hypertension", "heart-failure", "copd", "ckd", "anticoagulation", "medication-adherence"]
    assert all(m["file"] == m["id"] + ".md" for m in INDEX["materials"])


@pytest.mark.parametrize("material", INDEX["materials"], ids=lambda m: m["id"])
def test_material_cites_a_guideline_has_a_key_and_a_length_in_range(material):
    text = (MATERIALS / material["file"]).read_text()
    assert 250 <= len(text.split()) <= 450, len(text.split())
    assert text.startswith(f"# {material['title']}\n")
    for section in ("## What it is", "## What you can do each day", "## Warning signs", "## Questions to ask"):
        assert section in text
    words = " ".join(text.split())
    assert "Call 911" in words and "primary care doctor (PCP)" in words
    assert material["guideline"] and material["figures"] and material["language"] == "en"
    [(key, value)] = material["keys"].items()
    if key == "condition":
        assert (ROOT / "profiles" / f"ValueSet-{value.rpartition('/')[2]}.json").is_file()
    elif key == "drugClass":
        classes = json.loads((ROOT / "fhir_server" / "care" / "knowledge" / "drug_classes.json").read_text())
        assert value in classes["classes"]
    else:
        assert key == "activeMedicines" and value >= 2
