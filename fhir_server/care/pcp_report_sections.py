"""The PCP report's sections after the story: the care plan with its goals and barriers, the medication
alerts with what to do, the open referrals, the care gaps and the coordinator's contact (care/pcp_report.py)."""

from __future__ import annotations

import re

from fhir_server.care.care_gaps import Gap, member_gaps
from fhir_server.care.enrollment import COORDINATOR_ROLE
from fhir_server.care.medreview import KINDS, knowledge, review
from fhir_server.care.pcp_report_facts import Facts, Section, in_words, is_barrier, more, name_of, read
from fhir_server.care.program import PROGRAM, PROGRAM_SYSTEM, codings, search
from fhir_server.care.referrals import TASK_CODES
from fhir_server.store.repository import Repository

# Caps that keep the report to one page, two at most; the rest is counted, never dropped silently.
MAX_ALERTS, MAX_GOALS, MAX_BARRIERS, MAX_REFERRALS, MAX_GAPS = 6, 6, 4, 5, 6
_OPEN_PLANS = ("active", "on-hold", "draft")  # the plan to report: the active one first
_OPEN_REFERRALS = "draft,requested,received,accepted,ready,in-progress,on-hold"
_SEVERITY = ("high", "moderate", "low")
_LOINC_CODES = re.compile(r" \(LOINC [^)]*\)")
_LONG_DECIMAL = re.compile(r"\d+\.\d{3,}")  # a reading as a device stored it, e.g. 179.60435632790262


