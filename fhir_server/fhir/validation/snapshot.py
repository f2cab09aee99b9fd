"""Snapshot generation: a profile's differential applied over the snapshot of its base
(profiling.html#snapshot, structuredefinition.html#snapshot, elementdefinition.html).

The rules are those HL7's Java ProfileUtilities applies for R4, read as a tree rather than with cursors:

- the base snapshot is walked in order; each base element gets the differential elements that name it (by
  path, by `path:sliceName` through the element ids, or by a choice renamed to one of its types,
  `Observation.valueQuantity` for `Observation.value[x]`) merged onto a copy of it; a profile may only narrow
  (cardinality, types, required bindings, slicing rules) and a widening is a SnapshotError;
- where the differential constrains the children of an element whose children the base does not list, they
  are unrolled from the element's type (its profile's snapshot if the type names one) or its contentReference;
- slices follow the sliced element and its children: the base's slices in base order, then the
  differential's new slices in differential order, each a copy of the sliced element (and of its children);
  a slice can be re-sliced (`path:slice/reslice`); extensions are sliced by url without being asked;
- the snapshot keeps choice paths (`value[x]`, with the type narrowed) and writes standard element ids
  (elementdefinition.html#id).

Not implemented, and said so by a SnapshotError: specializations (new elements), and one choice constrained
under several renamed paths at once (`valueQuantity` and `valueString`: slice value[x] by type instead).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from fhir_server.fhir.definitions import resource_types

CORE = "http://hl7.org/fhir/StructureDefinition/"
# Element.id and primitive values are typed with FHIRPath system types; the FHIR type is in this extension.
FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
SYSTEM_TYPES = "http://hl7.org/fhirpath/System."
EXTENSION_SLICING = {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"}
# The types a binding can apply to (elementdefinition.html#binding); a binding left on none of them is dropped.
BINDABLE = frozenset({"code", "Coding", "CodeableConcept", "Quantity", "string", "uri"})
# What a profile restates in place of the base's (elementdefinition.html).
REPLACED = ("short", "definition", "comment", "requirements", "label", "meaningWhenMissing", "orderMeaning",
            "maxLength", "mustSupport", "sliceIsConstraining", "isModifierReason")
# Choice-typed properties: a profile's value replaces whatever type the base's had.
CHOICE_PREFIXES = ("fixed", "pattern", "minValue", "maxValue")
# What a profile adds to the base's.
ACCUMULATED = ("alias", "code", "condition", "mapping", "example")
# What an extension definition's root element tells a slice of that extension (the slice's cardinality is
# the differential's).
FROM_PROFILE = ("short", "definition", "comment", "requirements", "isModifier", "isModifierReason")
RULES = {"open": 0, "openAtEnd": 1, "closed": 2}


class SnapshotError(ValueError):
    """A differential that cannot be applied to its base; the message names the differential element and why."""


def generate_snapshot(profile: dict, resolve: Callable[[str], dict | None]) -> dict:
    """A copy of `profile` with `snapshot.element` generated from its differential over the snapshot of
    its baseDefinition. `resolve(canonical)` returns a StructureDefinition by url (with or without |version),
    for the base and for the types/profiles it must unroll; a resolved SD without a snapshot gets one
    generated first (recursively, guarding against cycles)."""
    return _Generator(resolve).generate(profile)


@dataclass(eq=False)
class _Node:
    """A snapshot element with its children and, for a sliced element, its slices (a slice's re-slices hang
    off the slice)."""

    element: dict
    tree: _Tree
    children: list[_Node] = field(default_factory=list)
    slices: list[_Node] = field(default_factory=list)
    entry: _Node | None = None

    @property
    def path(self) -> str:
        return self.element["path"]

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def slice_name(self) -> str | None:
        return self.element.get("sliceName")


class _Tree:
    """One StructureDefinition's snapshot as a tree of _Nodes."""

    def __init__(self, url: str, elements: list[dict]):
        self.url = url
        self.by_id: dict[str, _Node] = {}
        self.root = _Node(elements[0], self)
        stack = [self.root]
        for element in elements[1:]:
            node = _Node(element, self)
            path, name = element["path"], element.get("sliceName")
            while stack and not (path.startswith(stack[-1].path + ".") or (name and stack[-1].path == path)):
                stack.pop()
            if not stack or (stack[-1].path != path and "." in path[len(stack[-1].path) + 1:]):
                raise SnapshotError(f"{url}: snapshot element {element.get('id', path)} is not under its parent")
            if stack[-1].path == path:  # a slice of the element (or a re-slice of the slice) on top
                entry = stack.pop()
                while entry.entry is not None and not name.startswith(entry.slice_name + "/"):
                    entry = entry.entry
                if entry.slice_name and not name.startswith(entry.slice_name + "/"):
                    stack[-1].children.append(node)  # a slice published without its sliced element
                else:
                    entry.slices.append(node)
                    node.entry = entry
            else:
                stack[-1].children.append(node)
            stack.append(node)
            self.by_id.setdefault(element.get("id", path), node)

    def find(self, reference: str) -> _Node | None:
        """The element a contentReference (`#Questionnaire.item`) points at."""
        target = reference.split("#", 1)[-1]
        return self.by_id.get(target)


