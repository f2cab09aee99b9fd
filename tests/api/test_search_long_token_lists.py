"""A token search with a long list of values (search.html#token, values joined by commas: OR), as a client
writes out a ValueSet's codes, on SQLite and PostgreSQL: a thousand codes answer like one, without a 500 from
SQLite's limit on expression depth."""

from __future__ import annotations

from fhirjson import FHIR_JSON

ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def test_a_thousand_codes_in_one_token_parameter(client):
    condition = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": ICD, "code": "E11.9"}]}}
    assert client.put("/fhir/Patient/p1", json={"resourceType": "Patient", "id": "p1"},
                      headers=FHIR_JSON).status_code == 201
    assert client.put("/fhir/Condition/c1", json=condition, headers=FHIR_JSON).status_code == 201
    codes = [f"{ICD}|X{n:04d}" for n in range(998)] + [f"{ICD}|E11.9", "E11.9"]
    response = client.post("/fhir/Condition/_search", data={"code": ",".join(codes)})
    assert response.status_code == 200, response.text
    assert [e["resource"]["id"] for e in response.json()["entry"]] == ["c1"]
    missed = client.post("/fhir/Condition/_search", data={"code": ",".join(codes[:998])})
    assert missed.status_code == 200 and missed.json().get("entry", []) == []
