"""_summary and _elements: subsets of a resource (search.html#summary, search.html#elements)."""

from __future__ import annotations

from fhir_server.fhir.definitions import ResourceDefinition, resource_definitions
from fhir_server.fhir.errors import bad_request

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
SUMMARY_MODES = ("true", "false", "text", "data", "count")


def _element_name(key: str, paths: frozenset[str], prefix: str) -> str | None:
    """The element path a JSON key stands for, resolving choice types (`valueQuantity` -> `value[x]`)."""
    name = key.lstrip("_")
    if f"{prefix}.{name}" in paths:
        return f"{prefix}.{name}"
    for i in range(len(name) - 1, 0, -1):
        if name[i].isupper() and f"{prefix}.{name[:i]}[x]" in paths:
            return f"{prefix}.{name[:i]}[x]"
    return None


def _summary(value: dict, prefix: str, definition: ResourceDefinition) -> dict:
    out = {}
    for key, child in value.items():
        path = _element_name(key, definition.summary, prefix)
        if key in ("resourceType", "id", "meta") and prefix == definition.type:
            out[key] = child
        elif path is None:
            continue
        elif path in definition.backbone:
            items = child if isinstance(child, list) else [child]
            kept = [_summary(item, path, definition) for item in items if isinstance(item, dict)]
            out[key] = kept if isinstance(child, list) else kept[0]
        else:
            out[key] = child
    return out


def _tag_subsetted(resource: dict) -> dict:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    return {**resource, "meta": meta}


def summarize(resource: dict, mode: str) -> dict:
    """Apply `_summary=mode` (true, text, data or false) to one resource."""
    if mode == "false":
        return resource
    definition = resource_definitions()[resource["resourceType"]]
    top = {"resourceType", "id", "meta"}
    if mode == "true":
        subset = _summary(resource, definition.type, definition)
    elif mode == "text":
        keep = top | {"text"} | {p.split(".", 1)[1] for p in definition.mandatory}
        subset = {k: v for k, v in resource.items() if k in keep}
    elif mode == "data":
        subset = {k: v for k, v in resource.items() if k != "text"}
    else:
        raise bad_request(f"_summary={mode} does not apply here", "_summary")
    return _tag_subsetted(subset)


def elements(resource: dict, names: list[str]) -> dict:
    """Apply `_elements=a,b`: the named top-level elements plus the mandatory ones."""
    definition = resource_definitions()[resource["resourceType"]]
    wanted = {n.strip().split(".")[-1] for n in names if n.strip()}
    mandatory = {p.split(".", 1)[1] for p in definition.mandatory}
    keep = {"resourceType", "id", "meta"} | mandatory
    out = {}
    for key, value in resource.items():
        base = key.lstrip("_")
        is_choice = any(base.startswith(w) and base[len(w):][:1].isupper() for w in wanted)
        if key in keep or base in wanted or is_choice:
            out[key] = value
    return _tag_subsetted(out)


def parse_summary(value: str) -> str:
    if value not in SUMMARY_MODES:
        raise bad_request(f"_summary must be one of {', '.join(SUMMARY_MODES)}, not {value!r}", "_summary")
    return value
