"""Translation by a ConceptMap (conceptmap.html, conceptmap-operation-translate.html).

Each `group` maps the codes of its `source` system to codes of its `target` system. Forward, a code's
element gives its targets; where a group has no element for the code, its `unmapped` rule applies
(`provided`: the code itself in the target system; `fixed`: the rule's code; `other-map`: the map it
names). Those fallbacks carry the equivalence `inexact`, since R4 gives them none. In reverse, targets are
matched and their sources returned, with the equivalence read the other way (`wider` becomes `narrower`);
`unmapped` does not apply. Targets' `dependsOn` conditions are not evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Equivalences that say there is no mapping (concept-map-equivalence): a translation of only these fails.
NOT_MAPPED = frozenset({"unmatched", "disjoint"})
# An equivalence reads from target to source (concept-map-equivalence); in reverse it reads the other way.
_REVERSED = {"wider": "narrower", "narrower": "wider", "subsumes": "specializes", "specializes": "subsumes"}
_MAX_OTHER_MAPS = 5


@dataclass(frozen=True, slots=True)
class Match:
    """One answer of $translate (its `match` part)."""

    equivalence: str
    system: str | None
    code: str | None
    display: str | None
    source: str | None
    comment: str | None = None


def translate(concept_map: dict, system: str | None, code: str, *, target_system: str | None = None,
              reverse: bool = False, other_map: Callable[[str], dict | None] = lambda url: None,
              _depth: int = 0) -> list[Match]:
    """The matches of (`system`, `code`) in `concept_map`; `system` None matches any group's source."""
    found: list[Match] = []
    url = concept_map.get("url")
    for group in concept_map.get("group") or []:
        source, target = group.get("source"), group.get("target")
        if reverse:
            if (system is not None and target not in (None, system)) or (
                    target_system is not None and source not in (None, target_system)):
                continue
            found += [Match(_reverse(t.get("equivalence") or "equivalent"), source, element.get("code"),
                            element.get("display"), url, t.get("comment"))
                      for element in group.get("element") or [] for t in element.get("target") or []
                      if t.get("code") == code]
            continue
        if (system is not None and source not in (None, system)) or (
                target_system is not None and target not in (None, target_system)):
            continue
        elements = [e for e in group.get("element") or [] if e.get("code") == code]
        for element in elements:
            found += [Match(t.get("equivalence") or "equivalent", target, t.get("code"), t.get("display"), url,
                            t.get("comment"))
                      for t in element.get("target") or []]
        if not elements:
            found += _unmapped(group, code, target, url, target_system, other_map, _depth)
    return found


def _unmapped(group: dict, code: str, target: str | None, url: str | None, target_system: str | None,
              other_map: Callable[[str], dict | None], depth: int) -> list[Match]:
    rule = group.get("unmapped") or {}
    mode = rule.get("mode")
    if mode == "provided":
        return [Match("inexact", target, code, None, url)]
    if mode == "fixed" and rule.get("code"):
        return [Match("inexact", target, rule["code"], rule.get("display"), url)]
    if mode == "other-map" and rule.get("url") and depth < _MAX_OTHER_MAPS:
        other = other_map(rule["url"])
        if other is not None:
            return translate(other, group.get("source"), code, target_system=target_system, other_map=other_map,
                             _depth=depth + 1)
    return []


def _reverse(equivalence: str) -> str:
    return _REVERSED.get(equivalence, equivalence)


def mapped(matches: list[Match]) -> bool:
    """$translate's `result`: whether any match is a mapping, not a statement that there is none."""
    return any(m.equivalence not in NOT_MAPPED for m in matches)
