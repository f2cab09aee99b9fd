"""Snapshot generation (profiling.html#snapshot, structuredefinition.html#snapshot).

1. Every constraint StructureDefinition of the specification (resource profiles, extension definitions,
   data-type profiles) regenerated from its differential gives HL7's published snapshot: the same element ids
   in the same order and, per element, the same cardinality, types with their profiles, fixed and pattern
   values, binding, slicing and invariant keys. Where HL7's snapshot differs by a quirk of HL7's generator,
   tests/data/snapshot/known-differences.json names the element and how it differs (its description says
   how each kind is compared); an entry that no longer differs fails too, so the list stays exact.
2. Hand-written differential-only profiles give the expected elements, or the expected SnapshotError. One
   file per rule, tests/data/snapshot/profile-<rule>.json: `section` (the spec section), `notes`, `profile`
   (a StructureDefinition without snapshot; the other files' profiles resolve by url too), then either
   `expect_error` (a regular expression the SnapshotError message must match) or `expect`: `ids` (a run of
   snapshot ids that must appear in this order, back to back), `absent_ids`, and `elements` (id -> fields
   the element must have, plus `constraintKeys` it must include and `absent` keys it must not have).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from fhir_server.fhir.definitions import DIRECTORY
from fhir_server.fhir.validation.snapshot import SnapshotError, generate_snapshot

CASES = Path(__file__).parents[1] / "data" / "snapshot"
FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"


@cache
def _published() -> dict[str, dict]:
    with gzip.open(DIRECTORY / "structure_definitions.ndjson.gz", "rt") as lines:
        return {sd["url"]: sd for sd in map(json.loads, lines)}


@cache
def _cases() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(CASES.glob("profile-*.json"))}


@cache
def _quirks() -> list[dict]:
    return json.loads((CASES / "known-differences.json").read_text())["quirks"]


def _known(url: str) -> dict[str, set[str]]:
    """Aspect -> the elements of profile `url` where HL7's snapshot differs by that quirk."""
    out: dict[str, set[str]] = {}
    for quirk in _quirks():
        for entry in quirk["elements"]:
            if entry["profile"] == url:
                out.setdefault(quirk["aspect"], set()).add(entry["element"])
    return out


def _resolver(extra: dict[str, dict]) -> Callable[[str], dict | None]:
    def resolve(canonical: str) -> dict | None:
        url = canonical.split("|", 1)[0]
        return extra.get(url) or _published().get(url)
    return resolve


def _differential_only(sd: dict) -> dict:
    return {k: v for k, v in sd.items() if k != "snapshot"}


def _type_code(type_ref: dict) -> str:
    for extension in type_ref.get("extension", []):
        if type_ref["code"].startswith("http://hl7.org/fhirpath/") and extension["url"] == FHIR_TYPE:
            return extension["valueUrl"]
    return type_ref["code"]


def _choice_values(element: dict, prefix: str) -> dict:
    return {k: v for k, v in element.items() if k.startswith(prefix) and k[len(prefix):][:1].isupper()}


ASPECTS: dict[str, Callable[[dict], object]] = {
    "min": lambda e: e.get("min"),
    "max": lambda e: e.get("max"),
    "type": lambda e: [(_type_code(t), t.get("profile", []), t.get("targetProfile", [])) for t in e.get("type", [])],
    "fixed": lambda e: _choice_values(e, "fixed"),
    "pattern": lambda e: _choice_values(e, "pattern"),
    "binding": lambda e: ((e.get("binding") or {}).get("strength"), (e.get("binding") or {}).get("valueSet")),
    "slicing": lambda e: e.get("slicing") and (
        [(d["type"], d["path"]) for d in e["slicing"].get("discriminator", [])],
        e["slicing"].get("rules"), e["slicing"].get("ordered", False)),
    "constraint": lambda e: sorted({c["key"] for c in e.get("constraint", [])}),
}


def _under(element_id: str, ancestor: str) -> bool:
    return element_id.startswith((ancestor + ".", ancestor + ":"))


def _type_slice_as_choice(elements: list[dict], slice_id: str) -> list[dict]:
    """HL7's elements with the type slice `slice_id` (`Observation.value[x]:valueQuantity`) standing in for
    its choice element (`Observation.value[x]`), and the slice's children for the choice's."""
    choice = slice_id.rpartition(":")[0]
    assert any(e["id"] == slice_id for e in elements), f"{slice_id}: no longer in HL7's snapshot"
    out = []
    for element in elements:
        if element["id"] == slice_id or element["id"].startswith(slice_id + "."):
            out.append({**element, "id": choice + element["id"][len(slice_id):]})
        elif element["id"] != choice:
            out.append(element)
    return out