@dataclass(eq=False)
class _Diff:
    """A differential element at its place in the profile's tree; `element` is None for a level the
    differential does not list but walks through (`Patient.identifier` of `Patient.identifier.system`)."""

    name: str
    slice_name: str | None
    element: dict | None = None
    children: list[_Diff] = field(default_factory=list)
    used: bool = False

    @property
    def where(self) -> str:
        """How error messages name it: its id, or for a level the differential skips, the first element under it."""
        if self.element is None:
            return self.children[0].where if self.children else self.name
        return self.element.get("id") or self.element["path"]


def _diff_tree(elements: list[dict], root: str) -> _Diff:
    """The differential as a tree keyed by (path segment, sliceName): slices of enclosing levels come from the
    element ids (`Observation.component:SystolicBP.code`), or, for elements without ids, from the nearest
    preceding element that contains them."""
    tree = _Diff(root, None)
    seen: list[tuple[str, list[tuple[str, str | None]]]] = []
    for element in elements:
        path = element.get("path")
        where = element.get("id") or path
        if not path or path.split(".")[0] != root:
            raise SnapshotError(f"differential element {where}: path {path!r} is not within {root}")
        key = _key(element, seen)
        seen.append((path, key))
        node = tree
        for name, slice_name in key[1:]:
            node = next((c for c in node.children if c.name == name and c.slice_name == slice_name), None) or \
                _add(node, _Diff(name, slice_name))
        if node.element is not None:
            raise SnapshotError(f"differential element {where}: {node.where} is already constrained earlier")
        node.element = element
    return tree


def _add(parent: _Diff, child: _Diff) -> _Diff:
    parent.children.append(child)
    return child


def _key(element: dict, seen: list[tuple[str, list[tuple[str, str | None]]]]) -> list[tuple[str, str | None]]:
    names = element["path"].split(".")
    last = element.get("sliceName")
    parts = (element.get("id") or "").split(".")
    if len(parts) == len(names):  # sliceNames have no dots (eld-16), so an id has a part per path segment
        slices = [part.split(":", 1)[1] if ":" in part else None for part in parts]
        if last and slices[-1] != last and not (slices[-1] or "").endswith("/" + last):
            slices[-1] = last
        return list(zip(names, slices, strict=True))
    path = element["path"]
    for previous, key in reversed(seen):
        if path.startswith(previous + "."):
            depth = previous.count(".") + 1
            return key[:depth] + [(n, None) for n in names[depth:-1]] + [(names[-1], last)]
    return [(n, None) for n in names[:-1]] + [(names[-1], last)]


def _type_code(type_ref: dict) -> str:
    code = type_ref.get("code", "")
    if code.startswith(SYSTEM_TYPES):
        for extension in type_ref.get("extension", []):
            if extension.get("url") == FHIR_TYPE:
                return extension.get("valueUrl") or extension.get("valueUri") or code
    return code


def _codes(element: dict) -> list[str]:
    return [_type_code(t) for t in element.get("type", [])]


def _capitalized(code: str) -> str:
    return code[:1].upper() + code[1:]


def _wider(derived: str, base: str | None) -> bool:
    if base is None or base == "*":
        return False
    return derived == "*" or int(derived) > int(base)


