"""Structural validation of R4 resources with fhir.resources' R4B models.

This is the only module that imports fhir.resources (DESIGN.md). fhir.resources has no R4 package; R4B
parses R4 content for every type both releases share. The 18 R4 types that R4B dropped (the
MedicinalProduct* and Substance* families, EffectEvidenceSynthesis, RiskEvidenceSynthesis) get the
JSON-level checks only, until the profile validator checks them against their StructureDefinitions.
"""

from __future__ import annotations

import re
from functools import cache

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import FhirError, Issue

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_MAX_ISSUES = 20


@cache
def _model(resource_type: str) -> type[pydantic.BaseModel] | None:
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError):
        return None


def validate_resource(resource: object, expected_type: str | None = None) -> dict:
    """Check `resource` against the base R4 structure (json.html, resource.html); return it unchanged.

    Raises FhirError(400) whose issues carry the FHIRPath location of each problem.
    """
    if not isinstance(resource, dict):
        raise FhirError(400, [Issue("structure", "the body is not a JSON object")])
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in resource_types():
        raise FhirError(
            400, [Issue("structure", f"unknown or missing resourceType: {resource_type!r}", expression=("resourceType",))]
        )
    if expected_type is not None and resource_type != expected_type:
        raise FhirError(400, [Issue(
            "invalid", f"resourceType {resource_type} does not match the URL's type {expected_type}",
            expression=("resourceType",),
        )])
    rid = resource.get("id")
    if rid is not None and (not isinstance(rid, str) or not ID_PATTERN.match(rid)):
        raise FhirError(400, [Issue("value", f"invalid id {rid!r}", expression=(f"{resource_type}.id",))])
    issues = _json_issues(resource, resource_type)
    if not issues:
        model = _model(resource_type)
        if model is not None:
            try:
                model.model_validate(resource)
            except pydantic.ValidationError as exc:
                issues = [_issue_from_pydantic(resource_type, err) for err in exc.errors()[:_MAX_ISSUES]]
    if issues:
        raise FhirError(400, issues)
    return resource


def _issue_from_pydantic(resource_type: str, err: dict) -> Issue:
    location = _fhirpath(resource_type, err["loc"])
    if err["type"] == "extra_forbidden":
        return Issue("structure", f"unknown element '{err['loc'][-1]}'", expression=(location,))
    if err["type"] == "missing":
        return Issue("required", f"missing required element '{err['loc'][-1]}'", expression=(location,))
    return Issue("value", f"{location}: {err['msg']}", expression=(location,))


def _fhirpath(resource_type: str, loc: tuple) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and re.match(r"^_?[A-Za-z][A-Za-z0-9]*$", part):
            path += f".{part}"
        # pydantic adds validator names such as 'function-after[...]' to loc; they are not FHIR elements
    return path


def _json_issues(resource: dict, resource_type: str) -> list[Issue]:
    """FHIR JSON rules that JSON Schema-like models let through (json.html#json, ele-1)."""
    issues: list[Issue] = []

    def walk(value: object, path: str, in_array: bool) -> None:
        if len(issues) >= _MAX_ISSUES:
            return
        if value is None:
            if not in_array:
                issues.append(Issue("structure", f"{path}: null is not allowed here", expression=(path,)))
        elif isinstance(value, dict):
            if not value:
                issues.append(Issue("structure", f"{path}: an element must have a value or children",
                                    expression=(path,)))
            for key, child in value.items():
                if key == "resourceType" and isinstance(child, str):
                    continue
                walk(child, f"{path}.{key}", False)
        elif isinstance(value, list):
            if not value:
                issues.append(Issue("structure", f"{path}: arrays must not be empty", expression=(path,)))
            for i, child in enumerate(value):
                walk(child, f"{path}[{i}]", True)
        elif isinstance(value, str) and not value.strip() and not path.endswith(".div"):
            issues.append(Issue("value", f"{path}: strings must not be empty or blank", expression=(path,)))

    for key, child in resource.items():
        if key != "resourceType":
            walk(child, f"{resource_type}.{key}", False)
    return issues
