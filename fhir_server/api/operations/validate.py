"""[type]/$validate and [type]/[id]/$validate (resource-operation-validate.html): whether a resource would
be accepted, answered with an OperationOutcome and 200 whether or not it is valid.

The checks are those of a write (fhir/models.py: JSON rules and the R4 structure), then the profile
validator's against the type's base StructureDefinition, the profiles the resource claims and the
`profile` asked for (fhir/validation), whatever FHIR_VALIDATION says for writes. `mode` adds what the
interaction would check: `update` that the body's id is the instance's, `delete` that the instance
exists (the body is ignored). A `profile` this server does not hold is a 422, as the operation asks.
The resource comes as the `resource` part of a Parameters body, or as the body itself.
"""

from __future__ import annotations

from dataclasses import replace

from fhir_server.api.context import Context
from fhir_server.api.messages import FhirRequest, FhirResponse
from fhir_server.api.operations.inputs import Inputs
from fhir_server.fhir.errors import FhirError, Issue, bad_request, operation_outcome
from fhir_server.fhir.models import validate_resource

DECLARED = frozenset({"resource", "mode", "profile"})
MODES = ("create", "update", "delete", "profile")


def validate(req: FhirRequest, ctx: Context, resource_type: str, id: str | None) -> FhirResponse:
    body = req.body if isinstance(req.body, dict) else None
    if req.method == "POST" and body is not None and body.get("resourceType") != "Parameters":
        inputs, resource = Inputs(replace(req, method="GET", body=None), DECLARED), body  # the bare resource
    else:
        inputs = Inputs(req, DECLARED)
        resource = _resource_part(inputs)
    mode = inputs.text("mode")
    if mode is not None and mode not in MODES:
        raise bad_request(f"mode is one of {', '.join(MODES)}, not {mode!r}", "mode")
    if mode in ("update", "delete") and id is None:
        raise bad_request(f"mode {mode} validates against an existing resource: call $validate on its id", "mode")
    profile = inputs.text("profile")
    if mode == "delete":
        ctx.repo.read(resource_type, id or "")  # 404 / 410: nothing to delete
        return _answer([Issue("informational", f"{resource_type}/{id} exists and may be deleted",
                              severity="information")])
    if resource is None:
        raise bad_request("give the resource to validate, as the Parameters' resource part or as the body",
                          "resource")
    try:
        validate_resource(resource, resource_type)
    except FhirError as exc:
        return _answer(exc.issues)
    issues = ctx.repo.validate(resource, (profile,) if profile else ())
    if mode == "update" and resource.get("id") != id:
        issues.insert(0, Issue("invalid", f"the resource's id {resource.get('id')!r} is not the id {id!r} it "
                                          "would update", expression=(f"{resource_type}.id",)))
    if not any(i.severity in ("error", "fatal") for i in issues):
        issues.append(Issue("informational", "no errors found", severity="information"))
    return _answer(issues)


def _resource_part(inputs: Inputs) -> dict | None:
    for part in inputs.parts:
        if part.get("name") == "resource":
            if not isinstance(part.get("resource"), dict):
                raise bad_request("the resource part carries a resource", "resource")
            return part["resource"]
    return None


def _answer(issues: list[Issue]) -> FhirResponse:
    """200 and the OperationOutcome: $validate's answer whether or not the resource is valid."""
    return FhirResponse(200, operation_outcome(issues), interaction="operation", resource_type="OperationOutcome")
