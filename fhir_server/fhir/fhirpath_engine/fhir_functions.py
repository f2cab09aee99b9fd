"""The functions FHIR adds to FHIRPath (R4 fhirpath.html#functions): `extension()`, `hasValue()`, `getValue()`,
`resolve()`, `memberOf()`, `conformsTo()`, `htmlChecks()`. Those FHIR defines but this engine does not evaluate
are refused at compile time (`UNSUPPORTED`)."""

from __future__ import annotations

import html.entities
import re
import xml.etree.ElementTree as ElementTree

from . import parser as ast
from .errors import FhirPathError
from .functions import Env, Expr, Run, collection, function
from .model import Node, navigate, resource_node, system_value, type_named, type_test
from .operators import singleton

UNSUPPORTED = {
    "subsumes": "needs a terminology server",
    "subsumedBy": "needs a terminology server",
    "elementDefinition": "needs the element definitions of profiles",
    "slice": "needs the slicing of profiles",
    "checkModifiers": "needs the modifier extensions of profiles",
}


@function("extension", 1)
def _extension(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    url_of = args[0]

    def run(input: list, this: list, env: Env) -> list:
        url = singleton(url_of(this, env), "extension()")
        if url is None:
            return []
        return [e for e in navigate(input, "extension")
                if type(e) is Node and isinstance(e.value, dict) and e.value.get("url") == url]
    return run


@collection("hasValue")
def _has_value(input: list) -> list:
    """A single primitive with a value, not only extensions (`given: [null]` with `_given: [{…}]` has none)."""
    if len(input) != 1:
        return [False]
    item = input[0]
    if type(item) is Node:
        return [item.type.primitive and item.value is not None]
    return [True]


@collection("getValue")
def _get_value(input: list) -> list:
    if len(input) != 1:
        return []
    item = input[0]
    if type(item) is Node and not item.type.primitive:
        return []
    value = system_value(item)
    return [] if value is None else [value]


_RELATIVE = re.compile(r"([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?")


def _reference_text(item: object) -> str | None:
    value = item.value if type(item) is Node else item
    if isinstance(value, dict):
        value = value.get("reference")
    return value if isinstance(value, str) else None


def resolve_reference(reference: str, context: object) -> dict | None:
    """The resource a reference names: the caller's resolver first, then a contained resource (`#id`, or `#`
    for the resource itself) of %resource, then an entry of the Bundle that is %rootResource
    (bundle.html#references)."""
    resolver = getattr(context, "resolve", None)
    if resolver is not None:
        found = resolver(reference)
        if found is not None:
            return found
    resource = getattr(context, "resource", None)
    if reference.startswith("#"):
        if not isinstance(resource, dict):
            return None
        if reference == "#":
            return resource
        return next((c for c in resource.get("contained") or () if c.get("id") == reference[1:]), None)
    root = getattr(context, "root_resource", None)
    if not isinstance(root, dict) or root.get("resourceType") != "Bundle":
        return None
    entries = [e for e in root.get("entry") or () if isinstance(e, dict)]
    for entry in entries:
        if entry.get("fullUrl") == reference:
            return entry.get("resource")
    relative = _RELATIVE.fullmatch(reference)
    if relative is None:
        return None
    kind, id_ = relative.groups()
    # A relative reference is read against the base of the referring entry's fullUrl, when it has one.
    base = next((e.get("fullUrl", "") for e in entries if e.get("resource") is resource), "")
    tail = f"{resource.get('resourceType')}/{resource.get('id')}" if isinstance(resource, dict) else ""
    base = base[:-len(tail)] if tail and base.endswith(tail) and "://" in base else ""
    for entry in entries:
        target = entry.get("resource")
        if isinstance(target, dict) and target.get("resourceType") == kind and target.get("id") == id_:
            if not base or entry.get("fullUrl", "") in ("", base + f"{kind}/{id_}"):
                return target
    return None


@function("resolve")
def _resolve(_args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    def run(input: list, this: list, env: Env) -> list:
        out = []
        for item in input:
            reference = _reference_text(item)
            found = resolve_reference(reference, env.context) if reference else None
            if found is not None:
                out.append(resource_node(found))
        return out
    return run


@function("memberOf", 1)
def _member_of(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    """Whether a code, Coding or CodeableConcept is in a ValueSet, as the caller's `member_of` says; empty
    when it cannot tell."""
    def run(input: list, this: list, env: Env) -> list:
        url = singleton(args[0](this, env), "memberOf()")
        checker = getattr(env.context, "member_of", None)
        if not input or url is None or checker is None:
            return []
        if len(input) > 1:
            raise FhirPathError(f"memberOf() expects a single item, got {len(input)}")
        item = input[0]
        answer = checker(item.value if type(item) is Node else item, url)
        return [] if answer is None else [bool(answer)]
    return run


_BASE_DEFINITION = "http://hl7.org/fhir/StructureDefinition/"


@function("conformsTo", 1)
def _conforms_to(args: list[Expr], _nodes: tuple[ast.Node, ...]) -> Run:
    """A base type's StructureDefinition is checked here by type; any other profile by the caller's
    `conforms_to`. A profile nobody can check is an error (fhirpath.html#functions)."""
    def run(input: list, this: list, env: Env) -> list:
        url = singleton(args[0](this, env), "conformsTo()")
        if not input or url is None:
            return []
        if len(input) > 1:
            raise FhirPathError(f"conformsTo() expects a single item, got {len(input)}")
        item = input[0]
        name = url[len(_BASE_DEFINITION):] if url.startswith(_BASE_DEFINITION) else None
        if name is not None and type_named(name) is not None:
            return [type_test("FHIR", name)(item)]
        checker = getattr(env.context, "conforms_to", None)
        if checker is None:
            raise FhirPathError(f"conformsTo(): no way to check conformance to {url}")
        answer = checker(item.value if type(item) is Node else item, url)
        return [] if answer is None else [bool(answer)]
    return run


_XHTML = "{http://www.w3.org/1999/xhtml}"
# Elements and attributes the narrative must not have (narrative.html#xhtml): active content and forms.
_FORBIDDEN = frozenset({
    "script", "object", "applet", "embed", "iframe", "frame", "frameset", "form", "input", "button", "select",
    "textarea", "html", "head", "body", "link", "meta", "base", "noscript", "style",
})
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _numeric_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _XML_ENTITIES or name not in html.entities.name2codepoint:
        return match.group()
    return f"&#{html.entities.name2codepoint[name]};"


def narrative_is_safe(text: str) -> bool:
    """txt-1: the div is well-formed XHTML rooted in `<div xmlns="http://www.w3.org/1999/xhtml">`, with no
    scripts, forms, frames or event attributes; HTML's named entities (`&nbsp;`) are allowed."""
    root = _narrative(text)
    if root is None or root.tag != f"{_XHTML}div":
        return False
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.tag.startswith(_XHTML):
            return False
        if element.tag[len(_XHTML):] in _FORBIDDEN:
            return False
        for name, value in element.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or value.strip().lower().startswith("javascript:"):
                return False
    return True


def narrative_has_content(text: str) -> bool:
    """txt-2: the narrative has some non-whitespace content: text, or an image."""
    root = _narrative(text)
    return root is not None and (bool("".join(root.itertext()).strip()) or root.find(f".//{_XHTML}img") is not None)


def html_checks(text: str) -> bool:
    """htmlChecks(), which R4 gives both txt-1 and txt-2 as their expression: both rules."""
    return narrative_is_safe(text) and narrative_has_content(text)


def _narrative(text: str) -> ElementTree.Element | None:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None  # no DTD in a narrative, and none to expand
    try:
        return ElementTree.fromstring(_ENTITY.sub(_numeric_entity, text))
    except ElementTree.ParseError:
        return None


@collection("htmlChecks")
def _html_checks(input: list) -> list:
    text = singleton(input, "htmlChecks()")
    if text is None:
        return []
    return [isinstance(text, str) and html_checks(text)]
