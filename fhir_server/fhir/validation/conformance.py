"""Where the validator finds StructureDefinitions, ValueSets and CodeSystems by canonical URL.

The specification's own definitions ship with the server (fhir/definitions, generated from HL7's CC0
package), and so do the program's (the profiles/ folder); a deployment adds IG packages as stored
resources, which the store layer serves through the same protocol in front of these
(references.html#canonical).
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from functools import cache
from typing import Protocol

from fhir_server.fhir.definitions import BASE_TERMINOLOGY, DIRECTORY
from fhir_server.fhir.search_parameters import PROFILES
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex

BASE_STRUCTURES = DIRECTORY / "structure_definitions.ndjson.gz"
CORE = "http://hl7.org/fhir/StructureDefinition/"


class Conformance(Protocol):
    """The conformance resources validation reads; `None` when the URL is not known here."""

    def structure_definition(self, url: str) -> dict | None: ...

    def value_set(self, url: str, version: str | None) -> dict | None: ...

    def code_system(self, url: str, version: str | None) -> CodeSystemIndex | None: ...


class BaseConformance:
    """The StructureDefinitions, ValueSets and CodeSystems of the program (profiles/) and of the R4
    specification (4.0.1), the program's first."""

    def resource(self, resource_type: str, url: str, version: str | None = None) -> dict | None:
        """The StructureDefinition, ValueSet or CodeSystem with canonical `url` (and `version`) that ships."""
        shipped = {"StructureDefinition": _base_structures, "ValueSet": lambda: _base_terminology()[0],
                   "CodeSystem": lambda: _base_terminology()[1]}.get(resource_type)
        if shipped is None:
            return None
        return _versioned(_program()[resource_type].get(url) or shipped().get(url), version)

    def structure_definition(self, url: str) -> dict | None:
        url, _, version = url.partition("|")
        return self.resource("StructureDefinition", url, version or None)

    def value_set(self, url: str, version: str | None) -> dict | None:
        return self.resource("ValueSet", url, version)

    def code_system(self, url: str, version: str | None) -> CodeSystemIndex | None:
        found = self.resource("CodeSystem", url, version)
        return _code_system_index(found["url"]) if found is not None else None


@cache
def _base_structures() -> dict[str, dict]:
    # Decimals as Decimal, as the server reads instances: fixed and pattern values compare exactly.
    with gzip.open(BASE_STRUCTURES, "rt", encoding="utf-8") as lines:
        return {sd["url"]: sd for sd in (json.loads(line, parse_float=Decimal) for line in lines)}


@cache
def _base_terminology() -> tuple[dict[str, dict], dict[str, dict]]:
    value_sets, code_systems = {}, {}
    with gzip.open(BASE_TERMINOLOGY, "rt", encoding="utf-8") as lines:
        for resource in (json.loads(line) for line in lines):
            held = value_sets if resource["resourceType"] == "ValueSet" else code_systems
            held[resource["url"]] = resource
    return value_sets, code_systems


@cache
def _program() -> dict[str, dict[str, dict]]:
    """The program's conformance resources in profiles/, one per file, by type and url."""
    held: dict[str, dict[str, dict]] = {"StructureDefinition": {}, "ValueSet": {}, "CodeSystem": {}}
    for resource_type, by_url in held.items():
        for path in sorted(PROFILES.glob(f"{resource_type}-*.json")):
            resource = json.loads(path.read_text(), parse_float=Decimal)
            by_url[resource["url"]] = resource
    return held


@cache
def _code_system_index(url: str) -> CodeSystemIndex:
    found = _program()["CodeSystem"].get(url) or _base_terminology()[1][url]
    return CodeSystemIndex(found)


def _versioned(resource: dict | None, version: str | None) -> dict | None:
    if resource is None or version not in (None, "", resource.get("version")):
        return None
    return resource


def data_types() -> frozenset[str]:
    """The codes of R4's concrete data types, primitive and complex (datatypes.html)."""
    return frozenset(sd["type"] for sd in _base_structures().values()
                     if sd["kind"] in ("primitive-type", "complex-type") and sd.get("derivation") == "specialization"
                     and not sd.get("abstract"))


def core_type(url: str) -> str | None:
    """The type a core StructureDefinition URL defines (`…/StructureDefinition/Patient` -> Patient)."""
    url = url.partition("|")[0]
    return url[len(CORE):] if url.startswith(CORE) and "/" not in url[len(CORE):] else None
