"""Which slice an item of a sliced element belongs to (profiling.html#slicing, #discriminator).

Each discriminator names a path from the item and a way to compare: `value` and `pattern` compare with
the fixed or pattern value (or required binding) the slice gives the element at that path, `exists` with
whether the slice requires or forbids it, `type` with the slice's type there, and `profile` with whether
the value meets the slice's profile.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fhir_server.fhir.validation.elements import Discriminator, Element
from fhir_server.fhir.validation.values import matches_pattern

_FUNCTION = re.compile(r"^(?P<name>[a-zA-Z]+)\((?P<argument>.*)\)$")


def path_steps(path: str) -> list[str]:
    """A discriminator path's steps: `extension('http://…').value` -> ["extension('http://…')", "value"]."""
    steps, depth, start = [], 0, 0
    for i, char in enumerate(path):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "." and depth == 0:
            steps.append(path[start:i])
            start = i + 1
    steps.append(path[start:])
    return [s for s in steps if s not in ("", "$this")]


def select(value: object, path: str, resolve: Callable[[str], dict | None]) -> list[object]:
    """The values at a discriminator `path` from an item (a FHIRPath subset: names, `extension(url)`,
    `ofType(T)`, `resolve()`)."""
    values = [value]
    for step in path_steps(path):
        found: list[object] = []
        call = _FUNCTION.match(step)
        for item in values:
            if not isinstance(item, dict):
                continue
            if call and call["name"] == "extension":
                url = call["argument"].strip("'\"")
                found += [e for e in item.get("extension", []) if isinstance(e, dict) and e.get("url") == url]
            elif call and call["name"] == "resolve":
                target = resolve(item["reference"]) if isinstance(item.get("reference"), str) else None
                found += [target] if target is not None else []
            elif call and call["name"] == "ofType":
                found.append(item)
            elif step in item:
                child = item[step]
                found += child if isinstance(child, list) else [child]
            else:  # a choice element named without its type (`value` for `valueQuantity`)
                found += [v for k, v in item.items() if k.startswith(step) and k[len(step):len(step) + 1].isupper()]
        values = found
    return values


def expected_at(element: Element, path: str, children_of: Callable[[Element], dict[str, Element]]
                ) -> list[Element]:
    """The element definitions a slice gives at `path` below it: the element itself first, then those of
    the slices cut from the elements on the way (the R4 bp profile fixes `code.coding.code` on the
    re-slice `code.coding:SBPCode` of its slice `component:SystolicBP`)."""
    elements = [element]
    for step in path_steps(path):
        call = _FUNCTION.match(step)
        if call and call["name"] != "extension":
            continue  # ofType()/resolve() keep the element; the type or profile decides below
        found: list[Element] = []
        for element in elements:
            children = children_of(element)
            if call:
                url = call["argument"].strip("'\"")
                extension = children.get("extension")
                child = next((s for s in (extension.slices if extension else [])
                              if any(url in t.profiles for t in s.types)), None)
            else:
                child = children.get(step) or children.get(step + "[x]")
            if child is not None:
                found += [child, *child.slices]
        elements = found
    return elements


def matches(discriminator: Discriminator, item: object, item_type: str | None, slice_element: Element,
            children_of: Callable[[Element], dict[str, Element]], resolve: Callable[[str], dict | None],
            in_value_set: Callable[[str, object], bool | None], conforms: Callable[[object, str], bool]) -> bool:
    """Whether `item` meets one discriminator of a slice."""
    candidates = expected_at(slice_element, discriminator.path, children_of)
    if not candidates:
        return False
    expected = candidates[0]
    values = select(item, discriminator.path, resolve)
    kind = discriminator.type
    if kind == "exists":
        return bool(values) if expected.min > 0 else not values if expected.max == 0 else True
    if kind == "type":
        codes = expected.type_codes()
        if discriminator.path in ("$this", "") and item_type is not None:
            return item_type in codes
        return any(_json_type(v) in codes for v in values)
    if kind == "profile":
        # Through resolve() the profile is the reference's target profile (profiling.html#discriminator).
        through_reference = discriminator.path.endswith("resolve()")
        profiles = [p for t in expected.types for p in (t.target_profiles if through_reference else t.profiles)]
        return bool(profiles) and any(conforms(v, p) for v in values for p in profiles)
    # value / pattern: the fixed or pattern values given on the way (any re-slice's will do), else a binding
    wanted = [e for e in candidates if e.fixed is not None or e.pattern is not None]
    if wanted:
        return any(v == e.fixed[1] if e.fixed is not None else matches_pattern(v, e.pattern[1])
                   for e in wanted for v in values)
    for element in candidates:
        if element.binding is not None and element.binding[0] == "required":
            return any(in_value_set(element.binding[1], v) for v in values)
    return False


def _json_type(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("resourceType")
    return None
