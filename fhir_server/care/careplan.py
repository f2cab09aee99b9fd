"""The care plan's documentation standard (`CarePlan/[id]/$quality-check`) and the steps of its life:
the PCP's approval (`$activate`), the periodic review (`$review`) and closure (`$close`).

The standard follows the MCC eCare Plan IG's shape (goals address problems, interventions pertain to
goals, progress is the goal's achievementStatus) as rules, each with a key and a message that says what
to do. A step is refused with 422 and the rules' OperationOutcome when the plan does not meet the
standard. Each step writes a new version of the CarePlan and a Provenance (provenance.html) naming who
did it, when, and which version it made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fhir_server.care.program import PROGRAM_SYSTEM, instant, now, read_named
from fhir_server.fhir.errors import FhirError, Issue, error
from fhir_server.store.repository import Repository

PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"
BARRIER_SYSTEM = "https://careweave.example.org/fhir/CodeSystem/cw-barrier"
# How often an active plan's goals must show progress (and the plan be reviewed): a quarter.
REVIEW_INTERVAL = timedelta(days=90)
# The notes a step leaves on the plan start with these; the worklist reads them to know when it was last reviewed.
APPROVED, REVIEWED = "Approved", "Reviewed"
_OPEN_GOALS = ("proposed", "planned", "accepted", "active", "on-hold")
_PEOPLE = ("Practitioner", "PractitionerRole")
_PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


@dataclass
class _Plan:
    """A care plan with what it refers to, read once: problems and barriers, goals, interventions."""

    resource: dict
    addressed: dict[str, dict | None]
    goals: dict[str, dict | None]
    interventions: dict[str, dict | None]

    @property
    def active(self) -> bool:
        return self.resource.get("status") == "active"


def quality_check(repo: Repository, care_plan_id: str, as_of: datetime | None = None) -> list[Issue]:
    """Every way the plan falls short of the documentation standard (empty when it meets it)."""
    plan = _gather(repo, repo.read("CarePlan", care_plan_id).resource())
    return list(_findings(plan, as_of or datetime.now(UTC)))


def activate(repo: Repository, care_plan_id: str, approved_by: str) -> dict:
    """The PCP's approval: a draft (or on-hold) plan that meets the standard becomes active."""
    return _step(repo, care_plan_id, approved_by, "approvedBy", ("draft", "on-hold"), "active", "plan-approval",
                 "attester", APPROVED, None)


def review(repo: Repository, care_plan_id: str, reviewed_by: str, note: str | None) -> dict:
    """The periodic review of an active plan, with what the reviewers noted."""
    return _step(repo, care_plan_id, reviewed_by, "reviewedBy", ("active",), "active", "plan-review",
                 "verifier", REVIEWED, note)


def close(repo: Repository, care_plan_id: str, closed_by: str, reason: str) -> dict:
    """Closure of a plan whose goals are all settled (achieved, cancelled or otherwise ended)."""
    return _step(repo, care_plan_id, closed_by, "closedBy", ("active", "on-hold"), "completed", "plan-closure",
                 "performer", "Closed", reason, closing=True)


def _step(repo: Repository, care_plan_id: str, who: str, who_name: str, from_statuses: tuple[str, ...],
          to_status: str, activity: str, role: str, verb: str, text: str | None, closing: bool = False) -> dict:
    stored = repo.read("CarePlan", care_plan_id)
    plan = _gather(repo, stored.resource())
    status = plan.resource.get("status")
    if status not in from_statuses:
        raise FhirError(409, [Issue("business-rule", f"a care plan that is {status} cannot be "
                                                     f"{verb.lower()} (it must be {' or '.join(from_statuses)})",
                                    expression=("CarePlan.status",))])
    read_named(repo, who, _PEOPLE, who_name)
    findings = [f for f in _findings(plan, datetime.now(UTC), closing) if f.severity == "error"]
    if findings:
        raise FhirError(422, findings)
    when = now()
    updated = copy.deepcopy(plan.resource)
    updated["status"] = to_status
    period = updated.setdefault("period", {})
    if to_status == "active":
        period.setdefault("start", when)
    if closing:
        period["end"] = when
    contributors = updated.setdefault("contributor", [])
    if {"reference": who} not in contributors:
        contributors.append({"reference": who})
    updated.setdefault("note", []).append({"authorReference": {"reference": who}, "time": when,
                                           "text": f"{verb}" + (f": {text}" if text else "")})
    written, _ = repo.update("CarePlan", care_plan_id, updated, if_match=stored.etag)
    repo.create({
        "resourceType": "Provenance",
        "target": [{"reference": f"CarePlan/{care_plan_id}/_history/{written.version_id}"}],
        "recorded": when,
        "activity": {"coding": [{"system": PROGRAM_SYSTEM, "code": activity}]},
        "agent": [{"type": {"coding": [{"system": _PARTICIPANT_TYPE, "code": role}]}, "who": {"reference": who}}],
        **({"reason": [{"text": text}]} if text else {}),
    })
    return written.resource()


def _gather(repo: Repository, resource: dict) -> _Plan:
    def targets(references: list, resource_type: str) -> dict[str, dict | None]:
        found: dict[str, dict | None] = {}
        for item in references:
            reference = (item or {}).get("reference") if isinstance(item, dict) else None
            if isinstance(reference, str):
                found[reference] = _resolve(repo, reference, resource_type)
        return found

    return _Plan(resource, targets(resource.get("addresses") or [], "Condition"),
                 targets(resource.get("goal") or [], "Goal"),
                 targets([a.get("reference") for a in resource.get("activity") or []], ""))