def _copy(node: _Node, path: str, element_id: str) -> dict:
    """A base element moved to `path`, with its `base` and the source of each of its invariants stated."""
    element = node.element
    out = copy.deepcopy(element)
    out["id"], out["path"] = element_id, path
    out.setdefault("base", {"path": element["path"], "min": element.get("min", 0), "max": element.get("max", "*")})
    for constraint in out.get("constraint", []):
        constraint.setdefault("source", node.tree.url)
    return out


def _is_extension(path: str) -> bool:
    return path == "Extension" or path.endswith((".extension", ".modifierExtension"))


class _Generator:
    """One generate_snapshot call: the trees of the structures it resolved, and the profiles it is generating
    (a profile met again while its own snapshot is being generated is a cycle)."""

    def __init__(self, resolve: Callable[[str], dict | None]):
        self.resolve = resolve
        self.trees: dict[str, _Tree] = {}
        self.active: list[str] = []

    def generate(self, profile: dict) -> dict:
        url = profile.get("url", "(no url)")
        if profile.get("derivation") == "specialization":
            raise SnapshotError(f"{url}: snapshot generation for a specialization is not implemented")
        differential = (profile.get("differential") or {}).get("element") or []
        if not profile.get("baseDefinition"):
            raise SnapshotError(f"{url}: no baseDefinition to generate the snapshot over")
        if url in self.active:
            raise SnapshotError(f"{url}: circular snapshot generation ({' -> '.join([*self.active, url])})")
        self.active.append(url)
        try:
            base = self.tree(profile["baseDefinition"], url)
            if profile.get("type", base.root.path) != base.root.path:
                raise SnapshotError(f"{url}: type {profile['type']} differs from its base's {base.root.path}")
            elements = _Merge(self, url, base).run(_diff_tree(differential, base.root.path))
        finally:
            self.active.pop()
        out = copy.deepcopy({k: v for k, v in profile.items() if k != "snapshot"})
        out["snapshot"] = {"element": elements}
        return out

    def tree(self, canonical: str, where: str) -> _Tree:
        if canonical not in self.trees:
            definition = self.resolve(canonical)
            if definition is None:
                raise SnapshotError(f"{where}: cannot resolve StructureDefinition {canonical}")
            if not (definition.get("snapshot") or {}).get("element"):
                definition = self.generate(definition)
            self.trees[canonical] = _Tree(definition.get("url", canonical), definition["snapshot"]["element"])
        return self.trees[canonical]


