"""The HTTP-free router under a grant, for the access tests: requests run through `execute` with an Access,
and what came back, as FHIR JSON and as `Type/id` sets."""

from __future__ import annotations

import json

from fhir_server.api.execute import Server, execute
from fhir_server.api.messages import FhirRequest
from fhir_server.api.negotiate import render
from fhir_server.store.access import Access

JSON = {"content-type": "application/fhir+json"}


def body(response) -> dict:
    return json.loads(render(response.body, response.raw, pretty=False))


def runner(server: Server, access: Access):
    """A function that runs one request (method, path, query params, body) with `access`."""
    def run(method: str, path: str, params=(), payload=None):
        return execute(server, FhirRequest(method, path, list(params), JSON if payload else {}, payload), access)
    return run


def ids(response) -> set[str]:
    """`Type/id` of a 200 Bundle's entries, less OperationOutcomes."""
    assert response.status == 200, body(response)
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in body(response).get("entry", [])
            if e["resource"]["resourceType"] != "OperationOutcome"}
