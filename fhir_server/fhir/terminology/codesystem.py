"""A CodeSystem's concepts as a lookup structure (codesystem.html): codes, displays, designations,
properties and the subsumption hierarchy, for `$lookup`, `$subsumes`, `$validate-code` and ValueSet
expansion.

The hierarchy is the nesting of `concept` and the `parent`/`child` properties (codesystem.html#hierarchy);
both are read as is-a, which is what `hierarchyMeaning` says for the systems this server is given
(HL7's terminology, SNOMED-like fixtures), and what the `is-a` filters need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

# Concept properties that say a concept is no longer active (codesystem-concept-properties.html).
_INACTIVE_STATUSES = frozenset({"retired", "inactive"})
_VALUE_KEYS = ("valueCode", "valueCoding", "valueString", "valueInteger", "valueBoolean", "valueDateTime",
               "valueDecimal")


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept: `properties` holds (property code, value) pairs, a Coding's value as its code, and
    `typed` the same properties as (code, valueX key, value) for answers that must keep the type."""

    code: str
    display: str | None
    definition: str | None
    designations: tuple[dict, ...]
    properties: tuple[tuple[str, object], ...]
    typed: tuple[tuple[str, str, object], ...] = ()

    @property
    def abstract(self) -> bool:
        """`notSelectable` (codesystem-concept-properties.html): a grouper, not for use in data."""
        return any(p == "notSelectable" and v is True for p, v in self.properties)

    @property
    def inactive(self) -> bool:
        return any((p == "inactive" and v is True) or (p == "status" and v in _INACTIVE_STATUSES)
                   for p, v in self.properties)

    def values(self, property_code: str) -> list[object]:
        return [v for p, v in self.properties if p == property_code]


class CodeSystemIndex:
    """The concepts of one CodeSystem resource, by code, in document order."""

    def __init__(self, resource: dict) -> None:
        self.url: str | None = resource.get("url")
        self.version: str | None = resource.get("version")
        self.name: str | None = resource.get("title") or resource.get("name")
        self.content: str = resource.get("content") or "complete"
        # Absent, whether case matters is not said, and codes are accepted in any case (codesystem.html).
        self.case_sensitive: bool = resource.get("caseSensitive") is True
        self.property_codes = frozenset(p.get("code") for p in resource.get("property") or [] if p.get("code"))
        self.concepts: dict[str, Concept] = {}
        self._parents: dict[str, set[str]] = {}
        self._children: dict[str, list[str]] = {}
        self._folded: dict[str, str] = {}
        self._add(resource.get("concept") or [], None)
        for concept in self.concepts.values():  # the properties, once every concept is known
            for value in concept.values("parent"):
                self._link(str(value), concept.code)
            for value in concept.values("child"):
                self._link(concept.code, str(value))

    @property
    def holds_codes(self) -> bool:
        """Whether the resource lists the system's codes (content complete or fragment), not only names it
        (not-present) or shows a few (example)."""
        return self.content in ("complete", "fragment") and bool(self.concepts)

    @property
    def complete(self) -> bool:
        """Whether a code it does not list is not a code of the system (rather than not known here)."""
        return self.content == "complete"

    def get(self, code: str) -> Concept | None:
        """The concept of `code`; case-insensitively when the system says it is not case-sensitive."""
        found = self.concepts.get(code)
        if found is None and not self.case_sensitive:
            key = self._folded.get(code.casefold())
            found = self.concepts.get(key) if key is not None else None
        return found

    def __iter__(self) -> Iterator[Concept]:
        return iter(self.concepts.values())

    def __len__(self) -> int:
        return len(self.concepts)

    def parents(self, code: str) -> list[str]:
        return sorted(self._parents.get(code, ()))

    def children(self, code: str) -> list[str]:
        return list(self._children.get(code, ()))

    def descendants(self, code: str) -> set[str]:
        """Every concept below `code`, however deep, not `code` itself."""
        found: set[str] = set()
        frontier = list(self._children.get(code, ()))
        while frontier:
            child = frontier.pop()
            if child not in found:
                found.add(child)
                frontier.extend(self._children.get(child, ()))
        found.discard(code)  # a cycle in bad content must not make a code its own descendant
        return found

    def ancestors(self, code: str) -> set[str]:
        return self._ancestors.get(code, frozenset())

    def subsumes(self, code_a: str, code_b: str) -> str:
        """$subsumes (codesystem-operation-subsumes.html): how A relates to B."""
        if code_a == code_b:
            return "equivalent"
        if code_a in self.ancestors(code_b):
            return "subsumes"
        if code_b in self.ancestors(code_a):
            return "subsumed-by"
        return "not-subsumed"

    @cached_property
    def _ancestors(self) -> dict[str, frozenset[str]]:
        """Every concept's ancestors, computed once for the whole system: `is-a` filters ask for many."""
        memo: dict[str, frozenset[str]] = {}

        def walk(code: str, path: frozenset[str]) -> frozenset[str]:
            if code in memo:
                return memo[code]
            found: set[str] = set()
            for parent in self._parents.get(code, ()):
                if parent not in path:  # a cycle in bad content stops here
                    found.add(parent)
                    found |= walk(parent, path | {parent})
            memo[code] = frozenset(found - {code})
            return memo[code]

        for code in self.concepts:
            walk(code, frozenset({code}))
        return memo

    def _add(self, concepts: list[dict], parent: str | None) -> None:
        for raw in concepts:
            code = raw.get("code") if isinstance(raw, dict) else None
            if not isinstance(code, str) or not code:
                continue
            self.concepts[code] = Concept(
                code, raw.get("display"), raw.get("definition"), tuple(raw.get("designation") or ()),
                tuple((p["code"], _value(p)) for p in raw.get("property") or [] if p.get("code")),
                tuple((p["code"], key, p[key]) for p in raw.get("property") or [] if p.get("code")
                      for key in _VALUE_KEYS if key in p))
            self._folded.setdefault(code.casefold(), code)
            if parent is not None:
                self._link(parent, code)
            self._add(raw.get("concept") or [], code)

    def _link(self, parent: str, child: str) -> None:
        if parent == child:
            return
        self._parents.setdefault(child, set()).add(parent)
        siblings = self._children.setdefault(parent, [])
        if child not in siblings:
            siblings.append(child)


def _value(prop: dict) -> object:
    for key in _VALUE_KEYS:
        if key in prop:
            value = prop[key]
            return value.get("code") if key == "valueCoding" and isinstance(value, dict) else value
    return None
