"""FHIRPath for search indexing (fhirpath.html, searchparameter.html#expression), compiled once per expression.

SearchParameter expressions are nearly all of a few shapes: a path (`Patient.name.given`), a choice narrowed
by type (`(Observation.value as Quantity)`, `.as(Period)`, `.ofType(Reference)`), a filter on a reference's
target (`.where(resolve() is Patient)`) or on a child's value (`.where(system='phone')`), an extension by
url (`.extension('http://…')`), an index (`[0]`), and `|` unions of these. Those are compiled here into
plain Python steps over the JSON, which also know each value's FHIR type from the element definitions.
Anything else goes to fhirpathpy (slower, and untyped).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from fhirpathpy import compile as fhirpathpy_compile
from fhirpathpy.models import models

from fhir_server.fhir.definitions import element_types, resource_types

# Types that FHIRPath's `is`/`as` treat as kinds of Quantity (datatypes.html#Quantity).
_QUANTITY_KINDS = frozenset({"Quantity", "Age", "Distance", "Duration", "Count", "SimpleQuantity", "MoneyQuantity"})
_REFERENCE_TARGET = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


@dataclass(frozen=True, slots=True)
class Node:
    """One value an expression selects: its JSON and its FHIR type (None when fhirpathpy chose it)."""

    value: object
    type: str | None
    # Where the value's children are described: the type whose element map holds them, and the path in it.
    # For a primitive: the element it is the value of.
    owner: str | None = None
    path: str = ""


Evaluator = Callable[[list[Node]], list[Node]]


def resource_node(resource: dict) -> Node:
    resource_type = resource.get("resourceType")
    return Node(resource, resource_type, resource_type, "")


def _typed(value: object, type_code: str, owner: str, path: str) -> Node:
    """A node for a value of `type_code` found at `owner`.`path`."""
    if type_code in ("BackboneElement", "Element"):
        return Node(value, type_code, owner, path)
    if type_code.startswith("#"):  # a content reference: the element is shaped like another in the same type
        return Node(value, "BackboneElement", owner, type_code[1:])
    if type_code == "Resource" and isinstance(value, dict):
        return Node(value, value.get("resourceType"), value.get("resourceType"), "")
    if type_code[:1].islower():  # a primitive: it remembers where it is, for its binding
        return Node(value, type_code, owner, path)
    return Node(value, type_code, type_code, "")


_Element = tuple[str, tuple[tuple[str, str], ...]]
_ELEMENTS: dict[tuple[str, str, str], _Element] = {}


def _element(owner: str, parent: str, name: str) -> _Element:
    """(path, ((JSON key, type code), …)) of a child element; a choice `x[x]` has a key per type."""
    key = (owner, parent, name)
    found = _ELEMENTS.get(key)
    if found is None:
        elements = element_types().get(owner, {})
        path = f"{parent}.{name}" if parent else name
        type_code = elements.get(path)
        if type_code is not None:
            found = (path, ((name, type_code),))
        else:
            choices = elements.get(path + "[x]")
            keys = tuple((name + c[0].upper() + c[1:], c) for c in choices.split("|")) if choices else ()
            found = (path, keys)
        _ELEMENTS[key] = found
    return found


def _children(node: Node, name: str) -> list[Node]:
    value = node.value
    if not isinstance(value, dict) or node.owner is None:
        return []
    path, keys = _element(node.owner, node.path, name)
    out: list[Node] = []
    for json_key, type_code in keys:
        found = value.get(json_key)
        if found is None:
            continue
        if isinstance(found, list):
            out.extend(_typed(item, type_code, node.owner, path) for item in found)
        else:
            out.append(_typed(found, type_code, node.owner, path))
    return out


def top_level_keys(expression: str, resource_type: str) -> frozenset[str] | None:
    """The resource's JSON keys the expression can select from, or None if that is not known.

    Indexing skips an expression when the resource has none of them: most parameters of a type are about
    elements a given resource does not have.
    """
    keys: set[str] = set()
    for branch in split_union(expression):
        if _fast_branch(branch, resource_type) is None:
            return None  # e.g. `x.exists() and …`: an absent element can still give a value
        text = branch.strip().lstrip("(")
        head = _HEAD.match(text)
        if head is None or head["index"] is not None:
            return None
        if head["name"] in resource_types() and head["name"] != resource_type:
            continue  # a branch about another type selects nothing here
        if head["name"] not in (resource_type, "Resource", "DomainResource"):
            return None
        step = _STEP.match(text, head.end())
        if step is None or not step["name"]:
            return None
        keys.update(k for k, _ in _element(resource_type, "", step["name"])[1])
    return frozenset(keys)


def _is_type(node: Node, type_name: str) -> bool:
    if node.type is None:
        return False
    if node.type == type_name or node.type.lower() == type_name.lower():
        return True
    return type_name == "Quantity" and node.type in _QUANTITY_KINDS


def reference_target_type(reference: object) -> str | None:
    """The resource type a literal reference names (`Patient/1`, `http://x/fhir/Patient/1/_history/2`)."""
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    match = _REFERENCE_TARGET.search(reference["reference"])
    return match.group(1) if match else None


# -- the compiler -------------------------------------------------------------------------------------------
_STEP = re.compile(
    r"""\.(?:
        (?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?(?![A-Za-z0-9_(])
      | where\(resolve\(\)\s+is\s+(?P<resolve>[A-Za-z]+)\)
      | where\((?P<child>[A-Za-z]+)\s*=\s*'(?P<literal>[^']*)'\)
      | extension\('(?P<extension>[^']+)'\)
      | (?:as|ofType)\((?P<as>[A-Za-z]+)\)
      | (?P<first>first)\(\)
    )""",
    re.VERBOSE,
)
_HEAD = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?")
_INFIX_AS = re.compile(r"^(?P<inner>.+?)\s+as\s+(?P<type>[A-Za-z]+)$")


def split_union(expression: str) -> list[str]:
    """Top-level `|` branches of an expression."""
    branches, depth, current, quoted = [], 0, [], False
    for ch in expression:
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == "|":
            branches.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    branches.append("".join(current).strip())
    return [b for b in branches if b]


def _steps(text: str) -> list[Evaluator] | None:
    """Compile `.step.step…` into evaluators, or None when a step is not one of the fast shapes."""
    steps: list[Evaluator] = []
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            return None
        pos = m.end()
        if m["name"]:
            steps.append(_child_step(m["name"]))
            if m["index"] is not None:
                steps.append(_index_step(int(m["index"])))
        elif m["resolve"]:
            target = m["resolve"]
            steps.append(lambda nodes, t=target: [n for n in nodes if reference_target_type(n.value) == t])
        elif m["child"]:
            child, literal = m["child"], m["literal"]
            steps.append(lambda nodes, c=child, v=literal: [
                n for n in nodes if isinstance(n.value, dict) and n.value.get(c) == v])
        elif m["extension"]:
            steps.append(_child_step("extension"))
            steps.append(lambda nodes, url=m["extension"]: [
                n for n in nodes if isinstance(n.value, dict) and n.value.get("url") == url])
        elif m["as"]:
            steps.append(_as_step(m["as"]))
        else:
            steps.append(_index_step(0))
    return steps


def _child_step(name: str) -> Evaluator:
    return lambda nodes: [child for node in nodes for child in _children(node, name)]


def _index_step(index: int) -> Evaluator:
    return lambda nodes: nodes[index:index + 1]


def _as_step(type_name: str) -> Evaluator:
    return lambda nodes: [n for n in nodes if _is_type(n, type_name)]


def _fast_branch(branch: str, context: str) -> Evaluator | None:
    """Compile one union branch whose input is a node of type `context`, or None if it is not a fast shape."""
    text = branch.strip()
    as_type = None
    if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1].strip()
    infix = _INFIX_AS.match(text)
    if infix and "(" not in infix["inner"]:
        text, as_type = infix["inner"], infix["type"]
    elif text.startswith("(") and ")" in text:  # `(X as T).rest`
        close = text.index(")")
        inner = _INFIX_AS.match(text[1:close].strip())
        if inner is None or "(" in inner["inner"]:
            return None
        first = _fast_branch(inner["inner"], context)
        rest = _steps(text[close + 1:])
        if first is None or rest is None:
            return None
        return _chain([first, _as_step(inner["type"]), *rest])
    head = _HEAD.match(text)
    if head is None:
        return None
    steps: list[Evaluator] = []
    if head["name"] in (context, "Resource", "DomainResource") or (
            head["name"] in resource_types() and context in resource_types()):
        # The expression's root names the resource type; a branch for another type selects nothing.
        if head["name"] not in (context, "Resource", "DomainResource"):
            return lambda nodes: []
        if head["index"] is not None:
            return None
    else:  # a relative path (composite components are relative to their base element)
        steps.append(_child_step(head["name"]))
        if head["index"] is not None:
            steps.append(_index_step(int(head["index"])))
    rest = _steps(text[head.end():])
    if rest is None:
        return None
    steps.extend(rest)
    if as_type is not None:
        steps.append(_as_step(as_type))
    return _chain(steps)


def _chain(steps: list[Evaluator]) -> Evaluator:
    def run(nodes: list[Node]) -> list[Node]:
        for step in steps:
            if not nodes:
                return nodes
            nodes = step(nodes)
        return nodes
    return run


def _fallback(branch: str) -> Evaluator:
    """fhirpathpy for shapes the fast path does not know; its values come back without FHIR types."""
    compiled = fhirpathpy_compile(branch, models["r4"])

    def run(nodes: list[Node]) -> list[Node]:
        out: list[Node] = []
        for node in nodes:
            try:
                values = compiled(node.value)
            except Exception:  # noqa: BLE001 - fhirpathpy raises bare Exceptions; odd data must not fail a write
                continue
            out.extend(Node(value, None) for value in values)
        return out
    return run


@cache
def compile_expression(expression: str, context: str) -> Evaluator:
    """An expression, compiled for input nodes of type `context` (a resource type, or an element type)."""
    branches = [(_fast_branch(b, context) or _fallback(b)) for b in split_union(expression)]
    if len(branches) == 1:
        return branches[0]

    def run(nodes: list[Node]) -> list[Node]:
        return [n for branch in branches for n in branch(nodes)]
    return run


def is_fast(expression: str, context: str) -> bool:
    """Whether every branch of the expression compiles to the fast path (for tests and the docs)."""
    return all(_fast_branch(b, context) is not None for b in split_union(expression))


def evaluate(resource: dict, expression: str) -> list[Node]:
    """The nodes an expression selects in a resource."""
    return compile_expression(expression, resource.get("resourceType", ""))([resource_node(resource)])
