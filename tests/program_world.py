"""A small program world for the care operations' tests, shaped by the program's profiles: the health
plan and a coordinator working for it, two practices (one in the program, one not) with a PCP each, and
members attributed to those PCPs. Loaded with PUTs over HTTP, so on whichever database the client uses."""

from __future__ import annotations

from fhirjson import FHIR_JSON

BASE = "https://careweave.example.org/fhir/"
PARTICIPATION = BASE + "StructureDefinition/program-participation"
MEMBER_ID = BASE + "sid/member-id"
NPI = "http://hl7.org/fhir/sid/us-npi"
SNOMED = "http://snomed.info/sct"


def practice(id: str, status: str | None, npi: str) -> dict:
    organization = {"resourceType": "Organization", "id": id, "active": True, "name": f"Practice {id}",
                    "identifier": [{"system": NPI, "value": npi}]}
    if status is not None:
        parts = [{"url": "status", "valueCode": status}]
        if status == "agreed":
            parts.append({"url": "period", "valuePeriod": {"start": "2025-01-01"}})
        organization["extension"] = [{"url": PARTICIPATION, "extension": parts}]
    return organization


def practitioner(id: str, family: str, npi: str) -> dict:
    return {"resourceType": "Practitioner", "id": id, "identifier": [{"system": NPI, "value": npi}],
            "name": [{"family": family, "given": ["Alex"]}]}


def role(id: str, practitioner_id: str, organization: str, code: dict) -> dict:
    return {"resourceType": "PractitionerRole", "id": id, "active": True,
            "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
            "organization": {"reference": f"Organization/{organization}"}, "code": [{"coding": [code]}]}


def member(id: str, pcp_role: str | None) -> dict:
    patient = {"resourceType": "Patient", "id": id, "identifier": [{"system": MEMBER_ID, "value": f"M-{id}"}],
               "name": [{"family": "Rivera", "given": [id.title()]}], "gender": "female", "birthDate": "1951-04-02"}
    if pcp_role is not None:
        patient["generalPractitioner"] = [{"reference": f"PractitionerRole/{pcp_role}"}]
    return patient


FAMILY_MEDICINE = {"system": "http://nucc.org/provider-taxonomy", "code": "207Q00000X", "display": "Family Medicine"}
CARE_COORDINATOR = {"system": SNOMED, "code": "768820003", "display": "Care coordinator"}

WORLD = [
    {"resourceType": "Organization", "id": "plan", "active": True, "name": "Health plan"},
    practice("in-program", "agreed", "1234567893"),
    practice("not-in-program", "declined", "1245319599"),
    practice("never-asked", None, "1356402954"),
    practitioner("rn", "Nurse", "1497758544"),
    practitioner("lone", "Roleless", "1891777893"),  # works for no organization
    role("rn-role", "rn", "plan", CARE_COORDINATOR),
    practitioner("dr-in", "Doctor", "1528366920"),
    role("dr-in-role", "dr-in", "in-program", FAMILY_MEDICINE),
    practitioner("dr-out", "Other", "1679576722"),
    role("dr-out-role", "dr-out", "not-in-program", FAMILY_MEDICINE),
    role("dr-never-role", "dr-out", "never-asked", FAMILY_MEDICINE),
    member("ann", "dr-in-role"),
    member("bob", "dr-out-role"),
    member("cat", None),
    member("dee", "dr-never-role"),
]


def load(client) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in WORLD]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def operation(client, path: str, *parts: dict):
    return client.post(f"/fhir/{path}", json={"resourceType": "Parameters", "parameter": list(parts)},
                       headers=FHIR_JSON)


def count(client, resource_type: str, **params: str) -> int:
    return client.get(f"/fhir/{resource_type}", params={**params, "_summary": "count"}).json()["total"]


def issue_expressions(response) -> list[str]:
    return [e for i in response.json()["issue"] for e in i.get("expression", [])]
