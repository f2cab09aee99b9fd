"""The report for the PCP office record (`Patient/[id]/$pcp-report`, docs/program.md).

One to two pages, generated from the record under the caller's grant: the member's story (age, key problems
with their onset, the last 12 months' visits, what changed since the last report), the program care plan
with its goals' progress and the barriers, the medication review's alerts (computed, not persisted) with
what to do, the open referrals, the care gaps, and the coordinator's contact. Each call stores it as a FHIR
document (documents.html: a Bundle of type document whose first entry is a Composition, with every resource
the sections cite, so that it stands alone) and a DocumentReference (LOINC 18776-5) holding the PDF and
pointing at the Bundle, ready for the exchange with the PCP's EHR. "What changed" compares the record with
the document of the member's last report made here (the DocumentReference whose masterIdentifier is ours).
"""

from __future__ import annotations

import base64
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from fhir_server.care.candidates import Rules, months_before
from fhir_server.care.care_gaps import Gap, member_gaps
from fhir_server.care.careplan import BARRIER_SYSTEM
from fhir_server.care.enrollment import COORDINATOR_ROLE
from fhir_server.care.medreview import KINDS, knowledge, review
from fhir_server.care.pcp_report_html import narrative
from fhir_server.care.pcp_report_html import render as render_html
from fhir_server.care.pcp_report_pdf import render as render_pdf
from fhir_server.care.program import BASE, PROGRAM, PROGRAM_SYSTEM, codings, instant, now, search
from fhir_server.care.referrals import TASK_CODES
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.terminology.valueset import expand
from fhir_server.store.repository import Repository, StoredResource
from fhir_server.store.terminology import StoredTerminology

LOINC = "http://loinc.org"
FHIR_JSON = "application/fhir+json"
REPORT_TYPE = {"system": LOINC, "code": "18776-5", "display": "Plan of care note"}
MEMBER_ID = BASE + "sid/member-id"  # the health plan's member number (cw-member-patient)
# The document identifier (Bundle.identifier, DocumentReference.masterIdentifier) of the reports made here.
REPORT_SYSTEM = BASE + "sid/pcp-report"
TITLE = "Primary care report"
FOOTER = "Made by CareWeave from the member's record for the PCP office; not a substitute for the chart. Written"
# The author when the member has no coordinator (not enrolled): the program, by name (Reference.display).
PROGRAM_AUTHOR = {"display": "CareWeave chronic-care coordination program"}
# Caps that keep the report to one page, two at most; the rest is counted, never dropped silently.
MAX_PROBLEMS, MAX_ALERTS, MAX_GOALS, MAX_BARRIERS, MAX_REFERRALS, MAX_GAPS, MAX_CHANGES = 8, 6, 6, 4, 5, 6, 8
LATEST_VISITS = 3
_CLINICAL_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_NOT_A_CONDITION = frozenset({"refuted", "entered-in-error"})
_DID_NOT_HAPPEN = frozenset({"planned", "cancelled", "entered-in-error"})
_OPEN_PLANS = ("active", "on-hold", "draft")  # the plan to report: the active one first
_OPEN_REFERRALS = "draft,requested,received,accepted,ready,in-progress,on-hold"
_SEVERITY = ("high", "moderate", "low")
_LOINC_CODES = re.compile(r" \(LOINC [^)]*\)")
_LONG_DECIMAL = re.compile(r"\d+\.\d{3,}")  # a reading as a device stored it, e.g. 179.60435632790262
# Encounter class (v3 ActCode) to what the story calls it, as $care-candidates counts hospital use.
_VISITS = {"EMER": "emergency", "IMP": "inpatient", "ACUTE": "inpatient", "NONAC": "inpatient"}
_VISIT_WORDS = {"emergency": ("emergency visit", "emergency visits"), "inpatient": ("hospital stay", "hospital stays"),
                "ambulatory": ("office visit", "office visits")}
_PEOPLE = {"female": ("woman", "she"), "male": ("man", "he")}


