"""ValueSet expansion and membership (valueset.html#compose, valueset-operation-expand.html).

`compose.include` rules are united and `compose.exclude` rules subtracted. Within one rule, the codes of
its `system` (all of them, a `concept` list, or those passing every `filter`) are intersected with each
ValueSet it names in `valueSet`; a rule with no system is the intersection of its ValueSets. Expansion
enumerates, so it needs the CodeSystems it enumerates to be held with their codes; membership
(`contains`) asks about one code, and answers "unknown" where a system it needs is not held, rather
than "no".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from fhir_server.fhir.errors import error
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex, Concept

# An expansion holds at most this many codes in memory; `count`/`offset` page through it.
MAX_EXPANSION = 100_000
_HIERARCHY_OPS = frozenset({"is-a", "descendent-of", "is-not-a", "generalizes"})
_OPS = _HIERARCHY_OPS | {"=", "in", "not-in", "regex", "exists"}


class Resolver(Protocol):
    """Finds conformance resources by canonical URL (and version, when given)."""

    def code_system(self, url: str, version: str | None) -> CodeSystemIndex | None: ...

    def value_set(self, url: str, version: str | None) -> dict | None: ...


@dataclass(frozen=True, slots=True)
class Member:
    """One code of an expansion (ValueSet.expansion.contains)."""

    system: str
    code: str
    display: str | None = None
    version: str | None = None
    abstract: bool = False
    inactive: bool = False
    designations: tuple[dict, ...] = ()
    definition: str | None = None


@dataclass
class Expansion:
    members: list[Member]
    code_systems: list[str] = field(default_factory=list)  # "url|version" of each system enumerated
    value_sets: list[str] = field(default_factory=list)  # canonical URLs of nested ValueSets used
    # With `open_systems`: systems included whole that are not held here, so not listed in `members`.
    open_systems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    """Whether a code is in a ValueSet: True, False, or None when a system it needs is not held."""

    result: bool | None
    member: Member | None = None
    message: str = ""


Key = tuple[str, str]


def expand(value_set: dict, resolver: Resolver, *, active_only: bool = False, open_systems: bool = False
           ) -> Expansion:
    """Every code of `value_set`, in the order its rules give them, each once.

    With `open_systems`, a rule that includes the whole of a system not held here (and nothing else) is
    named in `Expansion.open_systems` instead of failing: search's `:in` can still match "any code of
    that system"; an expansion cannot list it.
    """
    return _Expander(resolver, active_only, open_systems).expand(value_set)


def contains(value_set: dict, resolver: Resolver, system: str, code: str) -> Verdict:
    """Whether (`system`, `code`) is a member of `value_set`, without enumerating it."""
    return _Expander(resolver, False, False).contains(value_set, system, code)


def text_matches(text: str) -> Callable[[Member], bool]:
    """$expand's `filter`: every word of `text` starts a word of the display, or `text` starts the code
    (case-insensitively). The spec leaves the matching to the server."""
    words = text.casefold().split()
    whole = text.strip().casefold()

    def match(member: Member) -> bool:
        display_words = re.split(r"[\s\-/,()]+", (member.display or "").casefold())
        return member.code.casefold().startswith(whole) or all(
            any(d.startswith(w) for d in display_words) for w in words)

    return match


class _Expander:
    def __init__(self, resolver: Resolver, active_only: bool, open_systems: bool) -> None:
        self.resolver = resolver
        self.active_only = active_only
        self.open_systems: dict[str, None] | None = {} if open_systems else None
        self.code_systems: dict[str, None] = {}
        self.value_sets: dict[str, None] = {}
        self.stack: list[str] = []

    # -- expansion ------------------------------------------------------------------------------------
    def expand(self, value_set: dict) -> Expansion:
        members = self._members(value_set)
        if self.active_only:
            members = {k: m for k, m in members.items() if not m.inactive}
        return Expansion(list(members.values()), list(self.code_systems), list(self.value_sets),
                         list(self.open_systems or ()))

    def _members(self, value_set: dict) -> dict[Key, Member]:
        compose = value_set.get("compose")
        if compose is None:
            if "expansion" in value_set:  # an expansion made elsewhere, kept with the ValueSet
                return {(m.system, m.code): m for m in _stored_expansion(value_set["expansion"].get("contains"))}
            raise error(422, "invalid", f"ValueSet {_name(value_set)} has neither compose nor expansion")
        members: dict[Key, Member] = {}
        for i, rule in enumerate(compose.get("include") or []):
            for key, member in self._rule_members(rule, f"ValueSet.compose.include[{i}]").items():
                members.setdefault(key, member)
                if len(members) > MAX_EXPANSION:
                    raise error(422, "too-costly", f"ValueSet {_name(value_set)} has more than {MAX_EXPANSION:,} "
                                                   "codes; it is not expanded here")
        for i, rule in enumerate(compose.get("exclude") or []):
            for key in self._closed(self._rule_members, rule, f"ValueSet.compose.exclude[{i}]"):
                members.pop(key, None)
        if compose.get("inactive") is False:
            members = {k: m for k, m in members.items() if not m.inactive}
        return members

    def _rule_members(self, rule: dict, where: str) -> dict[Key, Member]:
        system = rule.get("system")
        if len(rule.get("valueSet") or []) + (system is not None) > 1:  # an intersection needs listed codes
            return self._closed(self._intersection, rule, where)
        return self._intersection(rule, where)

    def _closed(self, step: Callable[[dict, str], dict[Key, Member]], rule: dict, where: str) -> dict[Key, Member]:
        """`step` with open systems refused: an exclusion or an intersection cannot work on unlisted codes."""
        saved, self.open_systems = self.open_systems, None
        try:
            return step(rule, where)
        finally:
            self.open_systems = saved

    def _intersection(self, rule: dict, where: str) -> dict[Key, Member]:
        nested = [self._nested_members(url, where) for url in rule.get("valueSet") or []]
        system = rule.get("system")
        if system is None:
            if not nested:
                raise error(422, "invalid", f"{where} names neither a system nor a valueSet", where)
            members = nested[0]
        else:
            members = self._system_members(rule, system, where)
        for other in nested:
            members = {k: m for k, m in members.items() if k in other}
        return members

    def _nested_members(self, canonical: str, where: str) -> dict[Key, Member]:
        url, _, version = canonical.partition("|")
        if url in self.stack:
            raise error(422, "processing", f"{where}: ValueSet {url} includes itself", where)
        nested = self.resolver.value_set(url, version or None)
        if nested is None:
            raise error(422, "not-found", f"{where}: the ValueSet {canonical} is not held on this server", where)
        self.value_sets[canonical] = None
        self.stack.append(url)
        try:
            return self._members(nested)
        finally:
            self.stack.pop()

    def _system_members(self, rule: dict, system: str, where: str) -> dict[Key, Member]:
        version = rule.get("version")
        cs = self.resolver.code_system(system, version)
        held = cs is not None and cs.holds_codes
        if cs is not None:
            self.code_systems[f"{system}|{cs.version}" if cs.version else system] = None
        listed = rule.get("concept") or []
        if listed:
            members: dict[Key, Member] = {}
            for i, raw in enumerate(listed):
                code = raw.get("code")
                if not isinstance(code, str) or not code:
                    continue
                concept = cs.get(code) if held and cs is not None else None
                if held and cs is not None and cs.content == "complete" and concept is None:
                    raise error(422, "code-invalid", f"{where}.concept[{i}]: {code!r} is not a code of {system}",
                                f"{where}.concept[{i}]")
                if concept is not None:
                    members[(system, concept.code)] = _member(system, cs, concept, raw.get("display"))
                else:  # a system we do not hold: the code as the ValueSet gives it
                    members[(system, code)] = Member(system, code, raw.get("display"), version)
            return members
        whole = not rule.get("filter") and not rule.get("valueSet")
        if (not held or cs is None) and whole and self.open_systems is not None:
            self.open_systems[system] = None
            return {}
        if not held or cs is None:
            state = "stored without its codes" if cs is not None else "not held on this server"
            raise error(422, "not-found", f"{where}: the CodeSystem {system} is {state}, so its codes cannot "
                                          "be listed", where)
        filters = [_check_filter(f, f"{where}.filter[{i}]") for i, f in enumerate(rule.get("filter") or [])]
        return {(system, c.code): _member(system, cs, c, None) for c in cs
                if all(_matches(cs, c, f) for f in filters)}

    # -- membership -----------------------------------------------------------------------------------
    def contains(self, value_set: dict, system: str, code: str) -> Verdict:
        compose = value_set.get("compose")
        if compose is None:
            if "expansion" not in value_set:
                raise error(422, "invalid", f"ValueSet {_name(value_set)} has neither compose nor expansion")
            for member in _stored_expansion(value_set["expansion"].get("contains")):
                if member.system == system and member.code == code:
                    return Verdict(True, member)
            return Verdict(False, message=f"{system}#{code} is not in the ValueSet {_name(value_set)}")
        verdicts = [self._rule_has(rule, system, code, f"ValueSet.compose.include[{i}]")
                    for i, rule in enumerate(compose.get("include") or [])]
        found = next((v for v in verdicts if v.result), None)
        unknown = next((v for v in verdicts if v.result is None), None)
        if found is None:
            if unknown is not None:
                return unknown
            why = next((v.message for v in verdicts if v.message), "")
            return Verdict(False, message=why or f"{system}#{code} is not in the ValueSet {_name(value_set)}")
        for i, rule in enumerate(compose.get("exclude") or []):
            excluded = self._rule_has(rule, system, code, f"ValueSet.compose.exclude[{i}]")
            if excluded.result:
                return Verdict(False, message=f"{system}#{code} is excluded from the ValueSet {_name(value_set)}")
            if excluded.result is None:
                return excluded
        if compose.get("inactive") is False and found.member is not None and found.member.inactive:
            return Verdict(False, found.member, f"{system}#{code} is inactive, and the ValueSet "
                                                f"{_name(value_set)} leaves inactive codes out")
        return found

    def _rule_has(self, rule: dict, system: str, code: str, where: str) -> Verdict:
        """One rule's answer: the conjunction of its system part and each ValueSet it names."""
        rule_system = rule.get("system")
        if rule_system is not None and rule_system != system:
            return Verdict(False)
        if rule_system is None and not rule.get("valueSet"):
            raise error(422, "invalid", f"{where} names neither a system nor a valueSet", where)
        verdicts = [self._system_has(rule, system, code, where)] if rule_system is not None else []
        verdicts += [self._nested_has(canonical, system, code, where) for canonical in rule.get("valueSet") or []]
        for wanted in (False, None):
            refused = next((v for v in verdicts if v.result is wanted), None)
            if refused is not None:
                return refused
        return next((v for v in verdicts if v.member is not None), verdicts[0])

    def _nested_has(self, canonical: str, system: str, code: str, where: str) -> Verdict:
        url, _, version = canonical.partition("|")
        if url in self.stack:
            raise error(422, "processing", f"{where}: ValueSet {url} includes itself", where)
        nested = self.resolver.value_set(url, version or None)
        if nested is None:
            return Verdict(None, message=f"the ValueSet {canonical} is not held on this server")
        self.stack.append(url)
        try:
            return self.contains(nested, system, code)
        finally:
            self.stack.pop()

    def _system_has(self, rule: dict, system: str, code: str, where: str) -> Verdict:
        cs = self.resolver.code_system(system, rule.get("version"))
        held = cs is not None and cs.holds_codes
        concept = cs.get(code) if held and cs is not None else None
        listed = rule.get("concept") or []
        if listed:
            if held and cs is not None and cs.complete and concept is None:
                return Verdict(False, message=f"{code!r} is not a code of {system}")
            folded = cs is not None and not cs.case_sensitive
            for raw in listed:
                given = raw.get("code")
                if given == code or (folded and isinstance(given, str) and given.casefold() == code.casefold()):
                    if concept is not None:
                        return Verdict(True, _member(system, cs, concept, raw.get("display")))
                    return Verdict(True, Member(system, code, raw.get("display"), rule.get("version")))
            return Verdict(False)
        if not held or cs is None:
            return Verdict(None, message=f"the CodeSystem {system} is not held on this server, so whether "
                                         f"{code!r} is one of its codes is not known here")
        if concept is None and not cs.complete:
            return Verdict(None, message=f"{code!r} is not among the codes of {system} held here (a fragment)")
        if concept is None:
            return Verdict(False, message=f"{code!r} is not a code of {system}")
        filters = [_check_filter(f, f"{where}.filter[{i}]") for i, f in enumerate(rule.get("filter") or [])]
        if all(_matches(cs, concept, f) for f in filters):
            return Verdict(True, _member(system, cs, concept, None))
        return Verdict(False)


