"""Terminology bindings (terminologies.html#strength) and codes of known CodeSystems.

A ValueSet is expanded once per validator and kept as sets, so each coded element costs a set lookup.
Where a ValueSet draws on a system this server does not hold (SNOMED CT, LOINC, RxNorm unless loaded),
membership is unknown, never "no": such codes are reported as information, not as errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex
from fhir_server.fhir.terminology.valueset import Resolver, contains, expand

_CACHED_CHECKS = 10_000


@dataclass
class _Members:
    """A ValueSet as sets: its (system, code) pairs, its codes, and systems it includes whole but we lack."""

    value_set: dict
    pairs: frozenset[tuple[str, str]] | None = None  # None: not enumerable; ask `contains` code by code
    codes: frozenset[str] = frozenset()
    open_systems: frozenset[str] = frozenset()
    checked: dict[tuple[str | None, str], bool | None] = field(default_factory=dict)


class Bindings:
    """Membership of codes in ValueSets, and of codes in CodeSystems, over a terminology `Resolver`."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._value_sets: dict[str, _Members | None] = {}
        self._code_systems: dict[str, CodeSystemIndex | None] = {}

    def known(self, value_set: str) -> bool:
        return self._members(value_set) is not None

    def member(self, value_set: str, system: str | None, code: str) -> bool | None:
        """Whether `code` (in `system`; any system when None, for a `code` element) is in the ValueSet:
        None when that cannot be told here."""
        members = self._members(value_set)
        if members is None:
            return None
        if members.pairs is not None:
            if (system, code) in members.pairs or (system is None and code in members.codes):
                return True
            return None if system in members.open_systems or (system is None and members.open_systems) else False
        key = (system, code)
        if key not in members.checked:
            if len(members.checked) >= _CACHED_CHECKS:
                members.checked.clear()
            members.checked[key] = self._contains(members.value_set, system, code)
        return members.checked[key]

    def code_system(self, system: str) -> CodeSystemIndex | None:
        """A CodeSystem held here with all its codes, else None."""
        if system not in self._code_systems:
            index = self.resolver.code_system(system, None)
            self._code_systems[system] = index if index is not None and index.complete else None
        return self._code_systems[system]

    def _contains(self, value_set: dict, system: str | None, code: str) -> bool | None:
        if system is None:
            return None
        try:
            return contains(value_set, self.resolver, system, code).result
        except FhirError:
            return None

    def _members(self, canonical: str) -> _Members | None:
        if canonical not in self._value_sets:
            url, _, version = canonical.partition("|")
            value_set = self.resolver.value_set(url, version or None)
            self._value_sets[canonical] = _enumerate(value_set, self.resolver) if value_set is not None else None
        return self._value_sets[canonical]


def _enumerate(value_set: dict, resolver: Resolver) -> _Members:
    try:
        expansion = expand(value_set, resolver, open_systems=True)
    except FhirError:  # a filter over a system we lack, or too large: fall back to code-by-code checks
        return _Members(value_set)
    pairs = frozenset((m.system, m.code) for m in expansion.members)
    return _Members(value_set, pairs, frozenset(code for _, code in pairs), frozenset(expansion.open_systems))
