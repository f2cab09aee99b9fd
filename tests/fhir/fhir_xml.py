"""FHIR XML to FHIR JSON (xml.html, json.html), for the XML inputs of HL7's FHIRPath test suite.

Which element is a primitive, a backbone element, a resource or a choice comes from the definitions'
element_types(). An element becomes a JSON array when it repeats in the XML: FHIRPath reads a one-item array
and a single value alike, so the suite's answers do not depend on it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from decimal import Decimal
from pathlib import Path

from fhir_server.fhir.definitions import element_types

FHIR = "{http://hl7.org/fhir}"
XHTML = "http://www.w3.org/1999/xhtml"
_NUMBERS = {"integer": int, "positiveInt": int, "unsignedInt": int, "decimal": Decimal}


def xml_to_json(path: Path) -> dict:
    return _resource(ElementTree.parse(path).getroot())


def _resource(element: ElementTree.Element) -> dict:
    kind = element.tag.removeprefix(FHIR)
    out: dict = {"resourceType": kind}
    _fill(out, element, kind, "")
    return out


def _element_type(owner: str, path: str, name: str) -> tuple[str, str]:
    """(JSON key's type code, element path) of child `name`, a choice `valueQuantity` included."""
    types = element_types()[owner]
    full = f"{path}.{name}" if path else name
    if full in types:
        return types[full], full
    for key, codes in types.items():
        stem = key[:-3]
        if key.endswith("[x]") and key.count(".") == full.count(".") and full.startswith(stem):
            suffix = full[len(stem):]
            for code in codes.split("|"):
                if code[0].upper() + code[1:] == suffix:
                    return code, key
    raise ValueError(f"{owner}: no element {full}")


def _primitive(code: str, text: str | None) -> object:
    if text is None:
        return None
    if code == "boolean":
        return text == "true"
    return _NUMBERS.get(code, str)(text)


def _fill(out: dict, element: ElementTree.Element, owner: str, path: str) -> None:
    for attribute in ("id", "url"):
        if attribute in element.attrib:
            out[attribute] = element.attrib[attribute]
    values: dict[str, list] = {}
    extensions: dict[str, list] = {}
    for child in element:
        if child.tag == f"{{{XHTML}}}div":
            ElementTree.register_namespace("", XHTML)
            values.setdefault("div", []).append(ElementTree.tostring(child, encoding="unicode").strip())
            continue
        name = child.tag.removeprefix(FHIR)
        code, element_path = _element_type(owner, path, name)
        if code == "Resource":
            value: object = _resource(child[0])
        elif code.startswith("#") or code in ("BackboneElement", "Element"):
            value = {}
            _fill(value, child, owner, code[1:] if code.startswith("#") else element_path)  # type: ignore[arg-type]
        elif code[0].islower():
            value = _primitive(code, child.get("value"))
            extra: dict = {}
            _fill(extra, child, "Element", "")
            extensions.setdefault(name, []).append(extra or None)
        else:
            value = {}
            _fill(value, child, "Quantity" if code in ("SimpleQuantity", "MoneyQuantity") else code, "")  # type: ignore[arg-type]
        values.setdefault(name, []).append(value)
    for name, items in values.items():
        out[name] = items[0] if len(items) == 1 else items
        extra = extensions.get(name, [])
        if any(extra):
            out[f"_{name}"] = extra[0] if len(extra) == 1 else extra