@dataclass(frozen=True)
class Section:
    """One section of the report: its key (Composition.section.code.text), title, prose, bulleted items and
    the references it cites (Composition.section.entry)."""

    key: str
    title: str
    paragraphs: tuple[str, ...]
    items: tuple[str, ...]
    entries: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    title: str
    heading: str
    date: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Written:
    report: Report
    bundle: dict  # the stored document Bundle
    document_reference: StoredResource
    pdf: bytes


@dataclass(frozen=True)
class _Previous:
    """The member's last report made here: its day, what its document cited (by reference, with the version
    cited) and the findings its alerts section named (DetectedIssue identifiers)."""

    timestamp: str
    cited: dict[str, dict]
    alerts: frozenset[str]


@dataclass
class _Facts:
    """What the sections are written from. `cited` holds every resource a section names, by reference, for
    the document; `changes` what is new since the last report, as the sections find it."""

    member: str
    patient: dict
    as_of: date
    previous: _Previous | None
    conditions: list[dict]  # the member's active Conditions, problems and barriers
    coordinator: str | None = None  # the care coordinator's Practitioner or PractitionerRole, when there is one
    cited: dict[str, dict] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)

    def cite(self, resource: dict) -> str:
        reference = f"{resource['resourceType']}/{resource['id']}"
        self.cited[reference] = resource
        return reference

    def is_new(self, reference: str) -> bool:
        return self.previous is not None and reference not in self.previous.cited

    def has_changed(self, resource: dict) -> bool:
        """Cited by the last report in another version."""
        if self.previous is None:
            return False
        before = self.previous.cited.get(f"{resource['resourceType']}/{resource['id']}")
        return before is not None and (before.get("meta") or {}).get("versionId") != \
            (resource.get("meta") or {}).get("versionId")


