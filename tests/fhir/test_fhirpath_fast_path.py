"""The compiled fast path of fhir/fhirpath.py selects what fhirpathpy selects (fhirpath.html), for every
SearchParameter expression of every type, on the official R4 examples and a slice of the Synthea corpus.

fhirpathpy has no `resolve()`, so for `.where(resolve() is T)` it is given the expression without that
filter and its answer is narrowed here by a separate, plain reading of the reference text.
"""

from __future__ import annotations

import json
import re
import tarfile
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from conftest import CORPORA
from fhirpathpy import compile as fhirpathpy_compile
from fhirpathpy.models import models

from fhir_server.fhir.fhirpath import evaluate, is_fast, split_union
from fhir_server.fhir.search_parameters import for_type

EXAMPLES = sorted((Path(__file__).parents[1] / "data" / "r4-examples").glob("*.json"))
SYNTHEA = CORPORA / "synthea-r4.tar.gz"
_RESOLVE = re.compile(r"\.where\(resolve\(\) is ([A-Za-z]+)\)")


def _synthea_resources(bundles: int = 3) -> list[dict]:
    if not SYNTHEA.exists():
        return []
    out = []
    with tarfile.open(SYNTHEA) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                bundle = json.load(tar.extractfile(member), parse_float=Decimal)
                out += [e["resource"] for e in bundle.get("entry", [])]
                bundles -= 1
                if not bundles:
                    break
    return out


def _canonical(values) -> list[str]:
    return sorted(json.dumps(v, sort_keys=True, default=str) for v in values)


def _reference_names(value, target: str) -> bool:
    reference = value.get("reference", "") if isinstance(value, dict) else ""
    parts = reference.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return len(parts) >= 2 and parts[-2] == target


@cache
def _compiled(branch: str):
    return fhirpathpy_compile(branch, models["r4"])


def _by_fhirpathpy(resource: dict, expression: str) -> list:
    out = []
    for branch in split_union(expression):
        match = _RESOLVE.search(branch)
        # fhirpathpy does not take `Resource.` as the root of a concrete resource; name the type instead.
        plain = re.sub(r"^(Resource|DomainResource)\.", resource["resourceType"] + ".", _RESOLVE.sub("", branch))
        values = _compiled(plain)(resource)
        if match:
            values = [v for v in values if _reference_names(v, match.group(1))]
        out += values
    return out


def _resources() -> list[dict]:
    return [json.loads(p.read_text(), parse_float=Decimal) for p in EXAMPLES] + _synthea_resources()


def test_almost_every_expression_takes_the_fast_path():
    slow = {(t, code) for t in ("Patient", "Observation", "Condition", "Encounter", "MedicationRequest", "CarePlan")
            for code, sp in for_type(t).items() if sp.expression and not is_fast(sp.expression, t)}
    assert slow == {("Patient", "deceased")}  # `exists() and … != false` goes to fhirpathpy


def test_fast_path_agrees_with_fhirpathpy():
    disagreements, compared, refused = [], 0, 0
    for resource in _resources():
        resource_type = resource["resourceType"]
        for code, sp in for_type(resource_type).items():
            if not sp.expression or not is_fast(sp.expression, resource_type):
                continue
            ours = _canonical(n.value for n in evaluate(resource, sp.expression))
            try:
                theirs = _canonical(_by_fhirpathpy(resource, sp.expression))
            except ValueError:  # fhirpathpy holds `as` to a singleton input, as FHIRPath says; search does not
                refused += 1
                continue
            compared += 1
            if ours != theirs:
                disagreements.append(f"{resource_type}/{resource.get('id')} {code}: {ours[:3]} != {theirs[:3]}")
    assert compared > 5000 and refused < compared / 100
    assert not disagreements, "\n".join(disagreements[:20])


@pytest.mark.parametrize("expression, context, expected", [
    ("Patient.name.given", "Patient", ["Ann", "Bo"]),
    ("(Observation.value as Quantity)", "Observation", []),
    ("Observation.subject.where(resolve() is Patient)", "Observation", []),
])
def test_expressions_on_a_tiny_patient(expression, context, expected):
    patient = {"resourceType": context, "name": [{"given": ["Ann"]}, {"given": ["Bo"]}]}
    assert [n.value for n in evaluate(patient, expression)] == expected
