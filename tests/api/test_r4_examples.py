"""Official R4 examples of the program's resource types round-trip unchanged apart from meta.

The examples are a generated subset of hl7.fhir.r4.examples@4.0.1 (CC0), made by scripts/make_definitions.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON, without_meta

EXAMPLES = sorted((Path(__file__).parents[1] / "data" / "r4-examples").glob("*.json"))


def precise(data: bytes) -> dict:
    """Parse with every decimal as Decimal, so 1.0 and 1.00 and 1E+2 compare by value and precision."""
    return json.loads(data, parse_float=Decimal)


TYPES = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "CarePlan", "CareTeam", "Goal", "Condition",
    "Observation", "MedicationStatement", "MedicationRequest", "ServiceRequest", "CommunicationRequest",
    "Communication", "Task", "Consent", "EpisodeOfCare", "DocumentReference", "Group", "Encounter", "Procedure",
    "Medication",
}


def test_subset_covers_every_type():
    assert {p.name.split("-", 1)[0] for p in EXAMPLES} == TYPES


def test_every_example_round_trips(client):
    failures = []
    for path in EXAMPLES:
        example = precise(path.read_bytes())
        url = f"/fhir/{example['resourceType']}/{example['id']}"
        written = client.put(url, content=path.read_bytes(), headers=FHIR_JSON)
        if written.status_code != 201:
            failures.append(f"{path.name}: PUT {written.status_code} {written.text[:200]}")
            continue
        read = precise(client.get(url).content)
        if without_meta(read) != without_meta(example):
            failures.append(f"{path.name}: content changed")
        meta = {k: v for k, v in (example.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        if {k: v for k, v in read["meta"].items() if k in meta} != meta:
            failures.append(f"{path.name}: meta.tag/profile/security changed")
    assert not failures, "\n".join(failures)
    assert len(EXAMPLES) == 291


@pytest.mark.parametrize("path", EXAMPLES[:3], ids=lambda p: p.name)
def test_create_assigns_new_id_and_keeps_content(client, path):
    example = precise(path.read_bytes())
    created = client.post(f"/fhir/{example['resourceType']}", content=path.read_bytes(), headers=FHIR_JSON)
    assert created.status_code == 201
    body = precise(created.content)
    assert body["id"] != example["id"]
    assert {k: v for k, v in without_meta(body).items() if k != "id"} == {
        k: v for k, v in without_meta(example).items() if k != "id"}


def test_decimal_precision_is_kept(client):
    body = (b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
            b'"component":[{"code":{"text":"a"},"valueQuantity":{"value":1.50}},'
            b'{"code":{"text":"b"},"valueQuantity":{"value":0.000}}]}')
    created = client.post("/fhir/Observation", content=body, headers=FHIR_JSON)
    assert created.status_code == 201
    read = client.get(f"/fhir/Observation/{created.json()['id']}")
    assert b"1.50" in read.content.replace(b" ", b"")
    assert b"0.000" in read.content.replace(b" ", b"")
