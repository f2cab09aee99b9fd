"""A StructureDefinition's snapshot compiled into a tree of element rules (elementdefinition.html).

The snapshot is a flat list in document order whose `id`s name each element's place
(elementdefinition.html#id): `Observation.component:systolic.code` is the `code` child of the
`systolic` slice of `Observation.component`. Compiling once per profile turns it into nodes with their
children by JSON name and their slices, so validation walks an instance and the tree together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The FHIRPath system types that snapshots give primitive values and `id` (structuredefinition.html).
_SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string", "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer", "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date", "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/regex"
VALUE_PREFIXES = ("fixed", "pattern", "minValue", "maxValue")
_UNNAMED = frozenset({"BackboneElement", "Element"})  # types whose elements are named by their path


@dataclass(frozen=True, slots=True)
class TypeRef:
    """One ElementDefinition.type: its code, the profiles a value must meet, and a Reference's targets."""

    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()
    regex: str | None = None  # a primitive's value pattern (the regex extension, datatypes.html#primitive)


@dataclass(frozen=True, slots=True)
class Constraint:
    key: str
    severity: str
    human: str
    expression: str
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Discriminator:
    type: str  # value | exists | pattern | type | profile (profiling.html#discriminator)
    path: str


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    rules: str  # closed | open | openAtEnd
    ordered: bool


@dataclass(eq=False, slots=True)
class Element:
    """One ElementDefinition with its children (by name, `value[x]` kept as written) and its slices."""

    id: str
    path: str
    name: str
    min: int
    max: int | None  # None: unbounded
    base_max: int | None  # the base definition's max, which decides the JSON shape (array or not)
    types: tuple[TypeRef, ...] = ()
    content_reference: str | None = None
    fixed: tuple[str, object] | None = None  # (type suffix, value)
    pattern: tuple[str, object] | None = None
    min_value: tuple[str, object] | None = None
    max_value: tuple[str, object] | None = None
    max_length: int | None = None
    binding: tuple[str, str] | None = None  # (strength, ValueSet canonical)
    constraints: tuple[Constraint, ...] = ()
    slice_name: str | None = None
    slicing: Slicing | None = None
    slices: list[Element] = field(default_factory=list)
    children: dict[str, Element] = field(default_factory=dict)
    is_modifier: bool = False
    choice: bool = False  # a choice of types, `value[x]`
    # The element's paths from the data types around it: in a Patient profile that constrains
    # `Patient.name.family`, that element is also `HumanName.family` (structuredefinition.html#context).
    aliases: tuple[str, ...] = ()

    @property
    def repeats(self) -> bool:
        return self.base_max is None or self.base_max > 1

    def type_codes(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.types)


def compile_snapshot(structure_definition: dict) -> Element:
    """The root element of a snapshot, with the tree below it."""
    elements = structure_definition["snapshot"]["element"]
    by_id: dict[str, Element] = {}
    root: Element | None = None
    for raw in elements:
        element = _element(raw)
        by_id[element.id] = element
        if root is None:
            root = element
            continue
        parent_id, _, last = element.id.rpartition(".")
        if ":" in last:  # a slice (or a re-slice `name:slice/reslice`) of the element it is cut from
            name, _, slice_name = last.partition(":")
            sliced_id = f"{parent_id}.{name}" if "/" not in slice_name else \
                f"{parent_id}.{name}:{slice_name.rpartition('/')[0]}"
            sliced = by_id.get(sliced_id)
            if sliced is None:
                raise ValueError(f"{structure_definition.get('url')}: slice {element.id} comes before {sliced_id}")
            sliced.slices.append(element)
            continue
        parent = by_id.get(parent_id)
        if parent is None:
            raise ValueError(f"{structure_definition.get('url')}: element {element.id} has no parent {parent_id}")
        parent.children[element.name] = element
    if root is None:
        raise ValueError(f"{structure_definition.get('url')}: the snapshot has no elements")
    _name_aliases(root)
    for element in by_id.values():
        # `Questionnaire.item.item` is shaped like `Questionnaire.item`: it shares that element's rules.
        target = by_id.get(element.content_reference) if element.content_reference else None
        if target is not None and not element.children:
            element.children = target.children
            element.constraints = target.constraints
            element.slicing, element.slices = target.slicing, target.slices
    return root


def _name_aliases(element: Element) -> None:
    types = element.type_codes()
    typed = (types[0],) if len(types) == 1 and types[0][:1].isupper() and types[0] not in _UNNAMED else ()
    for child in element.children.values():
        name = child.name.replace("[x]", "")
        child.aliases = tuple(f"{prefix}.{name}" for prefix in (*element.aliases, *typed))
        for piece in (child, *child.slices):
            piece.aliases = child.aliases
            _name_aliases(piece)


def _element(raw: dict) -> Element:
    path = raw["path"]
    element_id = raw.get("id") or path
    last = element_id.rpartition(".")[2] if "." in element_id else element_id
    name = last.partition(":")[0]
    slicing = raw.get("slicing")
    binding = raw.get("binding") or {}
    values = {prefix: _prefixed(raw, prefix) for prefix in VALUE_PREFIXES}
    return Element(
        id=element_id, path=path, name=name,
        min=int(raw.get("min", 0)),
        max=_max(raw.get("max", "*")),
        base_max=_max((raw.get("base") or {}).get("max", raw.get("max", "*"))),
        types=tuple(_type(t) for t in raw.get("type", [])),
        content_reference=(raw.get("contentReference") or "").rpartition("#")[2] or None,
        fixed=values["fixed"], pattern=values["pattern"],
        min_value=values["minValue"], max_value=values["maxValue"],
        max_length=raw.get("maxLength"),
        binding=(binding["strength"], binding["valueSet"]) if binding.get("valueSet") else None,
        constraints=tuple(Constraint(c["key"], c.get("severity", "error"), c.get("human", ""),
                                     c["expression"], c.get("source"))
                          for c in raw.get("constraint", []) if c.get("expression")),
        slice_name=raw.get("sliceName"),
        slicing=Slicing(tuple(Discriminator(d["type"], d["path"]) for d in slicing.get("discriminator", [])),
                        slicing.get("rules", "open"), bool(slicing.get("ordered"))) if slicing else None,
        is_modifier=bool(raw.get("isModifier")),
        choice=name.endswith("[x]"),
    )


def _type(raw: dict) -> TypeRef:
    code = raw["code"]
    regex = None
    for extension in raw.get("extension", []):
        if extension.get("url") == FHIR_TYPE_EXTENSION and code in _SYSTEM_TYPES:
            code = extension["valueUrl"]
        elif extension.get("url") == REGEX_EXTENSION:
            regex = extension.get("valueString")
    return TypeRef(_SYSTEM_TYPES.get(code, code), tuple(raw.get("profile", [])),
                   tuple(raw.get("targetProfile", [])), regex)


def _prefixed(raw: dict, prefix: str) -> tuple[str, object] | None:
    for key, value in raw.items():
        if key.startswith(prefix) and key[len(prefix):len(prefix) + 1].isupper():
            return key[len(prefix):], value
    return None


def _max(text: str) -> int | None:
    return None if text == "*" else int(text)
