"""Validation of a resource against StructureDefinitions (validation.html, profiling.html).

One walk over the instance and the compiled snapshot together checks, per element: that it is known,
its cardinality and JSON shape, its type (a choice by its name's suffix), primitive kinds, patterns,
lengths and ranges, fixed and pattern values, bindings, invariants (constraint.expression), slicing,
extensions by their definitions, and references' targets. A value of a complex type whose children the
profile does not list is checked against its type's own definition (or the type's profile), whose root
invariants apply too (`ref-1` on every Reference).

Issues carry a FHIRPath `expression` with indexes (`Patient.name[0].given[1]`; a choice as
`Observation.value.ofType(Quantity)`), a severity and the issue-type code of OperationOutcome.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from fhir_server.fhir.definitions import resource_types as _resource_types
from fhir_server.fhir.errors import Issue
from fhir_server.fhir.validation import invariants, primitives, slicing
from fhir_server.fhir.validation.bindings import Bindings
from fhir_server.fhir.validation.conformance import CORE, Conformance, data_types
from fhir_server.fhir.validation.elements import (
    FHIR_TYPE_EXTENSION,
    REGEX_EXTENSION,
    Element,
    TypeRef,
    compile_snapshot,
)
from fhir_server.fhir.validation.snapshot import generate_snapshot
from fhir_server.fhir.validation.values import matches_pattern

_CODED = frozenset({"code", "Coding", "CodeableConcept", "Quantity", "string", "uri"})
_BARE_CODES = frozenset({"code", "string", "uri"})
_ANY_CONTEXT = frozenset({"Element", "Resource", "DomainResource", "BackboneElement"})
_LITERAL = re.compile(r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
_RESTFUL = re.compile(r"^(?P<base>https?://.+/)[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")
_MAX_ISSUES = 500
# Core extensions that R4's own content uses outside the contexts they declare (the type and regex of
# ElementDefinition.type, the normative version on every conformance resource, translations of expansion
# displays, comments on CodeSystem concepts): holding them to their contexts would refuse the
# specification itself, so for these a context mismatch is a warning (docs/validation.md).
_CONTEXT_UNENFORCED = frozenset({FHIR_TYPE_EXTENSION, REGEX_EXTENSION, *(CORE + name for name in (
    "structuredefinition-normative-version", "translation", "valueset-concept-comments"))})
_RESOURCE_TYPES = _resource_types()


@dataclass(frozen=True)
class Structure:
    """A compiled StructureDefinition."""

    url: str
    type: str
    kind: str
    derivation: str | None
    definition: dict
    root: Element

    @property
    def is_base(self) -> bool:
        return self.derivation != "constraint"


@dataclass(frozen=True, slots=True)
class _Frame:
    """The resource being walked (`%resource`) and `%rootResource`: for a contained resource the one that
    contains it, whose `contained` list `#id` references point into (`container`), else itself
    (fhirpath.html#variables). For a resource in a Bundle, the Bundle and the entry's fullUrl, which
    references between entries resolve against (references.html#bundle-references)."""

    resource: dict
    root: dict
    container: dict | None = None
    bundle: dict | None = None
    full_url: str | None = None


class Validator:
    """Validates resources against StructureDefinitions found through `conformance`; compiled profiles
    and ValueSet expansions are kept for the validator's lifetime."""

    def __init__(self, conformance: Conformance, resolve: Callable[[str], dict | None] | None = None) -> None:
        self.conformance = conformance
        self.bindings = Bindings(conformance)
        self._resolve_external = resolve
        self._structures: dict[str, Structure | None] = {}
        self._unusable: dict[str, ValueError] = {}  # profiles whose snapshot cannot be made or compiled
        # Keyed by the children dict's id; the dict is kept alongside so that the id is never reused.
        self._keys: dict[int, tuple] = {}

    def structure(self, url: str) -> Structure | None:
        """The compiled StructureDefinition at a canonical URL, with a snapshot generated if it has none;
        None if it is not known; ValueError (SnapshotError) if it cannot be used."""
        if url in self._unusable:
            raise self._unusable[url]
        if url not in self._structures:
            definition = self.conformance.structure_definition(url)
            try:
                self._structures[url] = None if definition is None else self._compile(definition)
            except ValueError as exc:
                self._unusable[url] = exc
                raise
        return self._structures[url]

    def _compile(self, definition: dict) -> Structure:
        if not (definition.get("snapshot") or {}).get("element"):
            definition = generate_snapshot(definition, self.conformance.structure_definition)
        return Structure(definition["url"], definition["type"], definition.get("kind", ""),
                         definition.get("derivation"), definition, compile_snapshot(definition))

    def validate(self, resource: dict, profiles: Iterable[str] = (), claimed: bool = True) -> list[Issue]:
        """Every issue of `resource` against its type's base definition, the profiles it claims in
        `meta.profile` (unless `claimed` is false) and `profiles`."""
        run = _Run(self, claimed)
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource_type, str):
            return [Issue("structure", "the resource has no resourceType", "fatal", ("Resource",))]
        run.resource(resource, resource_type, tuple(profiles), _Frame(resource, resource))
        return run.issues

    def conforms(self, value: object, profile: str) -> bool:
        """Whether a resource or data type value meets `profile` without errors."""
        structure = self.structure(profile)
        if structure is None:
            return False
        run = _Run(self)
        if isinstance(value, dict) and structure.kind == "resource":
            run.resource(value, value.get("resourceType", structure.type), (profile,), _Frame(value, value),
                         base=False)
        else:
            run.item(value, None, structure.root, structure.type, structure.type, _Frame({}, {}), None)
        return not any(i.severity in ("error", "fatal") for i in run.issues)

    def key_map(self, children: dict[str, Element]) -> dict[str, tuple[Element, str | None]]:
        """JSON property name -> (element, the type a choice name selects)."""
        return self._children(children)[1]

    def removed_choice(self, children: dict[str, Element], name: str) -> tuple[Element, str] | None:
        """(choice element, type) when a JSON name selects a FHIR type the choice does not allow here
        (`valueString` where a profile keeps only Quantity)."""
        for prefix, element in self._children(children)[3].items():
            if name.startswith(prefix):
                type_code = _data_types().get(name[len(prefix):])
                if type_code is not None:
                    return element, type_code
        return None

    def required(self, children: dict[str, Element]) -> tuple[Element, ...]:
        """The children that must be checked even when absent: those with a minimum, or a slice with one."""
        return self._children(children)[2]

    def _children(self, children: dict[str, Element]) -> tuple:
        cached = self._keys.get(id(children))
        if cached is None:
            found: dict[str, tuple[Element, str | None]] = {}
            for element in children.values():
                if element.choice:
                    prefix = element.name[:-3]
                    for t in element.types:
                        found[prefix + t.code[0].upper() + t.code[1:]] = (element, t.code)
                else:
                    found[element.name] = (element, None)
            required = tuple(e for e in children.values() if e.min > 0 or any(s.min > 0 for s in e.slices))
            choices = {e.name[:-3]: e for e in children.values() if e.choice}
            cached = self._keys[id(children)] = (children, found, required, choices)
        return cached


class _Run:
    """One validation: the issues found so far."""

    def __init__(self, validator: Validator, claimed: bool = True) -> None:
        self.v = validator
        self.claimed = claimed  # whether a resource is held to the profiles in its meta.profile
        self.issues: list[Issue] = []
        self._seen: set[tuple] = set()
        self._full_urls: dict[int, dict[int, str]] = {}  # id(Bundle) -> id(entry resource) -> fullUrl

    def issue(self, severity: str, code: str, expression: str, message: str) -> None:
        key = (severity, code, expression, message)
        if key not in self._seen and len(self.issues) < _MAX_ISSUES:
            self._seen.add(key)
            self.issues.append(Issue(code, message, severity, (expression,)))

    def structure(self, url: str, path: str) -> Structure | None:
        """A definition the instance names (a profile, an extension, a reference target), or None; one
        that cannot be used is reported where it is named."""
        try:
            return self.v.structure(url)
        except ValueError as exc:  # SnapshotError among them
            self.issue("error", "processing", path, f"the definition {url} cannot be used: {exc}")
            return None

    # -- resources ---------------------------------------------------------------------------------------

    def resource(self, resource: dict, path: str, profiles: tuple[str, ...], frame: _Frame,
                 base: bool = True) -> None:
        resource_type = resource.get("resourceType")
        if resource_type not in _RESOURCE_TYPES:
            self.issue("error", "structure", path, f"{resource_type!r} is not a FHIR R4 resource type")
            return
        claimed = (resource.get("meta") or {}).get("profile") or [] if self.claimed else []
        urls = ([CORE + resource_type] if base else []) + [p for p in (*claimed, *profiles) if isinstance(p, str)]
        for url in dict.fromkeys(urls):
            try:
                structure = self.v.structure(url)
            except ValueError as exc:  # SnapshotError among them
                self.issue("error", "processing", path, f"the profile {url} cannot be used: {exc}")
                continue
            if structure is None:
                self.issue("warning", "not-found", path,
                           f"the profile {url} is not known here, so the resource was not checked against it")
            elif structure.type != resource_type:
                self.issue("error", "structure", path, f"the profile {url} is for {structure.type}, "
                                                       f"not {resource_type}")
            else:
                self.complex(resource, structure.root, resource_type, path, frame, structure.root.constraints)

    def inner_resource(self, value: dict, element: Element, type_code: str, path: str, frame: _Frame) -> None:
        """A resource inside another (contained, Bundle.entry.resource, Parameters.parameter.resource), held
        to the profiles its element's type lists: one of them at least (ElementDefinition.type.profile)."""
        if element.name == "contained":
            inner = _Frame(value, frame.resource, frame.resource, frame.bundle, frame.full_url)
        else:
            bundle = frame.resource if frame.resource.get("resourceType") == "Bundle" else frame.bundle
            inner = _Frame(value, value, None, bundle, self.full_url(bundle, value) if bundle else None)
        ref = _type_ref(element, type_code if type_code in _RESOURCE_TYPES else None)
        profiles = ref.profiles if ref is not None else ()
        if len(profiles) > 1 and not any(self.v.conforms(value, p) for p in profiles):
            self.issue("error", "structure", path, f"the resource meets none of the profiles allowed here: "
                                                   f"{', '.join(profiles)}")
            profiles = ()
        self.resource(value, path, profiles if len(profiles) == 1 else (), inner)

    def full_url(self, bundle: dict, resource: dict) -> str | None:
        """The fullUrl of the entry holding `resource` (the Bundle lives as long as the run, so ids hold)."""
        urls = self._full_urls.get(id(bundle))
        if urls is None:
            entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
            urls = self._full_urls[id(bundle)] = {id(e["resource"]): e["fullUrl"] for e in entries
                                                  if isinstance(e.get("resource"), dict)
                                                  and isinstance(e.get("fullUrl"), str)}
        return urls.get(id(resource))

    # -- complex values ----------------------------------------------------------------------------------

    def children_of(self, element: Element, type_code: str | None = None) -> dict[str, Element]:
        if element.children:
            return element.children
        structure = self._type_structure(element, type_code)
        return structure.root.children if structure is not None else {}

    def _type_structure(self, element: Element, type_code: str | None, path: str = "") -> Structure | None:
        ref = _type_ref(element, type_code)
        if ref is None:
            return None
        for profile in ref.profiles:
            structure = self.structure(profile, path or element.path)
            if structure is not None:
                return structure
        return self.structure(CORE + ref.code, path or element.path)

    def complex(self, value: dict, element: Element, type_code: str, path: str, frame: _Frame,
                constraints: tuple = ()) -> None:
        """An object: its properties against the element's children, then its invariants."""
        children = element.children
        if not children:
            structure = self._type_structure(element, type_code, path)
            if structure is not None:
                children = structure.root.children
                constraints = (*constraints, *structure.root.constraints)
        keys = self.v.key_map(children)
        present: dict[Element, list[str]] = {}
        for key in value:
            if key == "resourceType" and value is frame.resource:
                continue
            name = key[1:] if key.startswith("_") else key
            found = keys.get(name)
            if found is None:
                removed = self.v.removed_choice(children, name)
                if removed is None:
                    self.issue("error", "structure", f"{path}.{key}", f"{key!r} is not an element of {type_code}")
                    continue
                choice, removed_type = removed
                allowed = ", ".join(choice.type_codes())
                self.issue("error", "structure", f"{path}.{choice.name[:-3]}.ofType({removed_type})",
                           f"{choice.name} may not be a {removed_type} here; allowed: {allowed}")
                present.setdefault(choice, [])  # given, if wrongly: not also reported missing
                continue
            names = present.setdefault(found[0], [])
            if name not in names:
                names.append(name)
        if value is not frame.resource and (not value or set(value) <= {"id"}):
            self.issue("error", "invariant", path, "an element must have a value or children (ele-1)")
        for element_child, names in present.items():
            if names:
                self.child(value, element_child, names, path, type_code, element, frame)
        for element_child in self.v.required(children):
            if element_child not in present:
                self.child(value, element_child, [], path, type_code, element, frame)
        self.invariants(value, element, type_code, constraints, path, frame)

    def child(self, parent: dict, element: Element, names: list[str], path: str, parent_type: str,
              parent_element: Element, frame: _Frame) -> None:
        """One child element of an object: shape, cardinality, slicing, then each value."""
        if element.choice and len(names) > 1:
            self.issue("error", "structure", f"{path}.{element.name[:-3]}",
                       f"only one of {', '.join(names)} may be given ({element.name} takes one type)")
        items: list[tuple[object, object, str, str | None]] = []
        for name in names:
            type_code = _choice_type(element, name)
            item_path = f"{path}.{element.name[:-3]}.ofType({type_code})" if element.choice else f"{path}.{name}"
            raw, extra = parent.get(name), parent.get("_" + name)
            if element.repeats:
                if raw is not None and not isinstance(raw, list) or extra is not None and not isinstance(extra, list):
                    self.issue("error", "structure", item_path, f"{name} repeats, so it is a JSON array")
                    continue
                raw, extra = raw or [], extra or []
                if not raw and not extra and (name in parent or "_" + name in parent):
                    self.issue("error", "structure", item_path, f"{name} is an empty array; leave it out instead")
                if raw and extra and len(raw) != len(extra):
                    self.issue("error", "structure", item_path,
                               f"{name} and _{name} have different lengths ({len(raw)} and {len(extra)})")
                for i in range(max(len(raw), len(extra))):
                    items.append((raw[i] if i < len(raw) else None, extra[i] if i < len(extra) else None,
                                  f"{item_path}[{i}]", type_code))
            else:
                if isinstance(raw, list) or isinstance(extra, list):
                    self.issue("error", "structure", item_path, f"{name} does not repeat, so it is not a JSON array")
                    continue
                items.append((raw, extra, item_path, type_code))
        items = [i for i in items if i[0] is not None or i[1] is not None]
        where = f"{path}.{element.name[:-3] if element.choice else element.name}"
        self.cardinality(element, len(items), where, element.name)
        if element.slicing is not None and element.slices:
            self.sliced(items, element, where, parent_type, parent_element, frame)
        else:
            for value, extra, item_path, type_code in items:
                self.item(value, extra, element, type_code, item_path, frame, _context(parent_type, parent_element))

    def cardinality(self, element: Element, count: int, path: str, name: str) -> None:
        if count < element.min:
            self.issue("error", "required", path, f"{name} is required: at least {element.min} "
                                                  f"expected, {count} found")
        if element.max is not None and count > element.max:
            self.issue("error", "structure", path, f"{name} allows at most {element.max}, {count} found"
                       if element.max else f"{name} is not allowed here")

    # -- one value -----------------------------------------------------------------------------------------

    def item(self, value: object, extra: object, element: Element, type_code: str | None, path: str,
             frame: _Frame, context: tuple[str, ...] | None) -> None:
        type_code = type_code or _single_type(element)
        if value is not None and extra is not None and not type_code[:1].islower():
            self.issue("error", "structure", path, "only a primitive value has a `_` sibling")
        if extra is not None:
            self.primitive_element(extra, type_code, path, frame, element)
            if element.fixed is not None and isinstance(extra, dict) and extra.get("extension"):
                # A fixed value is exact: what it lacks, such as extensions, the instance must lack too.
                self.issue("error", "value", path, f"the value must be exactly {_shown(element.fixed[1])}, "
                                                   f"without extensions")
        if value is None:
            return
        if type_code[:1].islower():
            if not self.primitive(value, element, type_code, path):
                return  # a malformed value: its code, pattern or invariants would only repeat that
        elif type_code == "Resource" or type_code in _RESOURCE_TYPES:
            if not isinstance(value, dict):
                self.issue("error", "structure", path, "a resource (a JSON object) is expected")
                return
            self.inner_resource(value, element, type_code, path, frame)
            return
        elif not isinstance(value, dict):
            self.issue("error", "structure", path, f"a {type_code} (a JSON object) is expected")
            return
        else:
            ref = _type_ref(element, type_code)
            if type_code == "Extension" and not element.children and not (ref and ref.profiles):
                self.extension(value, element, path, frame, context)
                return
            self.complex(value, element, type_code, path, frame, element.constraints)
            if type_code == "Reference":
                self.reference(value, element, path, frame)
        self.fixed_and_pattern(value, element, path)
        if element.binding is not None and type_code in _CODED:
            self.binding(value, element, type_code, path)
        elif type_code in ("Coding", "CodeableConcept"):
            self.known_codes(value, type_code, path)
        if type_code[:1].islower():
            self.invariants(value, element, type_code, element.constraints, path, frame)

    def primitive(self, value: object, element: Element, type_code: str, path: str) -> bool:
        """Whether the value is well formed for its type; its length and range are checked too."""
        problem = primitives.kind_problem(type_code, value)
        if problem:
            self.issue("error", "structure", path, f"a {type_code} is {problem}, not {_shown(value)}")
            return False
        regex, type_max_length = _primitive_rules(self.v, type_code)
        if primitives.pattern_problem(type_code, value, regex):
            self.issue("error", "value", path, f"{_shown(value)} is not a valid {type_code}")
            return False
        limit = element.max_length or type_max_length
        if limit is not None and isinstance(value, str) and len(value) > limit:
            self.issue("error", "too-long", path, f"the value is {len(value):,} characters long; at most "
                                                  f"{limit:,} are allowed")
        for bound, sign, word in ((element.min_value, -1, "below the minimum"),
                                  (element.max_value, 1, "above the maximum")):
            if bound is not None and primitives.compare(value, bound[1]) == sign:
                self.issue("error", "value", path, f"{_shown(value)} is {word} {bound[1]}")
        return True

    def primitive_element(self, extra: object, type_code: str, path: str, frame: _Frame, element: Element) -> None:
        """A primitive's `_name` part: an object with `id` and `extension` (json.html#primitive)."""
        if not isinstance(extra, dict):
            self.issue("error", "structure", path, "a primitive's `_` sibling is an object with id or extensions")
            return
        structure = self.v.structure(CORE + type_code) if type_code[:1].islower() else None
        if structure is None:
            return
        allowed = {"id": structure.root.children.get("id"), "extension": structure.root.children.get("extension")}
        for key in extra:
            if allowed.get(key) is None:
                self.issue("error", "structure", f"{path}.{key}", f"a primitive's `_` part holds only id and "
                                                                   f"extension, not {key!r}")
        if not extra:
            self.issue("error", "invariant", path, "an element must have a value or children (ele-1)")
        extensions = allowed["extension"]
        if extensions is not None and "extension" in extra:
            self.child(extra, extensions, ["extension"], path, type_code, element, frame)

    # -- extensions ----------------------------------------------------------------------------------------

    def extension(self, value: dict, element: Element, path: str, frame: _Frame,
                  context: tuple[str, ...] | None) -> None:
        """An extension not matched to a profile's slice: checked against its own definition by url."""
        url = value.get("url")
        modifier = element.name == "modifierExtension"
        if not isinstance(url, str):
            self.issue("error", "required", f"{path}.url", "an extension needs a url")
            return
        if isinstance(value.get("extension"), list) and value["extension"] and any(
                k.startswith("value") for k in value):
            self.issue("error", "invariant", path, "an extension has either extensions or a value, not both (ext-1)")
        structure = self.structure(url, path) if "#" not in url and "/" in url else None
        if structure is None or structure.type != "Extension":
            if ":" not in url:
                pass  # a part of a complex extension (a relative url), known only through its parent
            elif modifier:
                self.issue("error", "extension", path, f"the modifier extension {url} is not known here, so the "
                                                       f"resource cannot be safely processed")
            else:
                self.issue("information", "extension", path, f"the extension {url} is not known here; only its "
                                                             f"structure was checked")
            self.complex(value, element, "Extension", path, frame, element.constraints)
            return
        if structure.root.is_modifier != modifier:
            self.issue("error", "extension", path,
                       f"the extension {url} is a modifier extension, so it goes in modifierExtension"
                       if structure.root.is_modifier else
                       f"the extension {url} is not a modifier extension, so it does not go in modifierExtension")
        if context is not None and not _allowed_at(structure.definition, context):
            allowed = ", ".join(c.get("expression", "") for c in structure.definition.get("context", []))
            self.issue("warning" if url in _CONTEXT_UNENFORCED else "error", "extension", path,
                       f"the extension {url} is not allowed on {context[1]} (its contexts: {allowed})")
        self.complex(value, structure.root, "Extension", path, frame, structure.root.constraints)

    # -- slicing ------------------------------------------------------------------------------------------

    def sliced(self, items: list, element: Element, path: str, parent_type: str, parent_element: Element,
               frame: _Frame) -> None:
        rules = element.slicing
        order: list[int] = []
        counts = [0] * len(element.slices)
        for value, extra, item_path, type_code in items:
            index = self.slice_of(value, type_code, element, frame)
            if index is None:
                if rules.rules == "closed":
                    self.issue("error", "structure", item_path, f"this {element.name} matches none of the "
                                                                f"slices defined for it, and the slicing is closed")
                elif element.name == "extension" and _part_url(value):
                    # A relative url names a part of a complex extension: only the parts it defines exist.
                    self.issue("error", "structure", item_path, f"the extension defines no part {value['url']!r}")
                order.append(-1)
                self.item(value, extra, element, type_code, item_path, frame, _context(parent_type, parent_element))
                continue
            order.append(index)
            counts[index] += 1
            self.item(value, extra, element.slices[index], type_code, item_path, frame,
                      _context(parent_type, parent_element))
        for index, piece in enumerate(element.slices):
            self.cardinality(piece, counts[index], path, f"{element.name}:{piece.slice_name}")
        placed = [i for i in order if i >= 0]
        if rules.ordered and placed != sorted(placed):
            self.issue("error", "structure", path, f"the slices of {element.name} are out of the profile's order")
        if rules.rules == "openAtEnd" and -1 in order and any(i >= 0 for i in order[order.index(-1):]):
            self.issue("error", "structure", path, f"items of {element.name} that match no slice must come last")

    def slice_of(self, value: object, type_code: str | None, element: Element, frame: _Frame) -> int | None:
        for index, piece in enumerate(element.slices):
            if all(slicing.matches(d, value, type_code, piece, self.children_of, self.resolver(frame),
                                   self.in_value_set, self.v.conforms)
                   for d in element.slicing.discriminators):
                return index
        return None

    def in_value_set(self, value_set: str, value: object) -> bool | None:
        codings = _codings(value, None)
        return any(self.v.bindings.member(value_set, c.get("system"), c["code"]) for c in codings)

    # -- values --------------------------------------------------------------------------------------------

    def fixed_and_pattern(self, value: object, element: Element, path: str) -> None:
        if element.fixed is not None and value != element.fixed[1]:
            self.issue("error", "value", path, f"the value must be exactly {_shown(element.fixed[1])}")
        if element.pattern is not None and not matches_pattern(value, element.pattern[1]):
            self.issue("error", "value", path, f"the value must match the pattern {_shown(element.pattern[1])}")

    def binding(self, value: object, element: Element, type_code: str, path: str) -> None:
        strength, value_set = element.binding
        codings = _codings(value, type_code)
        if type_code in ("Coding", "CodeableConcept"):
            self.known_codes(value, type_code, path)
        if strength not in ("required", "extensible") or (type_code in ("string", "uri") and strength != "required"):
            return
        if not self.v.bindings.known(value_set):
            if strength == "required":
                self.issue("warning", "not-found", path,
                           f"the ValueSet {value_set} is not known here, so the code was not checked")
            return
        if not codings:
            if strength == "required" and type_code != "Quantity":
                self.issue("error", "code-invalid", path, f"a code from {value_set} is required, but none is given")
            return
        # A bare code stands for itself in code/string/uri elements; in a Coding it is a code of no known
        # system, which cannot be shown to belong to any ValueSet (terminologies.html).
        verdicts = [self.v.bindings.member(value_set, None, c["code"]) if type_code in _BARE_CODES
                    else self.v.bindings.member(value_set, c["system"], c["code"]) if c.get("system") else False
                    for c in codings]
        if any(verdicts):
            return
        shown = ", ".join(_coding_text(c) for c in codings)
        if None in verdicts:
            self.issue("information", "code-invalid", path,
                       f"{shown} could not be checked against {value_set}: its code system is not held here")
        elif strength == "required":
            self.issue("error", "code-invalid", path, f"{shown} is not in the required ValueSet {value_set}")
        else:
            self.issue("warning", "code-invalid", path,
                       f"{shown} is not in the extensible ValueSet {value_set}: use one of its codes when one fits")

    def known_codes(self, value: object, type_code: str, path: str) -> None:
        """Codings whose system is held here with all its codes must use one of them (terminologies.html)."""
        codings = value.get("coding") if type_code == "CodeableConcept" and isinstance(value, dict) else [value]
        for index, coding in enumerate(codings if isinstance(codings, list) else []):
            if not isinstance(coding, dict) or not isinstance(coding.get("system"), str) \
                    or not isinstance(coding.get("code"), str):
                continue
            code_system = self.v.bindings.code_system(coding["system"])
            if code_system is not None and code_system.get(coding["code"]) is None:
                where = f"{path}.coding[{index}]" if type_code == "CodeableConcept" else path
                self.issue("error", "code-invalid", f"{where}.code",
                           f"{coding['code']!r} is not a code of {coding['system']}")

    # -- references ----------------------------------------------------------------------------------------

    def resolver(self, frame: _Frame) -> Callable[[str], dict | None]:
        def resolve(reference: str) -> dict | None:
            return _resolve_local(reference, frame) or (
                self.v._resolve_external(reference) if self.v._resolve_external else None)
        return resolve

    def reference(self, value: dict, element: Element, path: str, frame: _Frame) -> None:
        """A Reference's target type against the element's target profiles; a profiled target is checked
        against the profile where it can be resolved (references.html)."""
        reference = value.get("reference")
        if not isinstance(reference, str):
            return
        target = _resolve_local(reference, frame)
        literal = _LITERAL.search(reference.partition("?")[0])
        target_type = target.get("resourceType") if target else literal["type"] if literal else None
        stated = value.get("type")
        if isinstance(stated, str) and target_type in _RESOURCE_TYPES \
                and stated not in (target_type, CORE + target_type):
            self.issue("error", "structure", f"{path}.type", f"the type {stated} does not agree with the "
                                                             f"reference to a {target_type}")
        targets = [p for t in element.types if t.code == "Reference" for p in t.target_profiles]
        if not targets:
            return
        if reference.startswith("#") and target is None and reference != "#":
            self.issue("error", "not-found", f"{path}.reference", f"no contained resource has the id {reference[1:]}")
            return
        structures = [s for s in (self.structure(t, path) for t in targets) if s is not None]
        allowed = {s.type for s in structures}
        if target_type not in _RESOURCE_TYPES or "Resource" in allowed or not structures:
            return
        if target_type not in allowed:
            self.issue("error", "structure", f"{path}.reference",
                       f"this reference points to a {target_type}; allowed here: {', '.join(sorted(allowed))}")
            return
        profiles = [s.url for s in structures if s.type == target_type and not s.is_base]
        if profiles and len(profiles) == len([s for s in structures if s.type == target_type]):
            resolved = target or (self.v._resolve_external(reference) if self.v._resolve_external else None)
            if resolved is not None and not any(self.v.conforms(resolved, p) for p in profiles):
                self.issue("error", "structure", f"{path}.reference",
                           f"the {target_type} referred to does not meet {' or '.join(profiles)}")

    # -- invariants ----------------------------------------------------------------------------------------

    def invariants(self, value: object, element: Element, type_code: str, constraints: Iterable, path: str,
                   frame: _Frame) -> None:
        # A backbone element is typed by its path; one shaped like another (contentReference) by that one's.
        focus_type = element.content_reference or element.path if type_code in ("BackboneElement", "Element") \
            else type_code
        for constraint in constraints:
            verdict = invariants.check(constraint, value, focus_type, frame.resource, frame.root,
                                       self.resolver(frame), self.in_value_set)
            if verdict is True:
                continue
            if verdict is None:
                self.issue("warning", "processing", path, f"the invariant {constraint.key} could not be evaluated")
            else:
                severity = "error" if constraint.severity == "error" else "warning"
                self.issue(severity, "invariant", path, f"{constraint.human} ({constraint.key})")


def _single_type(element: Element) -> str:
    if element.types:
        return element.types[0].code
    return "BackboneElement"


def _choice_type(element: Element, name: str) -> str | None:
    """The type a choice element's JSON name selects (`valueQuantity` -> Quantity); None if not a choice."""
    if not element.choice:
        return None
    suffix = name[len(element.name) - 3:]
    return next((t.code for t in element.types if t.code[0].upper() + t.code[1:] == suffix), None)


@cache
def _data_types() -> dict[str, str]:
    """R4's data types by the suffix they give a choice element's JSON name (`DateTime` -> dateTime)."""
    return {code[0].upper() + code[1:]: code for code in data_types()}


def _type_ref(element: Element, type_code: str | None) -> TypeRef | None:
    for ref in element.types:
        if type_code is None or ref.code == type_code:
            return ref
    return None


@cache
def _primitive_regex(pattern: str) -> re.Pattern:
    # ASCII: the patterns are XML Schema/Java regexes, where `\s` is not a no-break space.
    return re.compile(pattern, re.ASCII)


def _primitive_rules(validator: Validator, type_code: str) -> tuple[re.Pattern | None, int | None]:
    """A primitive type's value pattern and maximum length, from its definition's `value` element."""
    structure = validator.structure(CORE + type_code)
    value = structure.root.children.get("value") if structure is not None else None
    if value is None:
        return None, None
    pattern = value.types[0].regex if value.types else None
    return (_primitive_regex(pattern) if pattern else None), value.max_length


def _codings(value: object, type_code: str | None) -> list[dict]:
    """The codings of a coded value (code, Coding, CodeableConcept, Quantity, string/uri)."""
    if isinstance(value, str):
        return [{"code": value}]
    if not isinstance(value, dict):
        return []
    if type_code == "CodeableConcept" or (type_code is None and "coding" in value):
        return [c for c in value.get("coding") or [] if isinstance(c, dict) and isinstance(c.get("code"), str)]
    return [value] if isinstance(value.get("code"), str) else []


def _part_url(value: object) -> bool:
    """Whether an extension's url is relative: a part of the complex extension it is in."""
    return isinstance(value, dict) and isinstance(value.get("url"), str) and ":" not in value["url"]


def _coding_text(coding: dict) -> str:
    return f"{coding['system']}#{coding['code']}" if coding.get("system") else repr(coding["code"])


def _resolve_local(reference: str, frame: _Frame) -> dict | None:
    """A contained resource (`#id`) or a Bundle entry with the reference as its fullUrl or Type/id."""
    if reference.startswith("#"):
        container = frame.container or frame.resource
        if reference == "#":
            return container
        for contained in container.get("contained") or []:
            if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                return contained
        return None
    bundle = frame.resource if frame.resource.get("resourceType") == "Bundle" else frame.bundle
    if bundle is None:
        return None
    wanted = _absolute(reference, frame.full_url)
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        if entry.get("fullUrl") == wanted or wanted == reference and not _RESTFUL.match(reference) \
                and f"{resource.get('resourceType')}/{resource.get('id')}" == reference:
            return resource
    return None


def _absolute(reference: str, full_url: str | None) -> str:
    """A relative reference made absolute against the base of the referring entry's RESTful fullUrl
    (references.html#bundle-references); as it is otherwise."""
    base = _RESTFUL.match(full_url) if full_url else None
    if base is None or ":" in reference.partition("/")[0]:
        return reference
    return base["base"] + reference


def _context(parent_type: str, parent: Element) -> tuple[str, ...]:
    """The names an extension's context may give the element it is on: its type, its path, its paths from
    the data types around it, and the path of the element it is shaped like (`PlanDefinition.action.action`
    is a `PlanDefinition.action`)."""
    names = (parent_type, parent.path.replace("[x]", ""), *parent.aliases)
    return (*names, parent.content_reference) if parent.content_reference else names


def _allowed_at(definition: dict, context: tuple[str, ...]) -> bool:
    """Whether an extension's `context` (structuredefinition.html#context) admits the element it is on."""
    for entry in definition.get("context") or [{"type": "element", "expression": "Element"}]:
        expression = entry.get("expression", "")
        if entry.get("type") != "element" or expression in _ANY_CONTEXT or expression in context:
            return True
    return False


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, dict | list) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."
