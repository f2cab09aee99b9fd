"""The program's care-plan work: plans activated, reviewed and closed, and goals met (docs/measures.md).

- cw-care-plans (cohort of care plans, three groups): the program CarePlans approved by the PCP (made
  active), reviewed, and closed in the period, each step known by the Provenance its operation records
  (care/careplan.py: plan-approval, plan-review, plan-closure).
- cw-goals-met (proportion of goals): of the goals of the members' program care plans that were due in the
  period (a target due date in it) or settled in it (an achievement status dated in it), those achieved
  or sustained. Goals proposed, cancelled, rejected or entered in error are not counted.
Both are stratified by the member's practice.
"""

from __future__ import annotations

from fhir_server.care.measures.report import Evaluation, Tally
from fhir_server.care.measures.subjects import NO_STRATUM, batches, practice_of
from fhir_server.care.program import PROGRAM, PROGRAM_SYSTEM, codings, day_of, every

CARE_PLANS = "https://careweave.example.org/fhir/Measure/cw-care-plans"
GOALS = "https://careweave.example.org/fhir/Measure/cw-goals-met"
STEPS = ("plan-approval", "plan-review", "plan-closure")  # the Measure's groups, in order
ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
MET = frozenset({"achieved", "sustaining"})
SETTLED = frozenset({"achieved", "sustaining", "not-achieved", "no-progress", "not-attainable"})
_NOT_COUNTED = frozenset({"proposed", "cancelled", "rejected", "entered-in-error"})


def care_plans(evaluation: Evaluation) -> list[Tally]:
    repo, period = evaluation.repo, evaluation.period
    stepped: dict[str, dict[str, str]] = {step: {} for step in STEPS}  # step -> CarePlan -> Provenance
    for provenance in every(repo, "Provenance", [("recorded", f"ge{period.start}"), ("recorded", f"le{period.end}")]):
        steps = {c for s, c in codings(provenance.get("activity")) if s == PROGRAM_SYSTEM and c in STEPS}
        for target in provenance.get("target") or []:
            parts = str(target.get("reference", "")).split("/")  # CarePlan/id/_history/version
            if len(parts) >= 2 and parts[0] == "CarePlan" and parts[1]:
                for step in steps:
                    stepped[step].setdefault(f"CarePlan/{parts[1]}", f"Provenance/{provenance['id']}")
    plans = _program_plans(evaluation, {p for found in stepped.values() for p in found})
    strata = practice_of(repo, set(plans.values()))
    tallies = []
    for step in STEPS:
        tally = Tally({"initial-population": {p for p in stepped[step] if p in plans}})
        for plan in tally.populations["initial-population"]:
            tally.strata[plan] = strata.get(plans[plan], NO_STRATUM)
            tally.add_evidence(plan, stepped[step][plan])
        tallies.append(tally)
    return tallies


def goals_met(evaluation: Evaluation) -> list[Tally]:
    repo, period = evaluation.repo, evaluation.period
    plans = {}
    for plan in every(repo, "CarePlan", [("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")]):
        member = (plan.get("subject") or {}).get("reference")
        if evaluation.members.includes(member) and plan.get("status") not in ("entered-in-error", "draft"):
            for goal in plan.get("goal") or []:
                if str(goal.get("reference", "")).startswith("Goal/"):
                    plans[goal["reference"]] = member
    tally = Tally({code: set() for code in ("initial-population", "denominator", "numerator")})
    for batch in batches(sorted(plans)):
        for goal in every(repo, "Goal", [("_id", ",".join(r.partition("/")[2] for r in batch))]):
            reference = f"Goal/{goal['id']}"
            if goal.get("lifecycleStatus") in _NOT_COUNTED:
                continue
            achievement = {c for s, c in codings(goal.get("achievementStatus")) if s == ACHIEVEMENT}
            settled_on = day_of(goal.get("statusDate")) if achievement & SETTLED else None
            due = [d for t in goal.get("target") or [] if (d := day_of(t.get("dueDate")))]
            if not (settled_on and period.start <= settled_on <= period.end
                    or any(period.start <= d <= period.end for d in due)):
                continue
            tally.populations["initial-population"].add(reference)
            tally.populations["denominator"].add(reference)
            tally.add_evidence(reference, reference)
            if achievement & MET and (settled_on is None or settled_on <= period.end):
                tally.populations["numerator"].add(reference)
    strata = practice_of(repo, {plans[g] for g in tally.populations["initial-population"]})
    tally.strata.update({g: strata.get(plans[g], NO_STRATUM) for g in tally.populations["initial-population"]})
    return [tally]


def _program_plans(evaluation: Evaluation, references: set[str]) -> dict[str, str]:
    """The program CarePlans among `references` whose member is in scope, with their member."""
    found = {}
    for batch in batches(sorted(references)):
        for plan in every(evaluation.repo, "CarePlan", [("_id", ",".join(r.partition("/")[2] for r in batch)),
                                                        ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")]):
            member = (plan.get("subject") or {}).get("reference")
            if evaluation.members.includes(member):
                found[f"CarePlan/{plan['id']}"] = member
    return found