def write_report(repo: Repository, patient_id: str, base_url: str, rules: Rules) -> Written:
    """Gather, compose and store the member's report: its document Bundle, then its DocumentReference."""
    member = f"Patient/{patient_id}"
    patient = repo.read("Patient", patient_id).resource()
    written_at = now()
    as_of = date.fromisoformat(written_at[:10])
    conditions = [c for c in search(repo, "Condition", [("patient", member)], count=1000) if _active(c, as_of)]
    facts = _Facts(member, patient, as_of, _previous(repo, member), conditions)
    facts.cite(patient)
    # The story comes first in the report but is written last: it tells what the other sections found new.
    later = (_care_plan(repo, facts), _alerts(repo, facts), _referrals(repo, facts), _gaps(repo, facts),
             _contact(repo, facts))
    report = Report(f"{TITLE}: {_name(patient)}", _heading(patient, facts.as_of), written_at,
                    (_story(repo, facts, rules), *later))
    author = {"reference": facts.coordinator} if facts.coordinator else PROGRAM_AUTHOR
    identifier = {"system": REPORT_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"}
    bundle = repo.create(_document(report, facts, author, identifier, base_url))[0]
    rendered = pdf(report)
    document = repo.create(_document_reference(report, facts, author, identifier, bundle.reference, rendered))[0]
    return Written(report, bundle.resource(), document, rendered)


def _previous(repo: Repository, member: str) -> _Previous | None:
    """The last report made here for the member, from the document its DocumentReference points at."""
    # Two reports may share a date to the second; the later write is the later report.
    for reference in search(repo, "DocumentReference", [("patient", member), ("type", f"{LOINC}|{REPORT_TYPE['code']}"),
                                                        ("_sort", "-date,-_lastUpdated")], count=20):
        if (reference.get("masterIdentifier") or {}).get("system") != REPORT_SYSTEM:
            continue  # a care-plan note from elsewhere: not ours to compare with
        target = next((c["attachment"].get("url", "") for c in reference.get("content") or []
                       if c.get("attachment", {}).get("contentType") == FHIR_JSON), "")
        try:
            document = repo.read("Bundle", target.partition("/")[2]).resource() if target.startswith("Bundle/") \
                else None
        except FhirError:
            document = None  # gone or not readable: what it cited is unknown, so all on record counts as new
        resources = [e.get("resource") or {} for e in (document or {}).get("entry") or []]
        return _Previous(reference.get("date") or "", {
            f"{r['resourceType']}/{r['id']}": r for r in resources if "id" in r and "resourceType" in r},
            frozenset(i.get("value") for r in resources if r.get("resourceType") == "DetectedIssue"
                      for i in r.get("identifier") or []))
    return None


# -- the story ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    condition: dict
    name: str
    onset: str | None  # the date as written
    chronic: bool

    @property
    def reference(self) -> str:
        return f"Condition/{self.condition['id']}"


def _story(repo: Repository, facts: _Facts, rules: Rules) -> Section:
    """Age, key problems with onset, the last 12 months' visits, and what changed since the last report."""
    problems = _problems(repo, facts, rules)
    noun, pronoun = _PEOPLE.get(facts.patient.get("gender"), ("person", "they"))
    age = _age(facts.patient, facts.as_of)
    who = f"{_name(facts.patient)} is a " + (f"{age}-year-old {noun}" if age is not None else f"{noun} of unknown age")
    key = [p for p in problems if p.chronic][:3] or problems[:3]
    if key:
        others = len(problems) - len(key)
        named = [_in_sentence(p.name) + (f" (since {p.onset[:4]})" if p.onset else "") for p in key]
        first = f"{who} with {_and(named)}" + (f", and {_counted(others, 'other active problem')}" if others else "")
    else:
        first = f"{who} with no active problems on record"
    visits, latest = _visits(repo, facts)
    counts = [_counted(visits[kind], *_VISIT_WORDS[kind]) for kind in _VISIT_WORDS if visits[kind]]
    use = f"In the last 12 months {pronoun} had {_and(counts) if counts else 'no visits on record'}."
    paragraphs = [f"{first}. {use}"]
    if latest:
        paragraphs.append("Latest: " + "; ".join(_visit(e) for e in latest) + ".")
    new_problems = [f"new problem {_in_sentence(p.name)}" for p in problems if facts.is_new(p.reference)]
    new_visits = [_visit(e) for e in _since_previous(repo, facts)]
    paragraphs.append(_changes(facts, [*new_problems, *new_visits, *facts.changes]))
    shown = problems[:MAX_PROBLEMS]
    items = [p.name + (f", since {p.onset[:10]}" if p.onset else "") + (" (chronic)" if p.chronic else "")
             for p in shown] + _more(problems, MAX_PROBLEMS)
    entries = [facts.member, *(facts.cite(p.condition) for p in shown), *(facts.cite(e) for e in latest)]
    return Section("story", "The member's story", tuple(paragraphs), tuple(items), tuple(entries))


def _problems(repo: Repository, facts: _Facts, rules: Rules) -> list[_Problem]:
    """Active Conditions but barriers: the program's chronic ones first, then by onset."""
    chronic = _chronic_codes(repo, rules)
    found = []
    for condition in facts.conditions:
        if _is_barrier(condition):
            continue
        onset = condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start") \
            or condition.get("recordedDate")
        is_chronic = any(key in chronic for key in codings(condition.get("code")))
        found.append(_Problem(condition, _text(condition.get("code")), onset, is_chronic))
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


def _visits(repo: Repository, facts: _Facts) -> tuple[Counter, list[dict]]:
    """Encounters that began in the last 12 months, counted by kind, and the latest few."""
    since = months_before(facts.as_of, 12)
    encounters = [e for e in search(repo, "Encounter", [("patient", facts.member), ("date", f"ge{since}")],
                                    count=1000)
                  if e.get("status") not in _DID_NOT_HAPPEN and since <= (_day(_start(e)) or since) <= facts.as_of]
    counts = Counter(_kind(e) for e in encounters)
    return counts, sorted(encounters, key=lambda e: (_start(e), e["id"]), reverse=True)[:LATEST_VISITS]


def _since_previous(repo: Repository, facts: _Facts) -> list[dict]:
    """Encounters that began after the last report was made and that it did not cite (one that began within
    its second may have been among its latest)."""
    if facts.previous is None or not facts.previous.timestamp:
        return []
    after = instant(facts.previous.timestamp)
    return sorted((e for e in search(repo, "Encounter", [("patient", facts.member),
                                                         ("date", f"ge{facts.previous.timestamp[:10]}")], count=100)
                   if e.get("status") not in _DID_NOT_HAPPEN and _start(e) and instant(_start(e)) >= after
                   and facts.is_new(f"Encounter/{e['id']}")),
                  key=lambda e: (_start(e), e["id"]))


def _kind(encounter: dict) -> str:
    return _VISITS.get((encounter.get("class") or {}).get("code"), "ambulatory")


def _visit(encounter: dict) -> str:
    kind = _VISIT_WORDS[_kind(encounter)][0]
    reason = _text((encounter.get("type") or [None])[0]) if encounter.get("type") else ""
    return f"{kind} on {_start(encounter)[:10]}" + (f" ({reason})" if reason else "")


def _changes(facts: _Facts, changes: list[str]) -> str:
    if facts.previous is None:
        return "This is the first report to the PCP office."
    day = facts.previous.timestamp[:10]
    if not changes:
        return f"Nothing new since the last report on {day}."
    more = f"; and {len(changes) - MAX_CHANGES} more" if len(changes) > MAX_CHANGES else ""
    return f"Since the last report on {day}: {'; '.join(changes[:MAX_CHANGES])}{more}."


# -- the care plan ------------------------------------------------------------------------------------------


def _care_plan(repo: Repository, facts: _Facts) -> Section:
    """The program care plan (cw-care-plan): its status, each goal's progress and target, and the barriers."""
    plans = search(repo, "CarePlan", [("subject", facts.member), ("status", ",".join(_OPEN_PLANS)),
                                      ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")], count=20)
    plans.sort(key=lambda p: (_OPEN_PLANS.index(p["status"]), p["id"]))
    barriers = [c for c in facts.conditions if _is_barrier(c)]
    if not plans:
        paragraphs = ["No program care plan is on record."]
        goals: list[dict] = []
        entries: list[str] = []
    else:
        plan = plans[0]
        entries = [facts.cite(plan)]
        since = (plan.get("period") or {}).get("start")
        paragraphs = [f"{plan.get('title') or 'The care plan'} is {plan['status']}"
                      + (f" since {since[:10]}" if since else "") + "."]
        goals = [g for g in (_read(repo, (r or {}).get("reference", ""), "Goal") for r in plan.get("goal") or []) if g]
        if not goals:
            paragraphs.append("It has no goals yet.")
    items = []
    for goal in goals[:MAX_GOALS]:
        reference = facts.cite(goal)
        entries.append(reference)
        items.append(_goal(goal))
        if facts.is_new(reference):
            facts.changes.append(f"new goal {_text(goal.get('description'))}")
        elif facts.has_changed(goal):
            facts.changes.append(f"goal {_text(goal.get('description'))} now {_progress(goal)}")
    items += _more(goals, MAX_GOALS)
    for barrier in barriers[:MAX_BARRIERS]:
        entries.append(facts.cite(barrier))
        notes = "; ".join(n["text"] for n in barrier.get("note") or [] if n.get("text"))
        items.append(f"Barrier: {_text(barrier.get('code'))}" + (f" ({notes})" if notes else ""))
    items += _more(barriers, MAX_BARRIERS, "barriers")
    return Section("care-plan", "Care plan", tuple(paragraphs), tuple(items), tuple(entries))


def _goal(goal: dict) -> str:
    targets = []
    for target in goal.get("target") or []:
        what = _text(target.get("measure")) if target.get("measure") else ""
        detail = target.get("detailQuantity") or {}
        if detail.get("value") is not None:
            what += f" {detail.get('comparator', '')}{detail['value']} {detail.get('unit', '')}".rstrip()
        elif target.get("detailString"):
            what += f" {target['detailString']}"
        due = target.get("dueDate")
        targets.append((what.strip() or "target") + (f" by {due}" if due else ""))
    return (f"Goal: {_text(goal.get('description'))}: {_progress(goal)}"
            + (f" (as of {goal['statusDate']})" if goal.get("statusDate") else "")
            + (f"; target {', '.join(targets)}" if targets else ""))


def _progress(goal: dict) -> str:
    achievement = goal.get("achievementStatus")
    return (_text(achievement).lower() if achievement else "no progress recorded") + \
        f", {goal.get('lifecycleStatus', 'status unknown')}"


# -- medication alerts --------------------------------------------------------------------------------------


def _alerts(repo: Repository, facts: _Facts) -> Section:
    """The medication review's findings, computed and not stored (as $medication-review with persist=false),
    most severe first, each with what to do."""
    issues = sorted(review(repo, facts.member.partition("/")[2], persist=False).issues,
                    key=lambda i: (_SEVERITY.index(i.get("severity", "low")), i["identifier"][0]["value"]))
    shown = issues[:MAX_ALERTS]
    items, entries = [], []
    for issue in shown:
        issue["id"] = f"alert-{len(entries) + 1}"  # a document-local id (urn:uuid fullUrl in the Bundle)
        entries.append(facts.cite(issue))
        items.append(f"{issue['severity'].capitalize()}: {issue['code']['text']}: {_finding(issue)}. "
                     f"Action: {_advice(issue)}")
        if facts.previous is not None and issue["identifier"][0]["value"] not in facts.previous.alerts:
            facts.changes.append(f"new alert {issue['code']['text'].lower()} ({_involved(issue)})")
    paragraphs = () if issues else ("No medication alerts: the review of the active medicines found nothing.",)
    return Section("medication-alerts", "Medication alerts", paragraphs,
                   tuple(items + _more(issues, MAX_ALERTS, "alerts")), tuple(entries))


def _finding(issue: dict) -> str:
    """What a finding is about, in a few words: the start of its detail, up to its first colon, and for a
    missing lab, which lab (without the LOINC codes, which the DetectedIssue keeps)."""
    first = _LOINC_CODES.sub("", issue.get("detail", "").split(" Source: ")[0]).split(". ")[0]
    return first if issue["code"]["text"] == KINDS["monitoring"][2] else first.partition(": ")[0]


def _involved(issue: dict) -> str:
    """The ingredients a finding is about, by name, from its identifier (entry:key+key, medreview.py)."""
    names = knowledge().ingredients
    keys = issue["identifier"][0]["value"].partition(":")[2].split("+")
    return ", ".join(sorted(k.removeprefix("name:") if k.startswith("name:") else names.get(k, k) for k in keys))


def _advice(issue: dict) -> str:
    """The knowledge entry's management advice; else the detail's own advice (its last sentences)."""
    entry = issue["identifier"][0]["value"].split(":")[0].split("/")[0]
    known = knowledge()
    for rule in [*known.interactions, *known.limits, *known.older]:
        if rule["id"] == entry and rule.get("management"):
            return rule["management"]
    detail = issue.get("detail", "").split(" Source: ")[0]
    sentences = [s for s in detail.split(". ") if s]
    return (sentences[-1].rstrip(".") + ".") if sentences else "Review with the PCP."


# -- referrals, care gaps, contact --------------------------------------------------------------------------


def _referrals(repo: Repository, facts: _Facts) -> Section:
    """Open referral Tasks (cw-referral-task) and where each stands in the referral loop."""
    tasks = sorted(search(repo, "Task", [("patient", facts.member), ("code", f"{TASK_CODES}|fulfill"),
                                         ("status", _OPEN_REFERRALS)], count=100),
                   key=lambda t: (t.get("authoredOn") or "", t["id"]))
    items, entries = [], []
    for task in tasks[:MAX_REFERRALS]:
        entries.append(facts.cite(task))
        request = _read(repo, (task.get("focus") or {}).get("reference", ""), "ServiceRequest")
        if request is not None:
            entries.append(facts.cite(request))
        what = _text(request.get("code")) if request and request.get("code") else "Referral"
        business = _text(task["businessStatus"]) if task.get("businessStatus") else ""
        changed = task.get("lastModified") or task.get("authoredOn")
        owner = (task.get("owner") or {}).get("display") or (task.get("owner") or {}).get("reference")
        items.append(f"{what}: {task['status']}" + (f" ({business})" if business else "")
                     + (f", to {owner}" if owner else "") + (f", since {changed[:10]}" if changed else ""))
    paragraphs = () if tasks else ("No open referrals.",)
    return Section("referrals", "Open referrals", paragraphs, tuple(items + _more(tasks, MAX_REFERRALS)),
                   tuple(entries))


def _gaps(repo: Repository, facts: _Facts) -> Section:
    """The member's open care gaps ($care-gaps) on the report day."""
    gaps: list[Gap] = member_gaps(repo, facts.member.partition("/")[2], facts.as_of)
    items, entries = [], []
    for gap in gaps[:MAX_GAPS]:
        evidence = _LONG_DECIMAL.sub(lambda m: f"{float(m.group()):.1f}".removesuffix(".0"), gap.evidence)
        items.append(f"{gap.display}: {evidence}; due {gap.due.isoformat()}")
        for resource in (_read(repo, reference or "", "") for reference in (gap.condition, gap.last_result)):
            cited = facts.cite(resource) if resource is not None else None
            if cited is not None and cited not in entries:
                entries.append(cited)
    paragraphs = () if gaps else ("No open care gaps.",)
    return Section("care-gaps", "Care gaps", paragraphs, tuple(items + _more(gaps, MAX_GAPS)), tuple(entries))


def _contact(repo: Repository, facts: _Facts) -> Section:
    """The care coordinator of the member's program care team: name, phone and email."""
    for team in search(repo, "CareTeam", [("subject", facts.member), ("status", "active"),
                                          ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")], count=10):
        for participant in team.get("participant") or []:
            roles = {key for role in participant.get("role") or [] for key in codings(role)}
            if (COORDINATOR_ROLE["system"], COORDINATOR_ROLE["code"]) not in roles:
                continue
            person = _read(repo, (participant.get("member") or {}).get("reference", ""), "")
            if person is None:
                continue
            entries = [facts.cite(team), facts.cite(person)]
            facts.coordinator = entries[1]
            telecom = list(person.get("telecom") or [])
            if person["resourceType"] == "PractitionerRole":
                practitioner = _read(repo, (person.get("practitioner") or {}).get("reference", ""), "Practitioner")
                if practitioner is not None:
                    entries.append(facts.cite(practitioner))
                    telecom += practitioner.get("telecom") or []
                    person = practitioner
            reach = "; ".join(f"{t.get('system', 'contact')} {t['value']}" for t in telecom if t.get("value"))
            line = f"{_name(person)}, care coordinator: " + (reach or "no phone or email on record") + "."
            return Section("contact", "Care coordinator", (line,), (), tuple(entries))
    return Section("contact", "Care coordinator",
                   ("No care coordinator is assigned: the member is not enrolled in the program.",), (), ())


# -- the document and its DocumentReference -----------------------------------------------------------------


def _document(report: Report, facts: _Facts, author: dict, identifier: dict, base_url: str) -> dict:
    """The FHIR document (documents.html): Composition first, then each resource it cites, with full URLs.
    The computed alerts have no id on the server, so they travel as urn:uuid entries."""
    local = {r: f"urn:uuid:{uuid.uuid4()}" for r in facts.cited if r.startswith("DetectedIssue/")}

    def url(reference: str) -> str:
        return local.get(reference) or f"{base_url.rstrip('/')}/{reference}"

    composition = {
        "resourceType": "Composition", "id": "report", "status": "final",
        "type": {"coding": [REPORT_TYPE], "text": TITLE}, "category": [{"coding": [PROGRAM]}],
        "subject": {"reference": facts.member, "display": _name(facts.patient)}, "date": report.date,
        "author": [author], "title": report.title,
        "section": [{"title": s.title, "code": {"text": s.key},
                     "text": {"status": "generated", "div": narrative(s.paragraphs, s.items)},
                     **({"entry": [{"reference": local.get(e, e)} for e in s.entries]} if s.entries else {})}
                    for s in report.sections]}
    return {"resourceType": "Bundle", "identifier": identifier, "type": "document", "timestamp": report.date,
            "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": composition},
                      *({"fullUrl": url(r), "resource": _without_local_id(resource, r in local)}
                        for r, resource in facts.cited.items())]}


def _without_local_id(resource: dict, local: bool) -> dict:
    return {k: v for k, v in resource.items() if k != "id"} if local else resource


def _document_reference(report: Report, facts: _Facts, author: dict, identifier: dict, bundle: str,
                        pdf: bytes) -> dict:
    return {
        "resourceType": "DocumentReference", "masterIdentifier": identifier, "status": "current",
        "docStatus": "final", "type": {"coding": [REPORT_TYPE], "text": TITLE}, "category": [{"coding": [PROGRAM]}],
        "subject": {"reference": facts.member}, "date": report.date, "author": [author],
        "description": report.title,
        "content": [
            {"attachment": {"contentType": "application/pdf", "language": "en", "data": base64.b64encode(pdf).decode(),
                            "title": f"{report.title}.pdf", "creation": report.date}},
            {"attachment": {"contentType": FHIR_JSON, "url": bundle, "title": "FHIR document"}},
        ],
        "context": {"related": [{"reference": bundle}]},
    }


def pdf(report: Report) -> bytes:
    """The report as the PDF the DocumentReference holds (care/pcp_report_pdf.py)."""
    return render_pdf(report.title, report.heading, report.sections, f"{FOOTER} {report.date}.")


def page(report: Report) -> str:
    """The report as an HTML page (care/pcp_report_html.py)."""
    return render_html(report.title, report.heading, report.sections, f"{FOOTER} {report.date}.")


# -- small readers and words --------------------------------------------------------------------------------


def _read(repo: Repository, reference: str, resource_type: str) -> dict | None:
    """The resource a reference names, if it is on the server and readable under the grant."""
    kind, _, id = reference.partition("/")
    if not id or "/" in id or (resource_type and kind != resource_type):
        return None
    try:
        return repo.read(kind, id).resource()
    except FhirError:
        return None


def _active(condition: dict, as_of: date) -> bool:
    """A problem the member has: clinically active, neither refuted nor entered in error, begun by `as_of`."""
    if {c for _, c in codings(condition.get("verificationStatus"))} & _NOT_A_CONDITION:
        return False
    began = _day(condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start")
                 or condition.get("recordedDate"))
    status = {c for _, c in codings(condition.get("clinicalStatus"))}
    return (began is None or began <= as_of) and (bool(status & _CLINICAL_ACTIVE) if status else
                                                  not any(k.startswith("abatement") for k in condition))


def _is_barrier(condition: dict) -> bool:
    return any(system == BARRIER_SYSTEM for system, _ in codings(condition.get("code")))


def _heading(patient: dict, as_of: date) -> str:
    """Who the report is about, in one line: birth date, gender, the first identifier, and the report's day."""
    parts = [f"born {patient['birthDate']}" if patient.get("birthDate") else "birth date unknown",
             patient.get("gender", "gender unknown")]
    parts += [f"member id {i['value']}" for i in patient.get("identifier") or []
              if i.get("system") == MEMBER_ID and i.get("value")][:1]
    return ", ".join([*parts, f"report of {as_of.isoformat()}"])


def _name(resource: dict) -> str:
    for name in resource.get("name") or []:
        text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
        if text:
            return text
    return f"{resource.get('resourceType', 'Patient')}/{resource.get('id', '?')}"


def _age(patient: dict, as_of: date) -> int | None:
    born = _day(patient.get("birthDate"))
    if born is None:
        return None
    return as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))


def _text(concept: dict | None) -> str:
    """A CodeableConcept in words: its text, else its first display without SNOMED CT's semantic tag."""
    concept = concept or {}
    text = concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")),
                                       None) or next((c.get("code") for c in concept.get("coding") or []), "unnamed")
    for tag in (" (disorder)", " (finding)", " (situation)", " (procedure)", " (regime/therapy)"):
        text = text.removesuffix(tag)
    return text


def _in_sentence(name: str) -> str:
    """A problem's name inside a sentence: "Type 2 diabetes" reads "type 2 diabetes"; "COPD" stays."""
    first = name.split(" ")[0]
    return name[0].lower() + name[1:] if first[:1].isupper() and first[1:].islower() else name


def _start(encounter: dict) -> str:
    period = encounter.get("period") or {}
    return period.get("start") or period.get("end") or ""


def _day(text: object) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if isinstance(text, str) and len(text) >= 10 else None
    except ValueError:
        return None


def _counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _more(found: Sequence[object], shown: int, what: str = "") -> list[str]:
    return [f"and {len(found) - shown} more" + (f" {what}" if what else "")] if len(found) > shown else []
