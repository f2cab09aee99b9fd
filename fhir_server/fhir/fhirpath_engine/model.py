"""The FHIR type model the engine navigates with (fhirpath.html#navigation, fhirpath.html#types, and
FHIR R4's own page, fhirpath.html "Using FHIRPath with FHIR"): typed nodes over the JSON, choice elements,
primitives with their `_name` siblings, and the type hierarchy behind `is`, `as` and `ofType`.

The JSON is never copied: a node holds the JSON value, its FHIR type, and for a primitive its `_name` sibling.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import cache, cached_property

from fhir_server.fhir.definitions import element_types, resource_types

from .quantity import Quantity, from_fhir
from .temporal import Date, Temporal, parse_date_time, parse_time

# Primitive types and what each specializes (R4 StructureDefinition baseDefinition).
_PRIMITIVE_BASE = {
    "boolean": None, "integer": None, "string": None, "decimal": None, "uri": None, "base64Binary": None,
    "instant": None, "date": None, "dateTime": None, "time": None, "xhtml": None,
    "code": "string", "id": "string", "markdown": "string",
    "url": "uri", "canonical": "uri", "oid": "uri", "uuid": "uri",
    "positiveInt": "integer", "unsignedInt": "integer",
}
SYSTEM_TYPES = frozenset({"Boolean", "Integer", "Decimal", "String", "Date", "DateTime", "Time", "Quantity"})
# Profiles of Quantity (R4 datatypes.html#Quantity) and datatypes specializing BackboneElement.
_QUANTITY_KINDS = frozenset({"Age", "Distance", "Duration", "Count", "SimpleQuantity", "MoneyQuantity"})
_BACKBONE_DATATYPES = frozenset({
    "Dosage", "ElementDefinition", "Timing", "MarketingStatus", "ProdCharacteristic", "ProductShelfLife",
    "Population", "SubstanceAmount",
})


def _decimal(value: object) -> object:
    """A JSON number as a Decimal (the server parses with parse_float=Decimal; other callers may not)."""
    return Decimal(str(value)) if type(value) is int or type(value) is float else value


def _date(value: object) -> object:
    return parse_date_time(value, Date) or value if isinstance(value, str) else value


def _date_time(value: object) -> object:
    return parse_date_time(value) or value if isinstance(value, str) else value


def _time(value: object) -> object:
    return parse_time(value) or value if isinstance(value, str) else value


# How a FHIR primitive's JSON value reads as a System value (fhirpath.html#fhir-primitives); absent: as is.
_TO_SYSTEM = {"decimal": _decimal, "date": _date, "dateTime": _date_time, "instant": _date_time, "time": _time}

Slot = tuple[str, "str | None", "FhirType | None"]  # JSON key, `_key` of a primitive, type (None: a Resource)


class FhirType:
    """A FHIR type, or a backbone element within one: `owner` and `path` say where its elements are defined."""

    def __init__(self, name: str, owner: str, path: str, ancestors: tuple[str, ...], primitive: bool = False,
                 elements: dict[str, tuple[Slot, ...]] | None = None) -> None:
        if elements is not None:  # a type of the engine's own, not in the definitions
            self.__dict__["elements"] = elements
        self.name = name
        self.owner = owner
        self.path = path
        self.ancestors = frozenset(ancestors)  # `is`: the type and what it specializes
        # `as`/`ofType` do not take a primitive for its base type: `gender.as(string)` is empty (R4 suite).
        self.cast_names = frozenset({name}) if primitive else self.ancestors
        self.primitive = primitive
        self.convert = _TO_SYSTEM.get(name) if primitive else (from_fhir if "Quantity" in ancestors else None)

    def __repr__(self) -> str:
        return f"FhirType({self.name}, {self.owner}.{self.path})"

    @cached_property
    def elements(self) -> dict[str, tuple[Slot, ...]]:
        """Child element name -> the JSON keys it may have (several for a choice `value[x]`)."""
        if self.primitive:
            definitions, prefix = element_types()["Element"], ""
        else:
            definitions, prefix = _definitions(self.owner), f"{self.path}." if self.path else ""
        out: dict[str, tuple[Slot, ...]] = {}
        for key, codes in definitions.items():
            if not key.startswith(prefix) or "." in key[len(prefix):]:
                continue
            name = key[len(prefix):]
            if name.endswith("[x]"):
                name = name[:-3]
                out[name] = tuple(self._slot(name + c[0].upper() + c[1:], c, key) for c in codes.split("|"))
            else:
                out[name] = (self._slot(name, codes, key),)
        return out

    @cached_property
    def by_json_key(self) -> dict[str, Slot]:
        """JSON key -> its slot, for `children()`."""
        return {slot[0]: slot for slots in self.elements.values() for slot in slots}

    def _slot(self, key: str, code: str, path: str) -> Slot:
        if code.startswith("#"):
            return key, None, backbone_type(self.owner, code[1:])
        if code in ("BackboneElement", "Element") and not self.primitive:
            return key, None, backbone_type(self.owner, path)
        if code == "Resource":
            return key, None, None
        child = type_named(code)
        return key, (f"_{key}" if child is not None and child.primitive else None), child


def _definitions(owner: str) -> dict[str, str]:
    types = element_types()
    if owner == "Resource":  # the abstract base is not in the element map: DomainResource less its own
        return {k: v for k, v in types["DomainResource"].items()
                if k not in ("text", "contained", "extension", "modifierExtension")}
    if owner in ("SimpleQuantity", "MoneyQuantity"):
        return types["Quantity"]
    return types.get(owner, {})


@cache
def type_named(name: str) -> FhirType | None:
    """The FHIR type of that name, or None if FHIR R4 has none."""
    types = element_types()
    if name in _PRIMITIVE_BASE:
        base = _PRIMITIVE_BASE[name]
        return FhirType(name, name, "", (name, base, "Element") if base else (name, "Element"), primitive=True)
    if name in ("Resource", "DomainResource") or name in resource_types():
        domain = name != "Resource" and "text" in types.get(name, {})
        ancestors = (name, "DomainResource", "Resource") if domain else (name, "Resource")
        return FhirType(name, name, "", ancestors)
    if name in _QUANTITY_KINDS:
        return FhirType(name, name, "", (name, "Quantity", "Element"))
    if name in _BACKBONE_DATATYPES:
        return FhirType(name, name, "", (name, "BackboneElement", "Element"))
    if name in ("Element", "BackboneElement"):
        return FhirType(name, name, "", (name, "Element"))
    if name in types:
        return FhirType(name, name, "", (name, "Element"))
    return None


@cache
def backbone_type(owner: str, path: str) -> FhirType:
    """A backbone element `owner.path` (e.g. Observation.component): typed BackboneElement, or Element."""
    name = element_types().get(owner, {}).get(path, "BackboneElement")
    if name != "Element":
        name = "BackboneElement"
    return FhirType(name, owner, path, (name, "Element"))


def focus_type(name: str) -> FhirType | None:
    """The type of the focus as the caller names it: a type (`HumanName`), or an element path in one, which
    is a backbone element (`Observation.component`, or a contentReference `#Observation.referenceRange`) or
    has the type its definition gives (`Patient.name`)."""
    if "." not in name:
        return type_named(name)
    owner, path = name.removeprefix("#").split(".", 1)
    code = element_types().get(owner, {}).get(path)
    if code is None or code in ("BackboneElement", "Element"):
        return backbone_type(owner, path) if code else None
    if code.startswith("#"):
        return backbone_type(owner, code[1:])
    return type_named(code)  # None for a choice of several types: the caller names the one it has


# Data without a known FHIR type (a variable's dict, a resource of an unknown type): navigated by JSON key.
UNTYPED = FhirType("Element", "", "", ("Element",), elements={})


class Node:
    """A value taken from FHIR data: its JSON, its FHIR type, and for a primitive its `_name` sibling."""

    __slots__ = ("value", "type", "ext")

    def __init__(self, value: object, type: FhirType, ext: dict | None = None) -> None:
        self.value = value
        self.type = type
        self.ext = ext

    def __repr__(self) -> str:
        return f"Node({self.value!r}: {self.type.name})"


def resource_node(value: object) -> Node:
    """A resource, typed by its `resourceType`."""
    kind = value.get("resourceType") if isinstance(value, dict) else None
    return Node(value, (type_named(kind) if isinstance(kind, str) else None) or UNTYPED)


def _typed(value: object, child: FhirType | None, out: list) -> None:
    if child is None:
        out.append(resource_node(value))
    else:
        out.append(Node(value, child))


def _primitives(value: object, ext: object, child: FhirType, out: list) -> None:
    """A primitive element and its `_name` sibling: `given: [null, "James"]` with `_given: [{extension…}]`."""
    if type(value) is list:
        exts = ext if type(ext) is list else ()
        for i, item in enumerate(value):
            item_ext = exts[i] if i < len(exts) else None
            if item is not None or item_ext is not None:
                out.append(Node(item, child, item_ext))
    elif type(ext) is list:  # only extensions, no values
        out.extend(Node(None, child, e) for e in ext if e is not None)
    elif value is not None or ext is not None:
        out.append(Node(value, child, ext))


def navigate(items: list, name: str) -> list:
    """`items.name` (fhirpath.html#path-selection): the child elements of that name, flattened."""
    out: list = []
    for node in items:
        if type(node) is not Node:
            continue
        kind = node.type
        slots = kind.elements.get(name)
        if slots is None:
            if kind is UNTYPED and type(node.value) is dict and name in node.value:
                _untyped(node.value[name], out)
            continue
        source = node.ext if kind.primitive else node.value
        if type(source) is not dict:
            continue
        get = source.get
        for key, ext_key, child in slots:  # several for a choice element, of which at most one is present
            value = get(key)
            if value is None:
                ext = get(ext_key) if ext_key is not None else None
                if ext is not None:  # a primitive with only extensions
                    _primitives(None, ext, child, out)  # type: ignore[arg-type]
            elif ext_key is not None:
                _primitives(value, get(ext_key), child, out)  # type: ignore[arg-type]
            elif type(value) is list:
                for item in value:
                    _typed(item, child, out)
            else:
                _typed(value, child, out)
    return out


def _untyped(value: object, out: list) -> None:
    for item in value if type(value) is list else (value,):
        if isinstance(item, dict):
            out.append(resource_node(item))
        elif item is not None:
            out.append(item)


def children(node: object, out: list) -> None:
    """fhirpath.html#children: every child element of a node, in the order of its JSON, added to `out`."""
    if type(node) is not Node:
        return
    kind = node.type
    source = node.ext if kind.primitive else node.value
    if type(source) is not dict:
        return
    by_key = kind.by_json_key
    for key, value in source.items():
        slot = by_key.get(key)
        if slot is None:
            primitive = by_key.get(key[1:]) if key[:1] == "_" and key[1:] not in source else None
            if primitive is not None and primitive[1] is not None:  # a primitive with only extensions
                _primitives(None, value, primitive[2], out)  # type: ignore[arg-type]
            elif kind is UNTYPED and key != "resourceType":
                _untyped(value, out)
            continue
        _, ext_key, child = slot
        if ext_key is not None:
            _primitives(value, source.get(ext_key), child, out)  # type: ignore[arg-type]
        elif type(value) is list:
            for item in value:
                out.append(Node(item, child) if child is not None else resource_node(item))
        else:
            out.append(Node(value, child) if child is not None else resource_node(value))


def descendants(items: list) -> list:
    """fhirpath.html#descendants: `repeat(children())`; a JSON tree has no cycles to guard against."""
    out: list = []
    level = items
    while level:
        found: list = []
        for node in level:
            if type(node) is Node and (node.ext is not None or not node.type.primitive):
                children(node, found)
        out.extend(found)
        level = found
    return out


def system_value(item: object) -> object:
    """An item as a System value (fhirpath.html#fhir-primitives): a FHIR `date` as a Date, a Quantity as a
    System.Quantity; a complex node stays a node; a primitive that has only extensions gives None."""
    if type(item) is not Node:
        return item
    kind = item.type
    convert = kind.convert
    if kind.primitive:
        return item.value if convert is None or item.value is None else convert(item.value)
    if convert is not None and type(item.value) is dict:
        return convert(item.value) or item
    return item


def system_type(value: object) -> str | None:
    """The System type name of a System value."""
    kind = type(value)
    if kind is bool:
        return "Boolean"
    if kind is int:
        return "Integer"
    if kind is Decimal:
        return "Decimal"
    if kind is str:
        return "String"
    if isinstance(value, Temporal):
        return value.kind
    if kind is Quantity:
        return "Quantity"
    return None


def type_name_of(item: object) -> tuple[str, str]:
    """(namespace, name) for `type()` (fhirpath.html#reflection)."""
    if type(item) is Node:
        return "FHIR", item.type.name
    return "System", system_type(item) or "Any"


def type_test(namespace: str | None, name: str, cast: bool = False) -> Callable[[object], bool]:
    """Whether an item is of a type (`is`), or may be cast to it (`as`, `ofType`: `cast` set)."""
    fhir = namespace != "System"
    system = namespace != "FHIR" and name in SYSTEM_TYPES

    def test(item: object) -> bool:
        if type(item) is Node:
            return fhir and name in (item.type.cast_names if cast else item.type.ancestors)
        return system and system_type(item) == name
    return test


def known_type(namespace: str | None, name: str) -> bool:
    """Whether a type specifier names a type at all (`System.Patient` does: nothing is one)."""
    return name in SYSTEM_TYPES or type_named(name) is not None