class _Merge:
    """The snapshot of one profile, written element by element into `out`."""

    def __init__(self, generator: _Generator, url: str, base: _Tree):
        self.generator = generator
        self.url = url
        self.base = base
        self.out: list[dict] = []

    def run(self, differential: _Diff) -> list[dict]:
        if differential.element and differential.element.get("type"):
            raise SnapshotError(f"differential element {differential.where}: the root element cannot have a type")
        root = self.base.root
        self.element(root, [differential], [], None, None, None, root.slices)
        return self.out

    # -- walking the base ------------------------------------------------------------------------------------

    def element(self, node: _Node, own: list[_Diff], sliced: list[_Diff], parent_path: str | None,
                parent_id: str | None, slice_name: str | None, base_slices: list[_Node],
                new_slice: bool = False) -> None:
        """`node` with the differential elements that constrain it (`own`), then its children, then its
        slices (`sliced`: the differential's elements for slices of it and their re-slices)."""
        path, element_id = self.place(node, parent_path, parent_id, slice_name)
        element = _copy(node, path, element_id)
        if new_slice:  # a copy of the sliced element, whose minimum counts all its slices together
            element.pop("slicing", None)
            element["sliceName"] = slice_name
            element["min"] = 0
            named = [t for t in element.get("type", []) if node.name.endswith("[x]")
                     and slice_name == node.name[:-3] + _capitalized(_type_code(t))]
            if named:  # a type slice (`value[x]:valueString`) has the type it is named for
                element["type"] = named
        renamed = {d.name for d in own if d.name != node.name}
        if len(renamed) > 1:
            raise SnapshotError(f"differential element {own[-1].where}: {node.path} is constrained as "
                                f"{', '.join(sorted(renamed))}; slice {node.name} by type to constrain several types")
        for diff in own:
            diff.used = True
            self.constrain(element, node, diff, new_slice)
        self.out.append(element)
        children = [c for d in own for c in d.children]
        if children:
            self.children(node.children or self.unroll(element, node, own[-1]), children, path, element_id)
        else:
            for child in node.children:
                self.copy(child, path, element_id)
        self.slices(element, node, base_slices, sliced, parent_path, parent_id)

    def children(self, nodes: list[_Node], diffs: list[_Diff], path: str, element_id: str) -> None:
        names = {n.name for n in nodes}
        for node in nodes:
            matched = [d for d in diffs if self.matches(node, d, names)]
            if not matched:
                self.copy(node, path, element_id)
                continue
            own = [d for d in matched if d.slice_name == node.slice_name]
            sliced = [d for d in matched if d.slice_name != node.slice_name]
            for diff in sliced:
                diff.used = True
            self.element(node, own, sliced, path, element_id, node.slice_name, node.slices)
        for diff in diffs:
            if not diff.used:
                raise SnapshotError(f"differential element {diff.where}: the base has no element {path}.{diff.name}")

    def slices(self, element: dict, node: _Node, base_slices: list[_Node], diffs: list[_Diff],
               parent_path: str | None, parent_id: str | None) -> None:
        """The base's slices of `element` (constrained where the differential names them), then the new
        ones in differential order (profiling.html#slicing)."""
        prefix = element.get("sliceName")
        groups: dict[str, tuple[list[_Diff], list[_Diff]]] = {}
        for diff in diffs:
            name = diff.slice_name or ""
            rest = name[len(prefix) + 1:] if prefix else name
            direct = f"{prefix}/{rest.split('/')[0]}" if prefix else rest.split("/")[0]
            own, deeper = groups.setdefault(direct, ([], []))
            (own if name == direct else deeper).append(diff)
        for base_slice in base_slices:
            own, deeper = groups.pop(base_slice.slice_name, ([], []))
            if own or deeper:
                self.element(base_slice, own, deeper, parent_path, parent_id, base_slice.slice_name,
                             base_slice.slices)
            else:
                self.copy(base_slice, parent_path, parent_id)
        if not groups:
            return
        first = next(iter(groups.values()))
        where = (first[0] or first[1])[0].where
        if "slicing" not in element:
            if not _is_extension(element["path"]):
                raise SnapshotError(f"differential element {where}: slices {element['id']}, which neither the "
                                    "differential nor the base gives a slicing")
            element["slicing"] = copy.deepcopy(EXTENSION_SLICING)  # extensions are sliced by url implicitly
        if element.get("sliceName") == node.slice_name:  # not itself a new slice: the base's rules hold
            if (node.element.get("slicing") or {}).get("rules") == "closed":
                raise SnapshotError(f"differential element {where}: adds a slice to {element['id']}, whose "
                                    "slicing the base closes")
            if node.element.get("max") == "1" and not node.name.endswith("[x]"):
                raise SnapshotError(f"differential element {where}: slices {element['id']}, which does not repeat")
        for name, (own, deeper) in groups.items():
            if not own:
                raise SnapshotError(f"differential element {deeper[0].where}: re-slices {name}, which is "
                                    "neither in the base nor in the differential")
            self.element(node, own, deeper, parent_path, parent_id, name, [], new_slice=True)

    def copy(self, node: _Node, parent_path: str | None, parent_id: str | None) -> None:
        """`node`, its children and its slices as the base has them, moved under `parent_path`."""
        path, element_id = self.place(node, parent_path, parent_id, node.slice_name)
        self.out.append(_copy(node, path, element_id))
        for child in node.children:
            self.copy(child, path, element_id)
        for base_slice in node.slices:
            self.copy(base_slice, parent_path, parent_id)

    @staticmethod
    def place(node: _Node, parent_path: str | None, parent_id: str | None, slice_name: str | None) -> tuple[str, str]:
        """The snapshot path and standard id (elementdefinition.html#id) of `node` under its new parent."""
        if parent_path is None:
            return node.path, node.path
        label = f"{node.name}:{slice_name}" if slice_name else node.name
        return f"{parent_path}.{node.name}", f"{parent_id}.{label}"

    def matches(self, node: _Node, diff: _Diff, names: set[str]) -> bool:
        if diff.name == node.name:
            return True
        if diff.name in names or not node.name.endswith("[x]"):
            return False
        stem = node.name[:-3]
        return diff.name.startswith(stem) and diff.name[len(stem):len(stem) + 1].isupper()

    def unroll(self, element: dict, node: _Node, diff: _Diff) -> list[_Node]:
        """The children the base does not list for an element the differential walks into: those of the
        element a contentReference points at, or of the element's type (its profile, if it names one)."""
        reference = element.get("contentReference")
        if reference:
            target = node.tree.find(reference)
            if target is None:
                raise SnapshotError(f"differential element {diff.where}: cannot resolve contentReference "
                                    f"{reference} of {element['path']}")
            element.pop("contentReference")
            element["type"] = copy.deepcopy(target.element.get("type", []))
            return target.children
        types = element.get("type", [])
        codes = _codes(element)
        if not types:
            raise SnapshotError(f"differential element {diff.where}: constrains children of {element['path']}, "
                                "which has no type")
        if len(set(codes)) > 1:
            raise SnapshotError(f"differential element {diff.where}: constrains children of {element['path']}, "
                                f"which has several types ({', '.join(codes)}); narrow it to one first")
        profiles = types[0].get("profile", []) if codes[0] != "Reference" else []
        canonical = profiles[0] if profiles else codes[0] if ":" in codes[0] else CORE + codes[0]
        return self.generator.tree(canonical, f"differential element {diff.where}").root.children

    # -- merging one differential element ----------------------------------------------------------------------

    def constrain(self, element: dict, node: _Node, diff: _Diff, new_slice: bool) -> None:
        """Merge one differential element onto the copy of its base element (elementdefinition.html: a
        profile narrows; what it restates replaces, constraints add up). A new slice starts from the sliced
        element, whose minimum bounds the slices together, not each of them."""
        where = f"differential element {diff.where}"
        if diff.name != node.name:  # `valueQuantity`: value[x] keeps its path with the one type it names
            code = self.choice_type(element, node, diff, where)
            element["type"] = [t for t in element.get("type", []) if _type_code(t) == code]
        source = diff.element
        if source is None:
            return
        types = source.get("type", [])
        if len(types) == 1 and types[0].get("profile") and types[0].get("code") != "Reference":
            self.adopt_profile(element, types[0]["profile"][0], where)
        for key in REPLACED:
            if key in source:
                element[key] = copy.deepcopy(source[key])
        for prefix in CHOICE_PREFIXES:
            stated = [k for k in source if k.startswith(prefix) and k[len(prefix):len(prefix) + 1].isupper()]
            if stated:
                for k in [k for k in element if k.startswith(prefix) and k[len(prefix):len(prefix) + 1].isupper()]:
                    del element[k]
                element.update({k: copy.deepcopy(source[k]) for k in stated})
        for key in ACCUMULATED:
            for item in source.get(key, []):
                if item not in element.setdefault(key, []):
                    element[key].append(copy.deepcopy(item))
        self.cardinality(element, source, where, new_slice)
        if types:
            self.narrow_types(element, types, where)
        if "binding" in source:
            self.bind(element, source["binding"], where)
        if "slicing" in source:
            element["slicing"] = self.slicing(element.get("slicing"), source["slicing"], where)
        if "isModifier" in source and source["isModifier"] != element.get("isModifier", False):
            if not _is_extension(node.path):  # only an extension decides it is a modifier (extensibility.html)
                raise SnapshotError(f"{where}: a profile cannot change isModifier of {element['path']}")
            element["isModifier"] = source["isModifier"]
        if "isSummary" in source and source["isSummary"] != element.get("isSummary", source["isSummary"]):
            raise SnapshotError(f"{where}: a profile cannot change isSummary of {element['path']}")
        if "isSummary" in source:
            element["isSummary"] = source["isSummary"]
        self.add_constraints(element, source.get("constraint", []), where)

    def choice_type(self, element: dict, node: _Node, diff: _Diff, where: str) -> str:
        suffix = diff.name[len(node.name) - 3:]
        for code in _codes(element):
            if _capitalized(code) == suffix:
                return code
        raise SnapshotError(f"{where}: {diff.name} names type {suffix}, which {element['path']} does not allow "
                            f"({', '.join(_codes(element))})")

    def adopt_profile(self, element: dict, canonical: str, where: str) -> None:
        """An element typed with a profile (a SimpleQuantity, an extension slice) takes that profile's root
        invariants, and an extension its definition's documentation and modifier flag too (the generic
        extension element says nothing of what the extension means); the cardinality stays the base's and
        the differential's."""
        profile = self.generator.tree(canonical, where)
        root = profile.root.element
        for key in FROM_PROFILE if _is_extension(element["path"]) else ():
            if key in root:
                element[key] = copy.deepcopy(root[key])
        keys = {c.get("key") for c in element.get("constraint", [])}
        for constraint in root.get("constraint", []):
            if constraint.get("key") not in keys:
                element.setdefault("constraint", []).append({**copy.deepcopy(constraint), "source":
                                                             constraint.get("source", profile.url)})

    def cardinality(self, element: dict, source: dict, where: str, new_slice: bool) -> None:
        if "min" in source:
            if source["min"] < element.get("min", 0) and not new_slice:
                raise SnapshotError(f"{where}: min {source['min']} is below the base's min {element.get('min', 0)} "
                                    f"of {element['path']}")
            element["min"] = source["min"]
        if "max" in source:
            if _wider(source["max"], element.get("max")):
                raise SnapshotError(f"{where}: max {source['max']} widens the base's max {element['max']} "
                                    f"of {element['path']}")
            element["max"] = source["max"]
        if element.get("max", "*") != "*" and element.get("min", 0) > int(element["max"]):
            raise SnapshotError(f"{where}: min {element['min']} is above max {element['max']} of {element['path']}")

    def narrow_types(self, element: dict, types: list[dict], where: str) -> None:
        """The profile's types are a subset of the base's, matched by code; a Resource element takes any
        resource type. Their profile and targetProfile replace the base's."""
        allowed = set(_codes(element))
        for type_ref in types if allowed else ():  # a contentReference has no type to narrow
            code = _type_code(type_ref)
            if code in allowed or (allowed & {"Resource", "DomainResource"} and code in resource_types()):
                continue
            raise SnapshotError(f"{where}: type {code} is not one of the base's types of {element['path']} "
                                f"({', '.join(sorted(allowed)) or 'none'})")
        element["type"] = copy.deepcopy(types)
        binding = element.get("binding")
        if binding and not BINDABLE & set(_codes(element)):
            del element["binding"]

    def bind(self, element: dict, binding: dict, where: str) -> None:
        base = element.get("binding") or {}
        if base.get("strength") == "required" and binding.get("strength", "required") != "required":
            raise SnapshotError(f"{where}: binding strength {binding.get('strength')} weakens the base's required "
                                f"binding of {element['path']}")
        element["binding"] = copy.deepcopy(binding)

    def slicing(self, base: dict | None, stated: dict, where: str) -> dict:
        """A profile may tighten a base's slicing (order it, close it), not change what tells slices apart
        (profiling.html#slicing)."""
        if not base:
            return copy.deepcopy(stated)
        discriminators = [(d.get("type"), d.get("path")) for d in stated.get("discriminator", [])]
        if discriminators and discriminators != [(d.get("type"), d.get("path")) for d in base.get("discriminator", [])]:
            raise SnapshotError(f"{where}: slicing discriminator {discriminators} differs from the base's")
        if base.get("ordered") and stated.get("ordered") is False:
            raise SnapshotError(f"{where}: the base's slicing is ordered")
        if RULES.get(stated.get("rules", "open"), 0) < RULES.get(base.get("rules", "open"), 0):
            raise SnapshotError(f"{where}: slicing rules {stated.get('rules')} loosen the base's {base.get('rules')}")
        merged = copy.deepcopy(base)
        merged.update({k: copy.deepcopy(v) for k, v in stated.items() if k != "discriminator"})
        return merged

    def add_constraints(self, element: dict, constraints: list[dict], where: str) -> None:
        """Invariants add up (profiling.html#constraints); a key the base has must keep its expression."""
        existing = {c.get("key"): c for c in element.get("constraint", [])}
        for constraint in constraints:
            known = existing.get(constraint.get("key"))
            if known is not None:
                if known.get("expression") != constraint.get("expression"):
                    raise SnapshotError(f"{where}: constraint {constraint.get('key')} differs from the base's")
                continue
            added = copy.deepcopy(constraint)
            added.setdefault("source", self.url)
            element.setdefault("constraint", []).append(added)
