"""HL7's R4 definitions, trimmed by scripts/make_definitions.py (CC0, hl7.fhir.r4.examples@4.0.1)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DIRECTORY = Path(__file__).parent
_HERE = DIRECTORY
# The specification's own CodeSystems and ValueSets, narrative left out, one per line (`terminology load`).
BASE_TERMINOLOGY = DIRECTORY / "terminology.ndjson.gz"


@dataclass(frozen=True)
class ResourceDefinition:
    """What _summary and _elements need to know of one resource type (search.html#summary)."""

    type: str
    summary: frozenset[str]
    mandatory: frozenset[str]
    backbone: frozenset[str]


@cache
def resource_definitions() -> dict[str, ResourceDefinition]:
    data = json.loads((_HERE / "resources.json").read_text())["resources"]
    return {
        name: ResourceDefinition(name, frozenset(d["summary"]), frozenset(d["mandatory"]), frozenset(d["backbone"]))
        for name, d in data.items()
    }


def resource_types() -> frozenset[str]:
    """Every concrete resource type of FHIR R4 4.0.1."""
    return frozenset(resource_definitions())


@cache
def element_types() -> dict[str, dict[str, str]]:
    """Type name -> element path within it -> `|`-joined type codes, or `#path` for a content reference."""
    return json.loads((_HERE / "elements.json").read_text())["types"]


@cache
def code_systems() -> dict[str, dict[str, str]]:
    """Type name -> path of a `code` element -> the one CodeSystem its required binding draws from."""
    return json.loads((_HERE / "code_systems.json").read_text())["codeSystems"]
