"""The member's story, the first section of the PCP report: age, key problems with their onset, the last 12
months' visits, and what changed since the last report (care/pcp_report.py)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from fhir_server.care.candidates import Rules, months_before
from fhir_server.care.pcp_report_facts import (
    Facts,
    Section,
    age_of,
    and_,
    counted,
    day_of,
    in_sentence,
    in_words,
    is_barrier,
    more,
    name_of,
    start,
)
from fhir_server.care.program import codings, instant, search
from fhir_server.fhir.terminology.valueset import expand
from fhir_server.store.repository import Repository
from fhir_server.store.terminology import StoredTerminology

MAX_PROBLEMS, MAX_CHANGES = 8, 8  # caps that keep the report to a page or two; the rest is counted
LATEST_VISITS = 3
_DID_NOT_HAPPEN = frozenset({"planned", "cancelled", "entered-in-error"})
# Encounter class (v3 ActCode) to what the story calls it, as $care-candidates counts hospital use.
_VISITS = {"EMER": "emergency", "IMP": "inpatient", "ACUTE": "inpatient", "NONAC": "inpatient"}
_VISIT_WORDS = {"emergency": ("emergency visit", "emergency visits"), "inpatient": ("hospital stay", "hospital stays"),
                "ambulatory": ("office visit", "office visits")}
_PEOPLE = {"female": ("woman", "she"), "male": ("man", "he")}


@dataclass(frozen=True)
class _Problem:
    condition: dict
    name: str
    onset: str | None  # the date as written
    chronic: bool

    @property
    def reference(self) -> str:
        return f"Condition/{self.condition['id']}"


def story(repo: Repository, facts: Facts, rules: Rules) -> Section:
    """Age, key problems with onset, the last 12 months' visits, and what changed since the last report."""
    problems = _problems(repo, facts, rules)
    noun, pronoun = _PEOPLE.get(facts.patient.get("gender"), ("person", "they"))
    age = age_of(facts.patient, facts.as_of)
    who = f"{name_of(facts.patient)} is a " + (f"{age}-year-old {noun}" if age is not None
                                               else f"{noun} of unknown age")
    key = [p for p in problems if p.chronic][:3] or problems[:3]
    if key:
        others = len(problems) - len(key)
        named = [in_sentence(p.name) + (f" (since {p.onset[:4]})" if p.onset else "") for p in key]
        first = f"{who} with {and_(named)}" + (f", and {counted(others, 'other active problem')}" if others else "")
    else:
        first = f"{who} with no active problems on record"
    visits, latest = _visits(repo, facts)
    counts = [counted(visits[kind], *_VISIT_WORDS[kind]) for kind in _VISIT_WORDS if visits[kind]]
    use = f"In the last 12 months {pronoun} had {and_(counts) if counts else 'no visits on record'}."
    paragraphs = [f"{first}. {use}"]
    if latest:
        paragraphs.append("Latest: " + "; ".join(_visit(e) for e in latest) + ".")
    new_problems = [f"new problem {in_sentence(p.name)}" for p in problems if facts.is_new(p.reference)]
    new_visits = [_visit(e) for e in _since_previous(repo, facts)]
    paragraphs.append(_changes(facts, [*new_problems, *new_visits, *facts.changes]))
    shown = problems[:MAX_PROBLEMS]
    items = [p.name + (f", since {p.onset[:10]}" if p.onset else "") + (" (chronic)" if p.chronic else "")
             for p in shown] + more(problems, MAX_PROBLEMS)
    entries = [facts.member, *(facts.cite(p.condition) for p in shown), *(facts.cite(e) for e in latest)]
    return Section("story", "The member's story", tuple(paragraphs), tuple(items), tuple(entries))


def _problems(repo: Repository, facts: Facts, rules: Rules) -> list[_Problem]:
    """Active Conditions but barriers: the program's chronic ones first, then by onset."""
    chronic = _chronic_codes(repo, rules)
    found = []
    for condition in facts.conditions:
        if is_barrier(condition):
            continue
        onset = condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start") \
            or condition.get("recordedDate")
        is_chronic = any(key in chronic for key in codings(condition.get("code")))
        found.append(_Problem(condition, in_words(condition.get("code")), onset, is_chronic))
    found.sort(key=lambda p: (not p.chronic, p.onset or "9999", p.name, p.reference))
    return found


def _chronic_codes(repo: Repository, rules: Rules) -> frozenset[tuple[str, str]]:
    """(system, code) of the program's chronic condition groups, the ValueSets $care-candidates' rules name."""
    terminology = StoredTerminology(repo)
    codes: set[tuple[str, str]] = set()
    for group in rules.groups:
        value_set = terminology.value_set(group.value_set, None)
        if value_set is not None:  # $care-candidates reports a missing one; here the problem is still listed
            codes |= {(m.system, m.code) for m in expand(value_set, terminology).members}
    return frozenset(codes)


def _visits(repo: Repository, facts: Facts) -> tuple[Counter, list[dict]]:
    """Encounters that began in the last 12 months, counted by kind, and the latest few."""
    since = months_before(facts.as_of, 12)
    encounters = [e for e in search(repo, "Encounter", [("patient", facts.member), ("date", f"ge{since}")],
                                    count=1000)
                  if e.get("status") not in _DID_NOT_HAPPEN and since <= (day_of(start(e)) or since) <= facts.as_of]
    counts = Counter(_kind(e) for e in encounters)
    return counts, sorted(encounters, key=lambda e: (start(e), e["id"]), reverse=True)[:LATEST_VISITS]


def _since_previous(repo: Repository, facts: Facts) -> list[dict]:
    """Encounters that began after the last report was made and that it did not cite (one that began within
    its second may have been among its latest)."""
    if facts.previous is None or not facts.previous.timestamp:
        return []
    after = instant(facts.previous.timestamp)
    return sorted((e for e in search(repo, "Encounter", [("patient", facts.member),
                                                         ("date", f"ge{facts.previous.timestamp[:10]}")], count=100)
                   if e.get("status") not in _DID_NOT_HAPPEN and start(e) and instant(start(e)) >= after
                   and facts.is_new(f"Encounter/{e['id']}")),
                  key=lambda e: (start(e), e["id"]))


def _kind(encounter: dict) -> str:
    return _VISITS.get((encounter.get("class") or {}).get("code"), "ambulatory")


def _visit(encounter: dict) -> str:
    kind = _VISIT_WORDS[_kind(encounter)][0]
    reason = in_words((encounter.get("type") or [None])[0]) if encounter.get("type") else ""
    return f"{kind} on {start(encounter)[:10]}" + (f" ({reason})" if reason else "")


def _changes(facts: Facts, changes: list[str]) -> str:
    if facts.previous is None:
        return "This is the first report to the PCP office."
    day = facts.previous.timestamp[:10]
    if not changes:
        return f"Nothing new since the last report on {day}."
    more = f"; and {len(changes) - MAX_CHANGES} more" if len(changes) > MAX_CHANGES else ""
    return f"Since the last report on {day}: {'; '.join(changes[:MAX_CHANGES])}{more}."
