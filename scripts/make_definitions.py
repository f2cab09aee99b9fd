"""Generate the trimmed copies of HL7's R4 definitions and examples that CareWeave checks in.

Source: the npm package hl7.fhir.r4.examples@4.0.1 (CC0). Run from the repository root:

    python scripts/make_definitions.py            # runs `npm pack` into a temporary folder
    python scripts/make_definitions.py --package hl7.fhir.r4.examples-4.0.1.tgz

Writes
- fhir_server/fhir/definitions/resources.json: every R4 resource type with its summary, mandatory and
  backbone element paths (from the StructureDefinitions' snapshots), used by _summary and _elements.
- fhir_server/fhir/definitions/elements.json: for every resource and complex data type, the type codes
  of each element path (content references resolved), used to check JSON value types (json.html#primitive).
- fhir_server/fhir/definitions/search_parameters.json: the 1,375 official SearchParameters
  (Bundle-searchParams.json), trimmed to what indexing and search need (search.html#table).
- fhir_server/fhir/definitions/compartments.json: which search parameters put a resource in each
  compartment (compartmentdefinition.html).
- fhir_server/fhir/definitions/code_systems.json: for `code` elements with a required binding to a
  ValueSet drawn from one CodeSystem, that system, so token search can match `system|code` on them.
- fhir_server/fhir/definitions/structure_definitions.ndjson.gz: every StructureDefinition of the
  specification that has a snapshot (resources, data types, profiles, extensions), trimmed to what
  validation and snapshot generation read (see _structure), one per line in url order.
- fhir_server/fhir/definitions/terminology.ndjson.gz: every CodeSystem and ValueSet of the specification,
  without narrative, one per line in (type, id) order, for `fhir-server terminology load` (see _loadable
  for the little else left out).
- tests/data/r4-examples/<Type>-<id>.json: the official examples of the resource types the round-trip
  and search tests cover.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "hl7.fhir.r4.examples@4.0.1"
ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "fhir_server" / "fhir" / "definitions"
EXAMPLES = ROOT / "tests" / "data" / "r4-examples"
ROUND_TRIP_TYPES = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "CarePlan", "CareTeam", "Goal",
    "Condition", "Observation", "MedicationStatement", "MedicationRequest", "ServiceRequest",
    "CommunicationRequest", "Communication", "Task", "Consent", "EpisodeOfCare", "DocumentReference", "Group",
    "Encounter", "Procedure", "Medication",
}
CODE_PATTERN = re.compile(r"^[^\s]+(\s[^\s]+)*$")  # the `code` type's regex (datatypes.html#code)
# What the validator and snapshot generation read of a StructureDefinition and of each ElementDefinition
# (structuredefinition.html, elementdefinition.html); narrative, mappings and documentation are left out.
STRUCTURE_KEYS = ("resourceType", "id", "url", "version", "name", "status", "kind", "abstract", "type",
                  "baseDefinition", "derivation", "context", "contextInvariant", "fhirVersion")
ELEMENT_KEYS = ("id", "path", "sliceName", "sliceIsConstraining", "min", "max", "base", "type", "contentReference",
                "slicing", "binding", "maxLength", "isModifier", "mustSupport", "isSummary", "short")
ELEMENT_PREFIXES = ("fixed", "pattern", "minValue", "maxValue")
CONSTRAINT_KEYS = ("key", "severity", "human", "expression", "source")
# Invariants whose R4 expression cannot hold for any instance, corrected as later FHIR versions correct
# them: que-7 tests the FHIRPath System type Boolean, which no FHIR `boolean` is (the FHIRPath suite's
# testType12); R4B's Questionnaire tests `boolean`.
ERRATA = {
    ("que-7", "operator = 'exists' implies (answer is Boolean)"): "operator = 'exists' implies (answer is boolean)",
}
SEARCH_PARAMETER_KEYS = ("url", "code", "base", "type", "expression", "target", "modifier", "multipleOr",
                         "multipleAnd", "comparator", "component")


def fetch_package(dest: Path) -> Path:
    out = subprocess.run(
        ["npm", "pack", PACKAGE, "--silent", "--pack-destination", str(dest)],
        check=True, capture_output=True, text=True,
    )
    return dest / out.stdout.strip().splitlines()[-1]


def resource_definition(sd: dict) -> dict:
    """Summary, mandatory and backbone paths of one resource's snapshot (elementdefinition.html)."""
    summary, mandatory, backbone = [], [], []
    root = sd["type"]
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        if path == root:
            continue
        types = [t["code"] for t in element.get("type", [])]
        if element.get("isSummary"):
            summary.append(path)
        if element.get("min", 0) > 0 and path.count(".") == 1:
            mandatory.append(path)
        if types and types[0] in ("BackboneElement", "Element") and "contentReference" not in element:
            backbone.append(path)
    return {"summary": summary, "mandatory": mandatory, "backbone": backbone}


