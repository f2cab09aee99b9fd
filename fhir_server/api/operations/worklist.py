"""Practitioner/[id]/$worklist: a coordinator's work, most pressing first, as Task resources
(profiles/OperationDefinition-worklist.json; what goes on it and in what order is care/worklist.py)."""

from __future__ import annotations

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs
from fhir_server.care.worklist import worklist as coordinator_worklist


def worklist(req: FhirRequest, ctx: Context, resource_type: str, id: str) -> FhirResponse:
    Inputs(req, frozenset())  # it takes no inputs: refuse any
    tasks = coordinator_worklist(ctx.repo, id)
    bundle = {"resourceType": "Bundle", "type": "collection", "total": len(tasks),
              "entry": [{"resource": task} for task in tasks]}
    return FhirResponse(200, bundle, interaction="operation", resource_type="Practitioner")
