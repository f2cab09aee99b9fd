"""Arbitrary bodies never crash the server or half-write: the answer is a success or a 4xx OperationOutcome."""

from __future__ import annotations

import os

from fhirjson import FHIR_JSON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEYS = st.sampled_from(["resourceType", "id", "meta", "name", "given", "family", "gender", "birthDate", "active",
                        "identifier", "system", "value", "extension", "url", "valueString", "_birthDate", "text",
                        "telecom", "x", ""])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12),
                    st.sampled_from(["Patient", "male", "2020-01-01", "Observation", "urn:uuid:1"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(KEYS, inner, max_size=5)), max_leaves=20)
RESOURCES = st.dictionaries(KEYS, JSON, max_size=6).map(lambda d: {"resourceType": "Patient", **d})
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _count(client) -> int:
    return client.get("/fhir/_history", params={"_count": 1000}).json().get("entry", []).__len__()


@FUZZ
@given(body=st.one_of(RESOURCES, JSON))
def test_create_with_arbitrary_json(client, body):
    before = _count(client)
    response = client.post("/fhir/Patient", json=body, headers=FHIR_JSON)
    assert response.status_code in (201, 400), response.text
    if response.status_code == 400:
        assert response.json()["resourceType"] == "OperationOutcome"
        assert _count(client) == before


@FUZZ
@given(body=st.binary(max_size=200))
def test_create_with_arbitrary_bytes(client, body):
    response = client.post("/fhir/Patient", content=body, headers=FHIR_JSON)
    assert response.status_code in (201, 400), response.text
    assert response.json()["resourceType"] in ("Patient", "OperationOutcome")


@FUZZ
@given(entries=st.lists(st.fixed_dictionaries({"request": st.dictionaries(
    st.sampled_from(["method", "url", "ifMatch", "ifNoneExist"]),
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "Patient", "Patient/1", "Patient?identifier=a|b",
                     "W/\"1\"", "", "Patient/../x", "metadata"]))}, optional={"resource": RESOURCES,
                                                                             "fullUrl": st.text(max_size=8)}),
    max_size=4), kind=st.sampled_from(["batch", "transaction"]))
def test_bundles_with_arbitrary_entries(client, entries, kind):
    before = _count(client)
    response = client.post("/fhir", json={"resourceType": "Bundle", "type": kind, "entry": entries},
                           headers=FHIR_JSON)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.json()["resourceType"] == "OperationOutcome"
        assert _count(client) == before


def test_deeply_nested_bodies_are_refused(client):
    for depth, decimal in ((5000, True), (900, False), (5000, False)):
        nested = b"[" * depth + b"]" * depth
        body = b'{"resourceType":"Patient",' + (b'"x":1.50,' if decimal else b"") + b'"extension":' + nested + b"}"
        response = client.post("/fhir/Patient", content=body, headers=FHIR_JSON)
        assert response.status_code == 400, (depth, decimal, response.text)
        assert response.json()["resourceType"] == "OperationOutcome"
    bundle = b'{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"},' \
             b'"resource":{"resourceType":"Patient","extension":' + b"[" * 900 + b"]" * 900 + b"}}]}"
    response = client.post("/fhir", content=bundle, headers=FHIR_JSON)
    assert response.status_code == 400, response.text
    assert _count(client) == 0