def element_types(sd: dict) -> dict[str, str]:
    """Element path (without the root) -> "|"-joined type codes, or "#path" for a content reference."""
    out = {}
    root = sd["type"]
    for element in sd["snapshot"]["element"]:
        path = element["path"]
        if path == root:
            continue
        relative = path[len(root) + 1:]
        if "contentReference" in element:
            out[relative] = "#" + element["contentReference"].lstrip("#").split(".", 1)[1]
        else:
            out[relative] = "|".join(_type_code(t["code"]) for t in element.get("type", []))
    return out


def _structure(sd: dict) -> dict:
    """A StructureDefinition trimmed to STRUCTURE_KEYS, with its snapshot and (for a constraint) differential."""
    out = {k: sd[k] for k in STRUCTURE_KEYS if k in sd}
    views = ("snapshot", "differential") if sd.get("derivation") == "constraint" else ("snapshot",)
    for view in views:
        out[view] = {"element": [_element(e) for e in sd[view]["element"]]}
    return out


def _element(element: dict) -> dict:
    out = {k: v for k, v in element.items() if k in ELEMENT_KEYS or k.startswith(ELEMENT_PREFIXES)}
    if "binding" in out:
        out["binding"] = {k: v for k, v in out["binding"].items() if k in ("strength", "valueSet")}
    if "constraint" in element:
        out["constraint"] = [_corrected({k: c[k] for k in CONSTRAINT_KEYS if k in c}) for c in element["constraint"]]
    return out


def _corrected(constraint: dict) -> dict:
    fixed = ERRATA.get((constraint["key"], constraint.get("expression")))
    return {**constraint, "expression": fixed} if fixed else constraint


def search_parameter(sp: dict) -> dict:
    """The parts of a SearchParameter that indexing and query parsing use (searchparameter.html)."""
    out = {"id": sp["id"], **{k: sp[k] for k in SEARCH_PARAMETER_KEYS if k in sp}}
    if "component" in out:
        out["component"] = [{"definition": c["definition"], "expression": c["expression"]} for c in out["component"]]
    return out


def required_bindings(sd: dict) -> dict[str, str]:
    """Element path (without the root) -> ValueSet canonical, for `code` elements bound `required`."""
    root, out = sd["type"], {}
    for element in sd["snapshot"]["element"]:
        binding = element.get("binding") or {}
        types = [t["code"] for t in element.get("type", [])]
        if types == ["code"] and binding.get("strength") == "required" and binding.get("valueSet"):
            out[element["path"][len(root) + 1:]] = binding["valueSet"].split("|")[0]
    return out


def single_system(value_set: dict) -> str | None:
    """The one CodeSystem a ValueSet draws every code from, if it is one."""
    includes = (value_set.get("compose") or {}).get("include", [])
    systems = {i.get("system") for i in includes}
    if len(systems) != 1 or None in systems or any(i.get("valueSet") for i in includes):
        return None
    return systems.pop()


def compartment(cd: dict) -> dict[str, list[str]]:
    """Resource type -> the search parameters that link it to the compartment's owner."""
    return {r["code"]: r["param"] for r in cd["resource"] if r.get("param")}


def _type_code(code: str) -> str:
    # Element.id and primitive values are typed with FHIRPath system types in the snapshots.
    return {"http://hl7.org/fhirpath/System.String": "string"}.get(code, code)


