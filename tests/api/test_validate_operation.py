"""[type]/$validate and [type]/[id]/$validate, driven by tests/data/operations/resource-operation-validate.json,
on SQLite and PostgreSQL; nothing is written by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON

DATA = json.loads((Path(__file__).resolve().parents[1] / "data" / "operations" /
                   "resource-operation-validate.json").read_text())


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in DATA["cases"]])
def test_case(client, case):
    for fixture in DATA["fixtures"]:
        assert client.put(f"/fhir/{fixture['resourceType']}/{fixture['id']}", json=fixture,
                          headers=FHIR_JSON).status_code in (200, 201)
    path = case["post"] if "path_type" not in case else case["post"].replace("Patient", case["path_type"], 1)
    response = client.post(f"/fhir/{path}", json=case["body"], headers=FHIR_JSON)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert response.status_code == case.get("expect_status", 200), response.text
    first = outcome["issue"][0]
    if "expect_status" in case:
        if "expression" in case:
            assert case["expression"] in first.get("expression", []), first
        return
    severity, code, expression = case["issue"]
    assert any(i["severity"] == severity and code in (None, i["code"]) and
               (expression is None or expression in i.get("expression", [])) for i in outcome["issue"]), outcome
    if severity == "information":  # valid: warnings may come with it (dom-6, no narrative), errors may not
        assert not [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")], outcome
    assert client.get("/fhir/Patient").json().get("total") == len(DATA["fixtures"])  # nothing was written


def test_validate_is_listed_for_every_type(client):
    statement = client.get("/fhir/metadata").json()
    listed = {r["type"] for r in statement["rest"][0]["resource"]
              if any(o["name"] == "validate" for o in r.get("operation", []))}
    assert {"Patient", "Observation", "CarePlan", "ValueSet"} <= listed and "AuditEvent" not in listed