def care_plan(repo: Repository, facts: Facts) -> Section:
    """The program care plan (cw-care-plan): its status, each goal's progress and target, and the barriers."""
    plans = search(repo, "CarePlan", [("subject", facts.member), ("status", ",".join(_OPEN_PLANS)),
                                      ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")], count=20)
    plans.sort(key=lambda p: (_OPEN_PLANS.index(p["status"]), p["id"]))
    barriers = [c for c in facts.conditions if is_barrier(c)]
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
        goals = [g for g in (read(repo, (r or {}).get("reference", ""), "Goal") for r in plan.get("goal") or []) if g]
        if not goals:
            paragraphs.append("It has no goals yet.")
    items = []
    for goal in goals[:MAX_GOALS]:
        reference = facts.cite(goal)
        entries.append(reference)
        items.append(_goal(goal))
        if facts.is_new(reference):
            facts.changes.append(f"new goal {in_words(goal.get('description'))}")
        elif facts.has_changed(goal):
            facts.changes.append(f"goal {in_words(goal.get('description'))} now {_progress(goal)}")
    items += more(goals, MAX_GOALS)
    for barrier in barriers[:MAX_BARRIERS]:
        entries.append(facts.cite(barrier))
        notes = "; ".join(n["text"] for n in barrier.get("note") or [] if n.get("text"))
        items.append(f"Barrier: {in_words(barrier.get('code'))}" + (f" ({notes})" if notes else ""))
    items += more(barriers, MAX_BARRIERS, "barriers")
    return Section("care-plan", "Care plan", tuple(paragraphs), tuple(items), tuple(entries))


def _goal(goal: dict) -> str:
    targets = []
    for target in goal.get("target") or []:
        what = in_words(target.get("measure")) if target.get("measure") else ""
        detail = target.get("detailQuantity") or {}
        if detail.get("value") is not None:
            what += f" {detail.get('comparator', '')}{detail['value']} {detail.get('unit', '')}".rstrip()
        elif target.get("detailString"):
            what += f" {target['detailString']}"
        due = target.get("dueDate")
        targets.append((what.strip() or "target") + (f" by {due}" if due else ""))
    return (f"Goal: {in_words(goal.get('description'))}: {_progress(goal)}"
            + (f" (as of {goal['statusDate']})" if goal.get("statusDate") else "")
            + (f"; target {', '.join(targets)}" if targets else ""))


def _progress(goal: dict) -> str:
    achievement = goal.get("achievementStatus")
    return (in_words(achievement).lower() if achievement else "no progress recorded") + \
        f", {goal.get('lifecycleStatus', 'status unknown')}"


# -- medication alerts --------------------------------------------------------------------------------------


def alerts(repo: Repository, facts: Facts) -> Section:
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
                   tuple(items + more(issues, MAX_ALERTS, "alerts")), tuple(entries))


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


def referrals(repo: Repository, facts: Facts) -> Section:
    """Open referral Tasks (cw-referral-task) and where each stands in the referral loop."""
    tasks = sorted(search(repo, "Task", [("patient", facts.member), ("code", f"{TASK_CODES}|fulfill"),
                                         ("status", _OPEN_REFERRALS)], count=100),
                   key=lambda t: (t.get("authoredOn") or "", t["id"]))
    items, entries = [], []
    for task in tasks[:MAX_REFERRALS]:
        entries.append(facts.cite(task))
        request = read(repo, (task.get("focus") or {}).get("reference", ""), "ServiceRequest")
        if request is not None:
            entries.append(facts.cite(request))
        what = in_words(request.get("code")) if request and request.get("code") else "Referral"
        business = in_words(task["businessStatus"]) if task.get("businessStatus") else ""
        changed = task.get("lastModified") or task.get("authoredOn")
        owner = (task.get("owner") or {}).get("display") or (task.get("owner") or {}).get("reference")
        items.append(f"{what}: {task['status']}" + (f" ({business})" if business else "")
                     + (f", to {owner}" if owner else "") + (f", since {changed[:10]}" if changed else ""))
    paragraphs = () if tasks else ("No open referrals.",)
    return Section("referrals", "Open referrals", paragraphs, tuple(items + more(tasks, MAX_REFERRALS)),
                   tuple(entries))


def gaps(repo: Repository, facts: Facts) -> Section:
    """The member's open care gaps ($care-gaps) on the report day."""
    gaps: list[Gap] = member_gaps(repo, facts.member.partition("/")[2], facts.as_of)
    items, entries = [], []
    for gap in gaps[:MAX_GAPS]:
        evidence = _LONG_DECIMAL.sub(lambda m: f"{float(m.group()):.1f}".removesuffix(".0"), gap.evidence)
        items.append(f"{gap.display}: {evidence}; due {gap.due.isoformat()}")
        for resource in (read(repo, reference or "", "") for reference in (gap.condition, gap.last_result)):
            cited = facts.cite(resource) if resource is not None else None
            if cited is not None and cited not in entries:
                entries.append(cited)
    paragraphs = () if gaps else ("No open care gaps.",)
    return Section("care-gaps", "Care gaps", paragraphs, tuple(items + more(gaps, MAX_GAPS)), tuple(entries))


def contact(repo: Repository, facts: Facts) -> Section:
    """The care coordinator of the member's program care team: name, phone and email."""
    for team in search(repo, "CareTeam", [("subject", facts.member), ("status", "active"),
                                          ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")], count=10):
        for participant in team.get("participant") or []:
            roles = {key for role in participant.get("role") or [] for key in codings(role)}
            if (COORDINATOR_ROLE["system"], COORDINATOR_ROLE["code"]) not in roles:
                continue
            person = read(repo, (participant.get("member") or {}).get("reference", ""), "")
            if person is None:
                continue
            entries = [facts.cite(team), facts.cite(person)]
            facts.coordinator = entries[1]
            telecom = list(person.get("telecom") or [])
            if person["resourceType"] == "PractitionerRole":
                practitioner = read(repo, (person.get("practitioner") or {}).get("reference", ""), "Practitioner")
                if practitioner is not None:
                    entries.append(facts.cite(practitioner))
                    telecom += practitioner.get("telecom") or []
                    person = practitioner
            reach = "; ".join(f"{t.get('system', 'contact')} {t['value']}" for t in telecom if t.get("value"))
            line = f"{name_of(person)}, care coordinator: " + (reach or "no phone or email on record") + "."
            return Section("contact", "Care coordinator", (line,), (), tuple(entries))
    return Section("contact", "Care coordinator",
                   ("No care coordinator is assigned: the member is not enrolled in the program.",), (), ())
