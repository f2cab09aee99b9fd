"""Search statements cached by shape (store/shapes.py): a cached statement answers each query with its own
values, and queries it cannot serve are built as before."""

from __future__ import annotations

import pytest
from conftest import BASE_URL

from fhir_server.api.execute import Server, execute
from fhir_server.api.messages import FhirRequest
from fhir_server.auth.scopes import access_for, parse_scopes
from fhir_server.search.parse import parse_query
from fhir_server.store.access import ALL
from fhir_server.store.repository import open_repository
from fhir_server.store.shapes import SHAPES, _template

JSON = {"content-type": "application/fhir+json"}


@pytest.fixture
def world(client, engine):
    server = Server(engine, BASE_URL)
    for p in ("a", "b"):
        for resource in ({"resourceType": "Patient", "id": p},
                         {"resourceType": "Condition", "id": f"active-{p}", "subject": {"reference": f"Patient/{p}"},
                          "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                   "condition-clinical", "code": "active"}]}},
                         {"resourceType": "Condition", "id": f"resolved-{p}", "subject": {"reference": f"Patient/{p}"},
                          "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                                   "condition-clinical", "code": "resolved"}]}}):
            path = f"{resource['resourceType']}/{resource['id']}"
            assert execute(server, FhirRequest("PUT", path, headers=JSON, body=resource), ALL).status in (200, 201)
    return engine


def ids(engine, resource_type: str, params: list[tuple[str, str]], access=ALL) -> list[str]:
    with open_repository(engine, write=False, access=access) as repo:
        page = repo.search(parse_query(resource_type, params), count=50)
    return sorted(r.id for r in page.resources)


def test_one_shape_answers_each_query_with_its_own_values(world):
    if world.dialect.name != "postgresql":
        pytest.skip("statements are cached by shape on PostgreSQL only")
    SHAPES._compiled.clear()
    for p in ("a", "b"):
        assert ids(world, "Condition", [("patient", p), ("clinical-status", "active")]) == [f"active-{p}"]
        assert ids(world, "Condition", [("patient", p), ("clinical-status", "resolved")]) == [f"resolved-{p}"]
        assert ids(world, "Condition", [("patient", f"Patient/{p}"),
                                        ("clinical-status", "active,resolved")]) == [f"active-{p}", f"resolved-{p}"]
    # Two shapes (one value, two values), each compiled once and reused.
    compiled = [c for c in SHAPES._compiled.values()]
    assert len(compiled) == 2 and all(c is not None for c in compiled)
    scopes, _ = parse_scopes("patient/Condition.rs")  # a grant is part of the shape
    assert ids(world, "Condition", [("clinical-status", "active")], access_for(scopes, patient="b")) == ["active-b"]
    assert ids(world, "Condition", [("clinical-status", "active")], access_for(scopes, patient="a")) == ["active-a"]


@pytest.mark.parametrize("params", [
    [("code:text", "x")], [("subject:Patient.name", "x")], [("onset-date", "ge2020")], [("_id", "a")],
    [("patient", "a"), ("clinical-status:not", "active")],
], ids=["modifier", "chain", "date", "_id", "negated"])
def test_other_queries_are_not_put_in_slots(params):
    assert _template(parse_query("Condition", params)) is None


def test_a_cached_shape_holds_no_value(world):
    if world.dialect.name != "postgresql":
        pytest.skip("statements are cached by shape on PostgreSQL only")
    SHAPES._compiled.clear()
    ids(world, "Condition", [("patient", "a"), ("clinical-status", "active")])
    (compiled,) = SHAPES._compiled.values()
    assert "'a'" not in compiled.sql and "active" not in str(compiled.sql)
    assert sorted(slot for _, slot in compiled.slots) == [0, 1]  # the patient's id and the code


def test_everything_reuses_its_shape_for_each_patient(world):
    if world.dialect.name != "postgresql":
        pytest.skip("statements are cached by shape on PostgreSQL only")
    SHAPES._compiled.clear()
    server = Server(world, BASE_URL)
    for p in ("a", "b", "a"):
        response = execute(server, FhirRequest("GET", f"Patient/{p}/$everything"), ALL)
        assert response.status == 200
        found = {e["fullUrl"].rsplit("/", 1)[1] for e in response.body["entry"]}
        assert found == {p, f"active-{p}", f"resolved-{p}"}
    assert len(SHAPES._compiled) == 1