def _member(system: str, cs: CodeSystemIndex | None, concept: Concept, display: str | None) -> Member:
    return Member(system, concept.code, display or concept.display, cs.version if cs else None, concept.abstract,
                  concept.inactive, concept.designations, concept.definition)


def _stored_expansion(contains: list[dict] | None) -> list[Member]:
    """The codes of an expansion's `contains`, nested entries flattened; entries without a code group."""
    found = []
    for item in contains or []:
        if item.get("system") and item.get("code"):
            found.append(Member(item["system"], item["code"], item.get("display"), item.get("version"),
                                item.get("abstract") is True, item.get("inactive") is True,
                                tuple(item.get("designation") or ())))
        found += _stored_expansion(item.get("contains"))
    return found


def _check_filter(raw: dict, where: str) -> tuple[str, str, str]:
    prop, op, value = raw.get("property"), raw.get("op"), raw.get("value")
    if not all(isinstance(x, str) and x for x in (prop, op, value)):
        raise error(422, "invalid", f"{where} needs property, op and value, as strings", where)
    if op not in _OPS:
        raise error(422, "not-supported", f"{where}: the filter operator {op!r} is not supported here", where)
    if op == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            raise error(422, "invalid", f"{where}: the regex {value!r} is not valid: {exc}", where) from None
    return prop, op, value


