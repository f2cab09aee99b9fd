"""Structural validation of R4 resources with fhir.resources' R4B models.

This is the only module that imports fhir.resources (DESIGN.md). fhir.resources has no R4 package; R4B
parses R4 content for every type both releases share and is the fast path. A resource it refuses, and
one of the 18 R4 types R4B dropped (the MedicinalProduct* and Substance* families,
EffectEvidenceSynthesis, RiskEvidenceSynthesis), is checked against the R4 StructureDefinitions by the
validator instead, whose verdict stands.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache

import pydantic
from fhir.resources.R4B import get_fhir_model_class

from fhir_server.fhir.definitions import element_types, resource_types
from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.fhir.validation.conformance import BaseConformance
from fhir_server.fhir.validation.validator import Validator

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
            400, [Issue("structure", f"unknown or missing resourceType: {resource_type!r}",
                        expression=("resourceType",))]
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
    model = _model(resource_type)
    if not issues and model is not None:
        try:
            model.model_validate(resource)
            return resource
        except pydantic.ValidationError:
            pass
    # Something looks wrong, or R4B has no model for the type. The R4 definitions decide: their issues
    # carry FHIRPath locations and R4 codes, and where R4B alone objects (an R4 element R4B changed, such
    # as a primitive extension on an extension's value) the resource is R4 and is accepted.
    errors = [i for i in _base_validator().validate(resource, claimed=False) if i.severity in ("error", "fatal")]
    if errors:
        raise FhirError(400, errors[:_MAX_ISSUES])
    if issues:  # JSON rules the definitions do not express (nulls, blank strings)
        raise FhirError(400, issues)
    return resource


@cache
def _base_validator() -> Validator:
    return Validator(BaseConformance())


_INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt"})


def _json_type_problem(code: str, value: object) -> str | None:
    """Why `value` cannot be the JSON form of primitive type `code` (json.html#primitive), or None."""
    if code == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if code in _INTEGERS:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a JSON integer"
    if code == "decimal":
        ok = isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
        return None if ok else "must be a JSON number"
    if not isinstance(value, str):
        return "must be a JSON string"
    if not value.strip() and code != "xhtml":
        return "must not be empty or blank"
    return None


def _element_code(types: dict[str, str], prefix: str, key: str) -> str | None:
    """The type code of JSON property `key` under `prefix`, resolving choice types (valueQuantity)."""
    name = key[1:] if key.startswith("_") else key
    code = types.get(f"{prefix}.{name}" if prefix else name)
    if code is not None:
        return code
    for i in range(len(name) - 1, 0, -1):
        if name[i].isupper():
            choices = types.get(f"{prefix}.{name[:i]}[x]" if prefix else f"{name[:i]}[x]")
            if choices is not None:
                suffix = name[i:].lower()
                return next((c for c in choices.split("|") if c.lower() == suffix), None)
    return None


def _json_issues(resource: dict, resource_type: str) -> list[Issue]:
    """FHIR JSON rules the models let through: value types, nulls, empty values (json.html, ele-1)."""
    issues: list[Issue] = []
    all_types = element_types()

    def problem(path: str, message: str, code: str = "structure") -> None:
        if len(issues) < _MAX_ISSUES:
            issues.append(Issue(code, f"{path}: {message}", expression=(path,)))

    def walk_object(obj: dict, type_name: str, prefix: str, path: str) -> None:
        types = all_types.get(type_name)
        if types is None:
            return
        for key, child in obj.items():
            if key == "resourceType" and not prefix:
                continue
            code = _element_code(types, prefix, key)
            if code is None:
                continue  # unknown elements are reported by the model
            if code.startswith("#"):
                code, element_prefix = "BackboneElement", code[1:]
            else:
                element_prefix = f"{prefix}.{key}" if prefix else key
            items = child if isinstance(child, list) else [child]
            if isinstance(child, list) and not child:
                problem(f"{path}.{key}", "arrays must not be empty")
            for index, item in enumerate(items):
                where = f"{path}.{key}[{index}]" if isinstance(child, list) else f"{path}.{key}"
                walk_value(item, code, key.startswith("_"), type_name, element_prefix, where,
                           in_array=isinstance(child, list))

    def walk_value(value: object, code: str, extension_part: bool, type_name: str, prefix: str, path: str,
                   in_array: bool) -> None:
        if value is None:
            if not in_array:  # null only pads arrays of primitives that carry extensions
                problem(path, "null is not allowed here")
            return
        if extension_part or code[:1].islower():
            if extension_part:
                if not isinstance(value, dict):
                    problem(path, "must be a JSON object holding id and/or extension")
                return
            message = _json_type_problem(code, value)
            if message:
                problem(path, message, "value")
            return
        if not isinstance(value, dict):
            problem(path, f"must be a JSON object ({code})")
            return
        if not value:
            problem(path, "an element must have a value or children")
            return
        if code in ("BackboneElement", "Element") and all_types.get(type_name, {}).get(prefix) is not None:
            walk_object(value, type_name, prefix, path)
        elif code == "Resource":
            inner = value.get("resourceType")
            if isinstance(inner, str):
                walk_object(value, inner, "", path)
        else:
            walk_object(value, code, "", path)

    walk_object(resource, resource_type, "", resource_type)
    return issues