def _parent_id(element_id: str) -> str | None:
    """The id of the element `element_id` hangs under in the tree (elementdefinition.html#id): its sliced
    element (or, for a re-slice, its slice) for a slice, else the element one path segment up."""
    head, _, last = element_id.rpartition(".")
    if ":" in last:
        name, _, slice_name = last.partition(":")
        within = slice_name.rpartition("/")[0]
        return f"{head + '.' if head else ''}{name}" + (f":{within}" if within else "")
    return head or None


def _assert_tree(elements: list[dict]) -> None:
    """What a validator walking `snapshot.element` as a tree by id relies on."""
    seen: set[str] = set()
    for element in elements:
        element_id = element["id"]
        assert element_id not in seen, f"{element_id} twice"
        parent = _parent_id(element_id)
        assert parent is None or parent in seen, f"{element_id} before (or without) {parent}"
        path = ".".join(part.split(":")[0] for part in element_id.split("."))
        assert element["path"] == path, f"{element_id} has path {element['path']}"
        assert element.get("base"), f"{element_id} has no base"
        seen.add(element_id)


def _constraint_profiles() -> list[str]:
    return [url for url, sd in _published().items() if sd.get("derivation") == "constraint"]


@pytest.mark.parametrize("url", _constraint_profiles())
def test_published_snapshot_regenerated(url):
    published = _published()[url]
    known = _known(url)
    if "error" in known:
        with pytest.raises(SnapshotError) as raised:
            generate_snapshot(_differential_only(published), _resolver({}))
        assert any(element in str(raised.value) for element in known["error"])
        return
    got = generate_snapshot(_differential_only(published), _resolver({}))["snapshot"]["element"]
    _assert_tree(got)
    want = published["snapshot"]["element"]
    for slice_id in known.get("typeSlice", ()):
        want = _type_slice_as_choice(want, slice_id)

    subtrees = known.get("descendants", set())
    for ancestor in subtrees:  # each listed subtree does differ
        assert [e["id"] for e in got if _under(e["id"], ancestor)] != \
            [e["id"] for e in want if _under(e["id"], ancestor)], f"{ancestor}: descendants no longer differ"
    ids = [[e["id"] for e in elements if not any(_under(e["id"], a) for a in subtrees)] for elements in (got, want)]
    assert ids[0] == ids[1]

    generated = {e["id"]: e for e in got}
    differing = [(e["id"], aspect, of(e), of(generated[e["id"]])) for e in want if e["id"] in generated
                 for aspect, of in ASPECTS.items() if of(generated[e["id"]]) != of(e)]
    assert not differing


def test_known_differences_are_few_and_explained():
    assert len(_quirks()) <= 4
    assert sum(len(quirk["elements"]) for quirk in _quirks()) <= 20
    for quirk in _quirks():
        assert quirk["reason"].strip() and "\n" not in quirk["reason"]
        assert quirk["aspect"] in ("typeSlice", "descendants", "error")
        for entry in quirk["elements"]:
            assert _published()[entry["profile"]].get("derivation") == "constraint"


@pytest.mark.parametrize("name", list(_cases()))
def test_hand_written_profile(name):
    case = _cases()[name]
    extra = {c["profile"]["url"]: c["profile"] for c in _cases().values()}
    profile = case["profile"]
    assert "snapshot" not in profile
    if "expect_error" in case:
        with pytest.raises(SnapshotError, match=case["expect_error"]):
            generate_snapshot(profile, _resolver(extra))
        return
    result = generate_snapshot(profile, _resolver(extra))
    assert result["differential"] == profile["differential"]
    elements = result["snapshot"]["element"]
    _assert_tree(elements)
    ids = [e["id"] for e in elements]
    expected = case["expect"]
    run = expected["ids"]
    start = ids.index(run[0])
    assert ids[start:start + len(run)] == run
    for absent in expected.get("absent_ids", []):
        assert absent not in ids
    by_id = {e["id"]: e for e in elements}
    for element_id, facts in expected.get("elements", {}).items():
        element = by_id[element_id]
        for key, value in facts.items():
            if key == "constraintKeys":
                assert set(value) <= {c["key"] for c in element.get("constraint", [])}, element_id
            elif key == "absent":
                assert not set(value) & set(element), (element_id, set(value) & set(element))
            else:
                assert element.get(key) == value, (element_id, key, element.get(key))


def test_generation_leaves_its_input_alone():
    case = _cases()["profile-slicing.json"]
    core = "http://hl7.org/fhir/StructureDefinition/"
    inputs = [case["profile"], _published()[core + "Patient"], _published()[core + "Identifier"]]
    before = [json.dumps(sd, sort_keys=True) for sd in inputs]
    generate_snapshot(case["profile"], _resolver({}))
    assert [json.dumps(sd, sort_keys=True) for sd in inputs] == before
