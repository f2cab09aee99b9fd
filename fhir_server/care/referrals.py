"""The referral Task's state machine (SDOH Clinical Care / BSeR referral loop, task.html#statemachine).

A referral Task (cw-referral-task: `intent` order, `code` fulfill, `focus` the referral ServiceRequest)
moves as the performer takes the referral up and reports back:

    requested -> accepted | rejected          (received is allowed on the way)
    accepted  -> in-progress
    in-progress <-> on-hold
    in-progress | on-hold -> completed | failed
    any open status -> cancelled; any status -> entered-in-error

An update that moves a referral Task any other way is a 409 naming both statuses; a new Task may be
created in any status (an EHR sends its referrals as they stand).
"""

from __future__ import annotations

from fhir_server.care.program import profile
from fhir_server.fhir.errors import FhirError, Issue

TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
REFERRAL_TASK = profile("cw-referral-task")
_OPEN = ("draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold")
_NEXT: dict[str, set[str]] = {
    "draft": {"requested"},
    "requested": {"received", "accepted", "rejected"},
    "received": {"accepted", "rejected"},
    "accepted": {"in-progress"},
    "ready": {"in-progress"},
    "in-progress": {"on-hold", "completed", "failed"},
    "on-hold": {"in-progress", "completed", "failed"},
}


def is_referral_task(task: dict) -> bool:
    """A Task that claims the referral profile, or that asks for a ServiceRequest to be fulfilled."""
    if REFERRAL_TASK in ((task.get("meta") or {}).get("profile") or []):
        return True
    fulfil = any(c.get("system") == TASK_CODES and c.get("code") == "fulfill"
                 for c in (task.get("code") or {}).get("coding") or [])
    focus = (task.get("focus") or {}).get("reference", "")
    return fulfil and isinstance(focus, str) and focus.startswith("ServiceRequest/")


def check_transition(resource_type: str, previous: dict | None, resource: dict) -> None:
    """A write rule (store/repository.py): 409 when a referral Task's status moves off the state machine."""
    if resource_type != "Task" or previous is None or not (is_referral_task(resource) or is_referral_task(previous)):
        return  # a new Task may come in any status: an EHR sends its referrals as they stand
    status, before = resource.get("status"), previous.get("status")
    if status == before or status == "entered-in-error" or status == "cancelled" and before in _OPEN:
        return
    if status not in _NEXT.get(before, set()):
        raise _conflict(f"a referral Task that is {before} cannot become {status}")


def _conflict(message: str) -> FhirError:
    return FhirError(409, [Issue("business-rule", message, expression=("Task.status",))])
