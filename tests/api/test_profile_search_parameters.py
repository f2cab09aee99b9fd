"""The program's own SearchParameters in profiles/ are indexed and searchable like R4's (docs/search.md)."""

from __future__ import annotations

from fhirjson import FHIR_JSON

PARTICIPATION = "https://careweave.example.org/fhir/StructureDefinition/program-participation"


def practice(id: str, status: str) -> dict:
    return {"resourceType": "Organization", "id": id, "name": f"Practice {id}",
            "extension": [{"url": PARTICIPATION, "extension": [{"url": "status", "valueCode": status}]}]}


def test_practices_are_found_by_program_participation(client):
    for id, status in (("a", "agreed"), ("b", "declined"), ("c", "agreed")):
        assert client.put(f"/fhir/Organization/{id}", json=practice(id, status), headers=FHIR_JSON).status_code == 201
    client.put("/fhir/Organization/d", json={"resourceType": "Organization", "id": "d"}, headers=FHIR_JSON)
    bundle = client.get("/fhir/Organization", params={"program-participation": "agreed"}).json()
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == ["a", "c"]
    missing = client.get("/fhir/Organization", params={"program-participation:missing": "true"}).json()
    assert [e["resource"]["id"] for e in missing["entry"]] == ["d"]


def test_the_capability_statement_lists_the_program_parameter(client):
    statement = client.get("/fhir/metadata").json()
    organization = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Organization")
    urls = {p.get("definition") for p in organization["searchParam"]}
    assert "https://careweave.example.org/fhir/SearchParameter/organization-program-participation" in urls
