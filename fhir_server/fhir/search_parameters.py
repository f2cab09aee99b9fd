"""The registry of SearchParameters (searchparameter.html): R4's own and the program's from profiles/.

Each parameter is known by the resource types it applies to; a parameter whose base is `Resource` or
`DomainResource` applies to every type.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fhir_server.fhir.definitions import DIRECTORY as DEFINITIONS
from fhir_server.fhir.definitions import resource_types

# The program's conformance resources: the repository's profiles/ folder, or FHIR_PROFILES_DIR (an image
# that installs the package copies the folder beside it and says where).
PROFILES = Path(os.environ.get("FHIR_PROFILES_DIR") or Path(__file__).resolve().parents[2] / "profiles")
# Parameters answered from columns of the resource table rather than index rows.
RESOURCE_COLUMNS = frozenset({"_id", "_lastUpdated"})
# Kinds of search this server does not do; asked for, they are reported as unsupported.
UNSUPPORTED = frozenset({"_text", "_content", "_query", "_filter", "_contained", "_containedType"})


@dataclass(frozen=True)
class Component:
    definition: str
    expression: str


@dataclass(frozen=True)
class SearchParameter:
    code: str
    type: str
    url: str
    base: tuple[str, ...]
    expression: str | None
    target: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()


def _from_json(sp: dict) -> SearchParameter:
    return SearchParameter(
        code=sp["code"], type=sp["type"], url=sp["url"], base=tuple(sp["base"]),
        expression=sp.get("expression"), target=tuple(sp.get("target", ())),
        components=tuple(Component(c["definition"], c["expression"]) for c in sp.get("component", ())),
    )


def _load() -> list[SearchParameter]:
    core = json.loads((DEFINITIONS / "search_parameters.json").read_text())["searchParameters"]
    own = [json.loads(p.read_text()) for p in sorted(PROFILES.glob("SearchParameter-*.json"))]
    return [_from_json(sp) for sp in core + own if sp.get("status", "active") != "retired"]


@cache
def _registry() -> tuple[dict[str, dict[str, SearchParameter]], dict[str, SearchParameter]]:
    by_type: dict[str, dict[str, SearchParameter]] = {t: {} for t in resource_types()}
    by_url: dict[str, SearchParameter] = {}
    for sp in _load():
        by_url[sp.url] = sp
        for base in sp.base:
            targets = resource_types() if base in ("Resource", "DomainResource") else (base,)
            for resource_type in targets:
                if resource_type in by_type:
                    by_type[resource_type][sp.code] = sp
    return by_type, by_url


def for_type(resource_type: str) -> dict[str, SearchParameter]:
    """Code -> SearchParameter for one resource type (empty for an unknown type)."""
    return _registry()[0].get(resource_type, {})


def by_url(url: str) -> SearchParameter | None:
    return _registry()[1].get(url)


@cache
def common(types: tuple[str, ...]) -> dict[str, SearchParameter]:
    """Parameters that every one of the types has, with the same type (for system search, search.html#all)."""
    tables = [for_type(t) for t in types]
    if not tables:
        return {}
    first = tables[0]
    return {code: sp for code, sp in first.items() if all(code in t and t[code].type == sp.type for t in tables[1:])}


COMPARTMENTS = ("Patient", "Encounter", "RelatedPerson", "Practitioner", "Device")


@cache
def compartment_params(compartment: str, resource_type: str) -> tuple[str, ...]:
    """The parameters that put a resource of this type in a compartment (compartmentdefinition.html)."""
    data = json.loads((DEFINITIONS / "compartments.json").read_text())["compartments"]
    return tuple(data.get(compartment, {}).get(resource_type, ()))


@cache
def compartment_types(compartment: str) -> tuple[str, ...]:
    data = json.loads((DEFINITIONS / "compartments.json").read_text())["compartments"]
    return tuple(sorted(data.get(compartment, {})))