def _resolve(repo: Repository, reference: str, resource_type: str) -> dict | None:
    kind, _, id = reference.partition("/")
    if (resource_type and kind != resource_type) or not id or "/" in id:
        return None
    try:
        return repo.read(kind, id).resource()
    except FhirError:
        return None


_Rule = Callable[[_Plan, datetime], Iterator[tuple[str, str]]]


def _findings(plan: _Plan, as_of: datetime, closing: bool = False) -> Iterator[Issue]:
    """The rules' findings as OperationOutcome issues, located in the plan (or on the goal or request)."""
    rules: list[tuple[str, _Rule]] = [*_RULES, *([("cp-8", _goals_settled)] if closing else [])]
    for key, rule in rules:
        for expression, message in rule(plan, as_of):
            yield Issue("business-rule", f"{message} ({key})", "error", (expression,))


def _addresses_a_problem(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    if not plan.addressed:
        yield "CarePlan.addresses", "the plan addresses no problem: add the member's problems it works on"
    for index, (reference, condition) in enumerate(plan.addressed.items()):
        if condition is None:
            yield f"CarePlan.addresses[{index}]", f"{reference} is not a Condition on this server"


def _has_a_care_team(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    if not plan.resource.get("careTeam"):
        yield "CarePlan.careTeam", "the plan has no care team: name the team of member, PCP and coordinator"


def _goals_address_problems(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    if not plan.goals:
        yield "CarePlan.goal", "the plan has no goal: agree at least one with the member and the PCP"
    for index, (reference, goal) in enumerate(plan.goals.items()):
        where = f"CarePlan.goal[{index}]"
        if goal is None:
            yield where, f"{reference} is not a Goal on this server"
            continue
        addressed = {a.get("reference") for a in goal.get("addresses") or []}
        if not addressed & set(plan.addressed):
            yield where, f"{reference} addresses none of the plan's problems: link it to the problem it works on"


def _goals_have_targets(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    for index, (reference, goal) in enumerate(plan.goals.items()):
        targets = (goal or {}).get("target") or []
        if goal is not None and not any(t.get("dueDate") or t.get("dueDuration") for t in targets):
            yield f"CarePlan.goal[{index}]", f"{reference} has no target with a due date: say what and by when"


def _interventions_pertain_to_goals(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    for index, (reference, request) in enumerate(plan.interventions.items()):
        where = f"CarePlan.activity[{index}].reference"
        if request is None:
            yield where, f"{reference} is not on this server"
            continue
        goals = {e.get("valueReference", {}).get("reference") for e in request.get("extension") or []
                 if e.get("url") == PERTAINS_TO_GOAL}
        if not goals & set(plan.goals):
            yield where, (f"{reference} pertains to none of the plan's goals: add a pertainsToGoal extension "
                          "naming the goal it serves")


def _barriers_are_worked(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    """A barrier has an intervention (a request for it, or for a goal that addresses it) or a note."""
    for index, (reference, condition) in enumerate(plan.addressed.items()):
        if condition is None or not _is_barrier(condition) or condition.get("note"):
            continue
        goals = {g for g, goal in plan.goals.items()
                 if goal and reference in {a.get("reference") for a in goal.get("addresses") or []}}
        worked = any(request and (reference in {r.get("reference") for r in request.get("reasonReference") or []}
                                  or goals & {e.get("valueReference", {}).get("reference")
                                              for e in request.get("extension") or []
                                              if e.get("url") == PERTAINS_TO_GOAL})
                     for request in plan.interventions.values())
        if not worked:
            yield f"CarePlan.addresses[{index}]", (f"the barrier {reference} has no intervention and no note: "
                                                   "plan what will be done about it, or note why nothing is")


def _progress_is_recent(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    """On an active plan, each open goal shows progress (achievementStatus, dated) within the interval."""
    if not plan.active:
        return
    since = as_of - REVIEW_INTERVAL
    for index, (reference, goal) in enumerate(plan.goals.items()):
        if goal is None or goal.get("lifecycleStatus") not in _OPEN_GOALS:
            continue
        dates = [goal.get("statusDate"), *(n.get("time") for n in goal.get("note") or [])]
        recent = [d for d in dates if isinstance(d, str) and instant(d) >= since]
        if not goal.get("achievementStatus") or not recent:
            yield f"CarePlan.goal[{index}]", (f"{reference} shows no progress in the last "
                                              f"{REVIEW_INTERVAL.days} days: record its achievement status "
                                              "(statusDate) or a dated note")


def _goals_settled(plan: _Plan, as_of: datetime) -> Iterator[tuple[str, str]]:
    for index, (reference, goal) in enumerate(plan.goals.items()):
        if goal is not None and goal.get("lifecycleStatus") in _OPEN_GOALS:
            yield f"CarePlan.goal[{index}]", (f"{reference} is still {goal['lifecycleStatus']}: complete or "
                                              "cancel it before closing the plan")


def _is_barrier(condition: dict) -> bool:
    return any(c.get("system") == BARRIER_SYSTEM for c in (condition.get("code") or {}).get("coding") or [])


_RULES: list[tuple[str, _Rule]] = [
    ("cp-1", _addresses_a_problem),
    ("cp-2", _has_a_care_team),
    ("cp-3", _goals_address_problems),
    ("cp-4", _goals_have_targets),
    ("cp-5", _interventions_pertain_to_goals),
    ("cp-6", _barriers_are_worked),
    ("cp-7", _progress_is_recent),
]


def as_of_date(text: str | None) -> datetime | None:
    """`asOf` of $quality-check: a date or dateTime; None for now."""
    if text is None:
        return None
    try:
        return instant(text)
    except ValueError:
        raise error(400, "invalid", f"asOf is a date or dateTime, not {text!r}", "asOf") from None
