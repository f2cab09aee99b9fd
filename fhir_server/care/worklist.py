"""A coordinator's worklist (`Practitioner/[id]/$worklist`): the work that is theirs, most pressing first.

Each item is a Task (task.html) made for the answer: `focus` is what the work is on (an outreach Task,
a referral Task, a care plan, an alert), `for` the member, `owner` the coordinator, `priority` how
pressing it is, `restriction.period.end` when it is due, and `reasonCode.text` why it is on the list and
at that priority, in words. Items come from:

- outreach: the coordinator's open outreach Tasks, due at their callback time (or when opened); one with
  no call yet is a new candidate, assigned to the coordinator by giving them the Task
  (care/assignment.py);
- referrals: open referral Tasks of the coordinator's members with no change (`lastModified`, else the
  version's lastUpdated) in 14 days;
- care plans: the members' active program care plans whose review falls due within 7 days;
- alerts: DetectedIssues about the members that nobody has acted on (no mitigation);
- care gaps: the members' open gaps (care/care_gaps.py), urgent when a result is out of control;
- teach-backs: the education Tasks the coordinator gave members (care/education.py) that are still open,
  from 3 days before they are due (their `restriction.period.end`, else 14 days after they were given),
  urgent once overdue.

The order is by priority, then by the member's clinical risk (their active conditions), then by due
date, then by what the item is on, so the same data always gives the same list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from fhir_server.care.care_gaps import open_gaps
from fhir_server.care.careplan import APPROVED, REVIEW_INTERVAL, REVIEWED
from fhir_server.care.education import EDUCATION_SYSTEM, REVIEW_MATERIAL
from fhir_server.care.outreach import OPEN_TASK
from fhir_server.care.program import OPEN_EPISODE, PROGRAM, PROGRAM_SYSTEM, instant, search
from fhir_server.care.referrals import TASK_CODES
from fhir_server.store.repository import Repository

STALLED = timedelta(days=14)  # a referral with no change for this long needs chasing
TEACH_BACK_AFTER = timedelta(days=14)  # when a teach-back with no due date falls due
TEACH_BACK_LEAD = timedelta(days=3)  # a teach-back shows this long before it is due
REVIEW_LEAD = timedelta(days=7)  # a plan review shows this long before it is due
PRIORITIES = ("stat", "asap", "urgent", "routine")  # request-priority, most pressing first
WORKLIST_ITEM = {"system": PROGRAM_SYSTEM, "code": "worklist-item", "display": "Worklist item"}
_BATCH = 100  # members per search of their resources
_OPEN_REFERRAL = ("requested", "received", "accepted", "ready", "in-progress", "on-hold")
_ALERT_PRIORITY = {"high": "asap", "moderate": "urgent", "low": "routine"}
_URGENT_GAPS = frozenset({"diabetes-hba1c-poor-control", "hypertension-bp-uncontrolled"})  # a result out of control


@dataclass(frozen=True)
class _Item:
    kind: str
    focus: str
    member: str | None
    priority: str
    due: datetime
    reason: str


def worklist(repo: Repository, practitioner_id: str, now: datetime | None = None) -> list[dict]:
    """The coordinator's worklist as Task resources, in order."""
    now = now or datetime.now(UTC)
    coordinator = f"Practitioner/{practitioner_id}"
    repo.read("Practitioner", practitioner_id)
    roles = [f"PractitionerRole/{r['id']}" for r in search(repo, "PractitionerRole", [("practitioner", coordinator)])]
    members = sorted({e["patient"]["reference"] for e in search(repo, "EpisodeOfCare", [
        ("care-manager", coordinator), ("status", ",".join(OPEN_EPISODE)),
        ("type", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")], count=1000)})
    items = [*_outreach(repo, [coordinator, *roles], now), *_referrals(repo, members, now),
             *_plan_reviews(repo, members, now), *_alerts(repo, members), *_care_gaps(repo, members, now),
             *_teach_backs(repo, [coordinator, *roles], now)]
    risk = _risk(repo, sorted({i.member for i in items if i.member}))
    items.sort(key=lambda i: (PRIORITIES.index(i.priority), -risk.get(i.member, 0), i.due, i.focus))
    return [_task(item, coordinator, risk.get(item.member, 0), now) for item in items]


def _outreach(repo: Repository, owners: list[str], now: datetime) -> list[_Item]:
    tasks = search(repo, "Task", [("owner", ",".join(owners)), ("status", ",".join(OPEN_TASK)),
                                  ("code", f"{PROGRAM_SYSTEM}|outreach-call")], count=1000)
    items = []
    for task in tasks:
        callback = ((task.get("restriction") or {}).get("period") or {}).get("start")
        due = instant(callback or task.get("authoredOn") or task["meta"]["lastUpdated"])
        # An outreach Task with no call yet is a candidate assigned to the coordinator, to call first.
        what = "callback" if callback else "outreach call" if task.get("output") else "first call to a new candidate"
        if due < now:
            priority, when = "asap", f"overdue since {due.date().isoformat()}"
        elif due - now <= timedelta(days=1):
            priority, when = "urgent", f"due {due.isoformat(timespec='minutes')}"
        else:
            priority, when = "routine", f"due {due.date().isoformat()}"
        items.append(_Item("outreach", f"Task/{task['id']}", _member(task), priority, due, f"{what} {when}"))
    return items


def _referrals(repo: Repository, members: list[str], now: datetime) -> list[_Item]:
    items = []
    for task in _for_members(repo, "Task", "patient", members, [("code", f"{TASK_CODES}|fulfill"),
                                                                 ("status", ",".join(_OPEN_REFERRAL))]):
        changed = instant(task.get("lastModified") or task["meta"]["lastUpdated"])
        idle = now - changed
        if idle < STALLED:
            continue
        priority = "urgent" if idle >= 2 * STALLED else "routine"
        reason = f"referral {task['status']} with no progress for {idle.days} days (since {changed.date().isoformat()})"
        items.append(_Item("referral", f"Task/{task['id']}", _member(task), priority, changed + STALLED, reason))
    return items


def _plan_reviews(repo: Repository, members: list[str], now: datetime) -> list[_Item]:
    items = []
    for plan in _for_members(repo, "CarePlan", "subject", members, [
            ("status", "active"), ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")]):
        reviews = [instant(n["time"]) for n in plan.get("note") or []
                   if isinstance(n.get("time"), str) and str(n.get("text", "")).startswith((APPROVED, REVIEWED))]
        last = max(reviews, default=instant((plan.get("period") or {}).get("start") or plan["meta"]["lastUpdated"]))
        due = last + REVIEW_INTERVAL
        if due - now > REVIEW_LEAD:
            continue
        late = due < now
        reason = (f"care plan review {'overdue since' if late else 'due'} {due.date().isoformat()} "
                  f"(last {last.date().isoformat()})")
        items.append(_Item("review", f"CarePlan/{plan['id']}", (plan.get("subject") or {}).get("reference"),
                           "urgent" if late else "routine", due, reason))
    return items


def _alerts(repo: Repository, members: list[str]) -> list[_Item]:
    items = []
    for issue in _for_members(repo, "DetectedIssue", "patient", members, []):
        if issue.get("status") in ("cancelled", "entered-in-error") or issue.get("mitigation"):
            continue
        severity = issue.get("severity", "moderate")
        about = (issue.get("code") or {}).get("text") or issue.get("detail") or "a detected issue"
        raised = instant(issue.get("identifiedDateTime") or issue["meta"]["lastUpdated"])
        items.append(_Item("alert", f"DetectedIssue/{issue['id']}", (issue.get("patient") or {}).get("reference"),
                           _ALERT_PRIORITY.get(severity, "urgent"), raised,
                           f"{severity} alert not yet acted on: {about}"))
    return items


def _care_gaps(repo: Repository, members: list[str], now: datetime) -> list[_Item]:
    """The members' open care gaps as of today: an out-of-control result is urgent, a missing test routine."""
    return [_Item(f"care-gap:{gap.code}", gap.last_result or member, member,
                  "urgent" if gap.code in _URGENT_GAPS else "routine", datetime.combine(gap.due, time(), UTC),
                  gap.evidence)
            for member, gaps in open_gaps(repo, members, now.date()).items() for gap in gaps]


def _teach_backs(repo: Repository, requesters: list[str], now: datetime) -> list[_Item]:
    """Open education Tasks the coordinator gave, once their teach-back call is near."""
    items = []
    for task in search(repo, "Task", [("requester", ",".join(requesters)), ("status", ",".join(OPEN_TASK)),
                                      ("code", f"{EDUCATION_SYSTEM}|{REVIEW_MATERIAL['code']}")], count=1000):
        end = ((task.get("restriction") or {}).get("period") or {}).get("end")
        given = instant(task.get("authoredOn") or task["meta"]["lastUpdated"])
        due = instant(end) if end else given + TEACH_BACK_AFTER
        if due - now > TEACH_BACK_LEAD:
            continue
        material = (task.get("focus") or {}).get("display") or (task.get("focus") or {}).get("reference", "material")
        late = due < now
        reason = (f"teach-back on \"{material}\" {'overdue since' if late else 'due'} {due.date().isoformat()} "
                  f"(given {given.date().isoformat()})")
        items.append(_Item("teach-back", f"Task/{task['id']}", _member(task), "urgent" if late else "routine",
                           due, reason))
    return items


def _risk(repo: Repository, members: list[str]) -> Counter:
    """The members' clinical risk, as the number of their active conditions."""
    return Counter(c["subject"]["reference"] for c in _for_members(
        repo, "Condition", "patient", members, [("clinical-status", "active,recurrence,relapse")]))


def _for_members(repo: Repository, resource_type: str, parameter: str, members: list[str],
                 criteria: list[tuple[str, str]]) -> list[dict]:
    found = []
    for start in range(0, len(members), _BATCH):
        batch = ",".join(members[start:start + _BATCH])
        found += search(repo, resource_type, [(parameter, batch), *criteria], count=1000)
    return found


def _member(task: dict) -> str | None:
    return (task.get("for") or {}).get("reference")


def _task(item: _Item, coordinator: str, risk: int, now: datetime) -> dict:
    conditions = f"{risk} active condition{'s' if risk != 1 else ''}"
    return {
        "resourceType": "Task",
        "identifier": [{"system": PROGRAM_SYSTEM + "/worklist", "value": f"{item.kind}:{item.focus}"}],
        "status": "ready", "intent": "plan", "priority": item.priority,
        "code": {"coding": [WORKLIST_ITEM]},
        "focus": {"reference": item.focus},
        **({"for": {"reference": item.member}} if item.member else {}),
        "authoredOn": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "owner": {"reference": coordinator},
        "restriction": {"period": {"end": item.due.replace(microsecond=0).isoformat().replace("+00:00", "Z")}},
        "reasonCode": {"text": f"{item.reason}; {item.priority}; member has {conditions}"},
    }