def _loadable(value: object) -> object:
    """What the server's structural validation takes of a terminology resource: fhir.resources' R4B models
    refuse a primitive extension on an Extension's value (`_valueString`; 47 v2 tables carry Dutch
    translations of concept comments that way), and v2-0550 has two concepts whose codes are not valid
    FHIR codes (a no-break space, and one ending in one). Those translations and concepts are left out;
    nothing else changes."""
    if isinstance(value, list):
        kept = [_loadable(v) for v in value if not (isinstance(v, dict) and isinstance(v.get("code"), str)
                                                     and "display" in v and not CODE_PATTERN.match(v["code"]))]
        return [v for v in kept if not (isinstance(v, dict) and set(v) == {"url"})]  # an emptied extension
    if isinstance(value, dict):
        kept = {k: _loadable(v) for k, v in value.items() if not ("url" in value and k.startswith("_value"))}
        return {k: v for k, v in kept.items() if v != []}
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, help="a local copy of the npm tarball")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.package or fetch_package(Path(tmp))
        resources: dict[str, dict] = {}
        elements: dict[str, dict] = {}
        examples: dict[str, bytes] = {}
        search_parameters: list[dict] = []
        compartments: dict[str, dict] = {}
        bindings: dict[str, dict[str, str]] = {}
        value_set_systems: dict[str, str | None] = {}
        terminology: dict[tuple[str, str], dict] = {}
        structures: dict[str, dict] = {}
        with tarfile.open(tgz) as tar:
            for member in tar:
                name = member.name.removeprefix("package/")
                if not name.endswith(".json") or "/" in name:
                    continue
                kind = name.split("-", 1)[0]
                if kind == "StructureDefinition":
                    sd = json.load(tar.extractfile(member))
                    if "snapshot" in sd:
                        structures[sd["url"]] = _structure(sd)
                    specialization = sd.get("derivation") == "specialization" or sd["type"] == "Element"
                    if sd.get("kind") == "resource" and specialization and not sd.get("abstract"):
                        resources[sd["type"]] = resource_definition(sd)
                    if sd.get("kind") in ("resource", "complex-type") and specialization:
                        elements[sd["type"]] = element_types(sd)
                        bindings[sd["type"]] = required_bindings(sd)
                elif kind == "ValueSet":
                    value_set = json.load(tar.extractfile(member))
                    value_set_systems[value_set["url"]] = single_system(value_set)
                    terminology[(kind, value_set["id"])] = value_set
                elif kind == "CodeSystem":
                    code_system = json.load(tar.extractfile(member))
                    terminology[(kind, code_system["id"])] = code_system
                elif name == "Bundle-searchParams.json":
                    bundle = json.load(tar.extractfile(member))
                    search_parameters = [search_parameter(e["resource"]) for e in bundle["entry"]]
                elif kind == "CompartmentDefinition" and name != "CompartmentDefinition-example.json":
                    cd = json.load(tar.extractfile(member))
                    compartments[cd["code"]] = compartment(cd)
                elif kind in ROUND_TRIP_TYPES:
                    examples[name] = tar.extractfile(member).read()
    DEFINITIONS.mkdir(parents=True, exist_ok=True)
    (DEFINITIONS / "resources.json").write_text(
        json.dumps({"source": PACKAGE, "licence": "CC0-1.0", "resources": dict(sorted(resources.items()))},
                   indent=1, sort_keys=False) + "\n"
    )
    (DEFINITIONS / "elements.json").write_text(
        json.dumps({"source": PACKAGE, "licence": "CC0-1.0", "types": dict(sorted(elements.items()))},
                   separators=(",", ":")) + "\n"
    )
    (DEFINITIONS / "search_parameters.json").write_text(
        json.dumps({"source": PACKAGE, "licence": "CC0-1.0", "searchParameters": search_parameters}, indent=0) + "\n"
    )
    code_systems = {
        type_name: systems
        for type_name, paths in sorted(bindings.items())
        if (systems := {p: value_set_systems[vs] for p, vs in paths.items() if value_set_systems.get(vs)})
    }
    (DEFINITIONS / "code_systems.json").write_text(
        json.dumps({"source": PACKAGE, "licence": "CC0-1.0", "codeSystems": code_systems}, indent=1) + "\n"
    )
    (DEFINITIONS / "compartments.json").write_text(
        json.dumps({"source": PACKAGE, "licence": "CC0-1.0", "compartments": dict(sorted(compartments.items()))},
                   indent=1) + "\n"
    )
    _write_ndjson(DEFINITIONS / "terminology.ndjson.gz",
                  (_loadable({k: v for k, v in r.items() if k != "text"}) for _, r in sorted(terminology.items())))
    _write_ndjson(DEFINITIONS / "structure_definitions.ndjson.gz", (sd for _, sd in sorted(structures.items())))
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    for old in EXAMPLES.glob("*.json"):
        old.unlink()
    for name, data in sorted(examples.items()):
        (EXAMPLES / name).write_bytes(data)
    print(f"{len(resources)} resource types, {len(elements)} element maps, {len(search_parameters)} search "
          f"parameters, {len(compartments)} compartments, {len(terminology)} CodeSystems and ValueSets, "
          f"{len(structures)} StructureDefinitions, "
          f"{len(examples)} examples")


def _write_ndjson(path: Path, resources) -> None:
    # mtime=0: the same content gives the same bytes, so a re-run leaves git with nothing to commit.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as out:
        for resource in resources:
            out.write(json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode() + b"\n")


if __name__ == "__main__":
    main()