def _matches(cs: CodeSystemIndex, concept: Concept, f: tuple[str, str, str]) -> bool:
    """One filter (valueset-filter-operator): hierarchy operators on the concept, the rest on a property."""
    prop, op, value = f
    code = concept.code
    if op in _HIERARCHY_OPS:
        if op == "is-a":
            return code == value or value in cs.ancestors(code)
        if op == "descendent-of":
            return value in cs.ancestors(code)
        if op == "is-not-a":
            return not (code == value or value in cs.ancestors(code))
        return code == value or code in cs.ancestors(value)  # generalizes
    values = [_text(v) for v in _property(cs, concept, prop)]
    if op == "=":
        return value in values
    if op == "in":
        return bool(set(values) & {v.strip() for v in value.split(",")})
    if op == "not-in":
        return not set(values) & {v.strip() for v in value.split(",")}
    if op == "regex":
        return any(re.fullmatch(value, v) for v in values)
    return bool(values) == (value == "true")  # exists


def _property(cs: CodeSystemIndex, concept: Concept, prop: str) -> list[object]:
    if prop in ("code", "concept"):
        return [concept.code]
    if prop in ("parent", "child"):  # the hierarchy, nesting included, as $lookup reports it
        return cs.parents(concept.code) if prop == "parent" else cs.children(concept.code)
    if prop == "display":
        return [concept.display] if concept.display is not None else []
    if prop == "inactive" and not concept.values("inactive"):
        return [concept.inactive]
    return concept.values(prop)


def _text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _name(value_set: dict) -> str:
    return value_set.get("url") or value_set.get("id") or "(unnamed)"

