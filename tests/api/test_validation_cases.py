"""Profile validation over HTTP, driven by the case files in tests/data/validation (one per check kind, named
after the spec section), on SQLite and PostgreSQL.

Each case's resource goes to [type]/$validate (with `?profile=` when the case names one): the answer is 200
and an OperationOutcome holding every expected issue with exactly its severity, code and expression, no other
error, and no issue at all at the case's `absent` locations. A case with a profile, or whose resource claims
profiles in meta.profile, is then created with the profile claimed (FHIR_VALIDATION=claimed): 422 naming the
expected errors' locations, with nothing written, when errors are expected, else 201.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON

DATA = Path(__file__).resolve().parents[1] / "data" / "validation"
FILES = {path.stem: json.loads(path.read_text()) for path in sorted(DATA.glob("*.json"))}
ERRORS = ("error", "fatal")


CASES = [pytest.param(stem, case, id=f"{stem}: {case['name']}")
         for stem, data in FILES.items() for case in data["cases"]]


def _load(client, fixtures: list[dict]) -> None:
    if not fixtures:
        return
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in fixtures]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def _key(issue: dict) -> tuple:
    return issue["severity"], issue["code"], issue["expression"]


def _found(outcome: dict) -> list[tuple]:
    """(severity, code, expression) of each issue, once per expression it names."""
    return [(i["severity"], i["code"], e) for i in outcome["issue"] for e in i.get("expression") or [None]]


@pytest.mark.parametrize(("stem", "case"), CASES)
def test_case(client, stem, case):
    fixtures = FILES[stem].get("fixtures", [])
    _load(client, fixtures)
    resource = case["resource"]
    params = {"profile": case["profile"]} if "profile" in case else None
    response = client.post(f"/fhir/{resource['resourceType']}/$validate", params=params, json=resource,
                           headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    found = _found(outcome)
    expected = {_key(issue) for issue in case["issues"]}
    missing = expected - set(found)
    assert not missing, (missing, outcome)
    unexpected = [f for f in found if f[0] in ERRORS and f not in expected]
    assert not unexpected, (unexpected, outcome)
    for location in case.get("absent", []):
        assert not [f for f in found if f[2] == location], (location, outcome)
    if "profile" in case or (resource.get("meta") or {}).get("profile"):
        _check_write(client, case, fixtures)


def _check_write(client, case: dict, fixtures: list[dict]) -> None:
    """A create claiming the case's profile: refused with the same errors and nothing written, or accepted."""
    resource = copy.deepcopy(case["resource"])
    claimed = resource.setdefault("meta", {}).setdefault("profile", [])
    if "profile" in case and case["profile"] not in claimed:
        claimed.append(case["profile"])
    resource_type = resource["resourceType"]
    response = client.post(f"/fhir/{resource_type}", json=resource, headers=FHIR_JSON)
    errors = {issue["expression"] for issue in case["issues"] if issue["severity"] in ERRORS}
    if not errors:
        assert response.status_code == 201, response.text
        return
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    refused = {f[2] for f in _found(outcome) if f[0] in ERRORS}
    assert errors <= refused, (errors - refused, outcome)
    held = sum(1 for f in fixtures if f["resourceType"] == resource_type)
    count = client.get(f"/fhir/{resource_type}", params={"_summary": "count"}).json()
    assert count["total"] == held, count


def test_every_case_file_has_invalid_cases_and_a_valid_control():
    for stem, data in FILES.items():
        assert data["section"] and data["notes"], stem
        invalid = [c for c in data["cases"] if any(i["severity"] in ERRORS for i in c["issues"])]
        valid = [c for c in data["cases"] if not any(i["severity"] in ERRORS for i in c["issues"])]
        assert len(invalid) >= 3 and valid, stem
        assert len({c["name"] for c in data["cases"]}) == len(data["cases"]), stem
