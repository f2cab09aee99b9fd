"""The teach-back that ends a member's review of an education material (`Task/[id]/$record-teach-back`).

In a teach-back the coordinator asks the member to say in their own words what the material taught; how
well they could is the outcome (cw-teach-back-outcome). Recording it writes, in one transaction:

- an Observation (observation.html): final, code teach-back (cw-education), the member as subject, the
  material's DocumentReference as focus, the coordinator as performer and the outcome as its value;
- the education Task's end, with the outcome as businessStatus and as an output (and the Observation as
  another): understood, partly understood and not understood complete it; declined cancels it with a
  statusReason, as SDOHCC's Task for Patient does when the member turns a task down. A Task not yet begun
  passes through in-progress on the way to completed, so that each version follows the Task state machine
  (task.html#statemachine): ready -> in-progress -> completed, requested -> accepted -> in-progress;
- the CommunicationRequest that sent the material: completed, or revoked when the member declined;
- for partly understood and not understood, a new education Task on the same material, based on this one,
  for the coordinator to teach it again: the teach-back method repeats until the member can explain it.

A Task that is not an education Task is refused with 422, one that is no longer open with 409.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from fhir_server.care.education import EDUCATION_SYSTEM, REVIEW_MATERIAL, is_education_task
from fhir_server.care.outreach import OPEN_TASK
from fhir_server.care.program import BASE, now, profile, read_named, search
from fhir_server.fhir.errors import FhirError, Issue, bad_request, error
from fhir_server.store.repository import Repository, StoredResource, new_id

OUTCOME_SYSTEM = BASE + "CodeSystem/cw-teach-back-outcome"
OUTCOMES = {"understood": "Understood", "partly-understood": "Partly understood",
            "not-understood": "Not understood", "declined": "Declined"}
RETEACH = frozenset({"partly-understood", "not-understood"})  # outcomes that call for teaching it again
TEACH_BACK = {"system": EDUCATION_SYSTEM, "code": "teach-back", "display": "Teach-back"}
# The statuses an open Task passes through before it may complete (task.html#statemachine).
_BEFORE_COMPLETED = {"requested": ("accepted", "in-progress"), "received": ("accepted", "in-progress"),
                     "accepted": ("in-progress",), "ready": ("in-progress",), "in-progress": (), "on-hold": ()}
_PEOPLE = ("Practitioner", "PractitionerRole")


@dataclass(frozen=True)
class TeachBack:
    task: str
    status: str
    observation: str
    communication_request: str | None
    follow_up: str | None


def record(repo: Repository, task_id: str, outcome: str, coordinator: str, note: str | None = None) -> TeachBack:
    """Record the teach-back of an education Task; what was written."""
    if outcome not in OUTCOMES:
        raise bad_request(f"outcome is one of {', '.join(OUTCOMES)}, not {outcome!r}", "outcome")
    stored = repo.read("Task", task_id)
    task = copy.deepcopy(stored.resource())
    if not is_education_task(task) or not (task.get("for") or {}).get("reference"):
        raise error(422, "business-rule", f"Task/{task_id} is not an education Task (code review-material, for "
                                          "a member): a teach-back ends a member's review of a material", "Task.code")
    if task.get("status") not in OPEN_TASK:
        raise FhirError(409, [Issue("business-rule", f"Task/{task_id} is {task.get('status')}: a teach-back is "
                                                     "recorded on an open education Task",
                                    expression=("Task.status",))])
    read_named(repo, coordinator, _PEOPLE, "coordinator")
    member = task["for"]["reference"]
    document = (task.get("focus") or {}).get("reference")
    recorded = now()
    result = {"coding": [{"system": OUTCOME_SYSTEM, "code": outcome, "display": OUTCOMES[outcome]}]}
    observation = repo.create({
        "resourceType": "Observation", "status": "final", "code": {"coding": [TEACH_BACK]},
        "subject": {"reference": member}, **({"focus": [{"reference": document}]} if document else {}),
        "effectiveDateTime": recorded, "performer": [{"reference": coordinator}], "valueCodeableConcept": result,
        **({"note": [{"authorReference": {"reference": coordinator}, "time": recorded, "text": note}]}
           if note else {}),
    }, id=new_id())[0].reference
    declined = outcome == "declined"
    for status in () if declined else _BEFORE_COMPLETED[task["status"]]:
        task |= {"status": status, "lastModified": recorded}
        stored = repo.update("Task", task_id, task, if_match=stored.etag)[0]
    task |= {"status": "cancelled" if declined else "completed", "businessStatus": result, "lastModified": recorded}
    if declined:
        task["statusReason"] = {"text": "the member declined to talk the material through"}
    task.setdefault("output", []).extend([{"type": {"coding": [TEACH_BACK]}, "valueCodeableConcept": result},
                                          {"type": {"coding": [TEACH_BACK]}, "valueReference": {"reference":
                                                                                              observation}}])
    if note:
        task.setdefault("note", []).append({"authorReference": {"reference": coordinator}, "time": recorded,
                                            "text": note})
    repo.update("Task", task_id, task, if_match=stored.etag)
    request = _close_request(repo, task_id, "revoked" if declined else "completed")
    follow_up = _teach_again(repo, task, coordinator, outcome, recorded) if outcome in RETEACH else None
    return TeachBack(f"Task/{task_id}", task["status"], observation, request, follow_up)


def _close_request(repo: Repository, task_id: str, status: str) -> str | None:
    """End the active CommunicationRequest that sent the material for the Task, if there is one."""
    found = search(repo, "CommunicationRequest", [("based-on", f"Task/{task_id}"), ("status", "active")], count=1)
    if not found:
        return None
    request = found[0]
    stored: StoredResource = repo.update("CommunicationRequest", request["id"], {**request, "status": status})[0]
    return stored.reference


def _teach_again(repo: Repository, task: dict, coordinator: str, outcome: str, authored: str) -> str:
    """A new education Task on the same material, based on the one just ended."""
    again = {
        "resourceType": "Task", "meta": {"profile": [profile("cw-education-task")]},
        "basedOn": [{"reference": f"Task/{task['id']}"}], "status": "ready", "intent": "order",
        "priority": "routine", "code": {"coding": [REVIEW_MATERIAL]},
        "description": f"Teach again ({OUTCOMES[outcome].lower()} at the last teach-back): "
                       f"{(task.get('focus') or {}).get('display', 'the material')}",
        "focus": task["focus"], "for": task["for"], "authoredOn": authored, "lastModified": authored,
        "requester": {"reference": coordinator}, "owner": task.get("owner") or task["for"],
    }
    return repo.create(again, id=new_id())[0].reference
