"""A coordinator's outreach call, logged as it ends (`Patient/[id]/$log-outreach`).

The call is a Communication (profile cw-outreach-communication): its outcome is statusReason, and it is
completed when it spoke with the party, not-done when it did not (invariant cw-call-1). The member's open
outreach Task (cw-outreach-task) gathers the calls as outputs, with the latest outcome as businessStatus; a
call that reaches the party or is declined completes it. A callback the coordinator promises is a
CommunicationRequest (cw-communication-request) that the Task focuses on, due at restriction.period.start;
it is closed when a new one replaces it or the Task ends.

Unable to reach is the server's conclusion, never a call's outcome: when the member's failed calls since
the outreach last got an answer (a member call that made contact, or an outreach Task that ended) reach the
program's number, and the first of them is 30 days old or more, the Task fails with businessStatus
unable-to-reach. Only calls to the member count.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fhir_server.care.program import (
    BASE,
    PROGRAM_SYSTEM,
    extension_parts,
    instant,
    now,
    profile,
    read_named,
    search,
)
from fhir_server.fhir.errors import FhirError, Issue, bad_request, error
from fhir_server.search.parse import parse_query
from fhir_server.store.repository import Repository, StoredResource, new_id

OUTCOME_SYSTEM = BASE + "CodeSystem/cw-outreach-outcome"
OUTREACH_CALL_URL = profile("outreach-call")
# The outcomes a coordinator records (ValueSet cw-outreach-outcome without unable-to-reach, which is ours).
OUTCOMES = {"reached": "Reached", "declined": "Declined", "callback-requested": "Callback requested",
            "no-answer": "No answer", "voicemail": "Voicemail left", "wrong-number": "Wrong number"}
# The calls that spoke with the party live: completed Communications (cw-call-1); the others are not-done.
CONTACT_MADE = frozenset({"reached", "declined", "callback-requested"})
# The outcomes that end the outreach: the party said yes or no.
CLOSING = frozenset({"reached", "declined"})
UNABLE_TO_REACH = {"system": OUTCOME_SYSTEM, "code": "unable-to-reach", "display": "Unable to reach"}
PARTIES = ("member", "pcp", "specialist")
OUTREACH_CALL = {"system": PROGRAM_SYSTEM, "code": "outreach-call", "display": "Outreach call"}
PHONE = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode", "code": "PHONE",
         "display": "telephone"}
# Task statuses of work not yet done (task.html#statemachine).
OPEN_TASK = ("requested", "received", "accepted", "ready", "in-progress", "on-hold")
# How a callback CommunicationRequest is told from one the care plan asks for (its reasonCode's text).
CALLBACK = "callback"
# The least time the failed calls must span before the member counts as unable to reach.
UNREACHABLE_SPAN = timedelta(days=30)
_PEOPLE = ("Practitioner", "PractitionerRole")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


@dataclass(frozen=True)
class OutreachCall:
    """What the coordinator says about one call (the operation's inputs)."""

    party: str
    outcome: str
    note: str | None = None
    duration_seconds: int | None = None
    callback_at: str | None = None
    coordinator: str | None = None
    contact: str | None = None


@dataclass(frozen=True)
class LoggedCall:
    communication: str
    task: str
    task_status: str
    attempts: int  # the member's failed calls since the outreach last got an answer
    communication_request: str | None = None


def log_call(repo: Repository, patient_id: str, call: OutreachCall, attempts_allowed: int) -> LoggedCall:
    """Write the call, its callback and the outreach Task's new state; what was written."""
    _check(call)
    _check_callback_time(call.callback_at)
    patient = repo.read("Patient", patient_id).resource()
    member = f"Patient/{patient_id}"
    stored_task = open_outreach_task(repo, member)
    task = copy.deepcopy(stored_task.resource()) if stored_task else None
    coordinator = _coordinator(repo, call.coordinator, task)
    recipient = _recipient(repo, call, patient, member)
    task_id = stored_task.id if stored_task else new_id()
    sent = now()
    if task is None:
        task = _new_task(task_id, member, sent)
    if call.callback_at is not None:
        _check_before_deadline(task, call.callback_at)
    communication = _communication(call, member, f"Task/{task_id}", sent, coordinator, recipient)
    communication_ref = repo.create(communication, id=new_id())[0].reference
    attempts, first_failed = _failed_member_calls(repo, member)
    _update_task(task, call, communication_ref, coordinator, sent)
    if (call.party == "member" and call.outcome not in CONTACT_MADE and attempts >= attempts_allowed
            and first_failed is not None and first_failed <= instant(sent) - UNREACHABLE_SPAN):
        task["status"] = "failed"
        task["businessStatus"] = {"coding": [UNABLE_TO_REACH]}
        task["statusReason"] = {"text": f"{attempts} calls without reaching the member between "
                                        f"{first_failed.date().isoformat()} and {sent[:10]}"}
    request_ref = None
    if call.callback_at is not None:
        request_ref = _schedule_callback(repo, task, call, member, coordinator, recipient, sent)
    elif task["status"] in ("completed", "failed"):
        _close_callback(repo, _focus(repo, task), "completed" if task["status"] == "completed" else "revoked")
    if stored_task is None:
        repo.create(task, id=task_id)
    else:
        repo.update("Task", task_id, task, if_match=stored_task.etag)
    return LoggedCall(communication_ref, f"Task/{task_id}", task["status"], attempts, request_ref)


def _check(call: OutreachCall) -> None:
    if call.party not in PARTIES:
        raise bad_request(f"party is one of {', '.join(PARTIES)}, not {call.party!r}", "party")
    if call.outcome == UNABLE_TO_REACH["code"]:
        raise bad_request("unable-to-reach is not a call's outcome: the server concludes it from the member's "
                          "failed calls; give the outcome of this call", "outcome")
    if call.outcome not in OUTCOMES:
        raise bad_request(f"outcome is one of {', '.join(OUTCOMES)}, not {call.outcome!r}", "outcome")
    if call.party == "specialist" and call.contact is None:
        raise bad_request("contact is required for a call to a specialist: the Practitioner, PractitionerRole or "
                          "Organization called", "contact")
    if call.party != "specialist" and call.contact is not None:
        whom = "the member" if call.party == "member" else "the member's generalPractitioner"
        raise bad_request(f"contact is for calls to a specialist; a call to the {call.party} goes to {whom}",
                          "contact")


def _check_callback_time(text: str | None) -> None:
    """callbackAt is a dateTime to the second with a timezone, in the future."""
    if text is None:
        return
    if not _DATE_TIME.fullmatch(text):
        raise bad_request(f"callbackAt is a dateTime to the second with a timezone "
                          f"(2026-11-05T14:30:00-05:00), not {text!r}", "callbackAt")
    if datetime.fromisoformat(text) <= datetime.now(UTC):
        raise bad_request(f"callbackAt {text} is not in the future", "callbackAt")


def open_outreach_task(repo: Repository, member: str) -> StoredResource | None:
    """The member's open outreach Task; the one changed last when there are several."""
    query = parse_query("Task", [("patient", member), ("code", f"{PROGRAM_SYSTEM}|{OUTREACH_CALL['code']}"),
                                 ("status", ",".join(OPEN_TASK)), ("_sort", "-_lastUpdated"), ("_total", "none")])
    found = repo.search(query, count=1).resources
    return found[0] if found else None


def _coordinator(repo: Repository, given: str | None, task: dict | None) -> str:
    """Who made the call: the coordinator input, else the open Task's owner."""
    if given is not None:
        read_named(repo, given, _PEOPLE, "coordinator")
        return given
    owner = ((task or {}).get("owner") or {}).get("reference")
    if isinstance(owner, str) and owner.partition("/")[0] in _PEOPLE:
        return owner
    raise FhirError(422, [Issue("required", "coordinator is required: the member has no open outreach Task "
                                            "with an owner to take as the caller", expression=("coordinator",))])


def _recipient(repo: Repository, call: OutreachCall, patient: dict, member: str) -> dict:
    """Whom the call was to: the member, the member's first generalPractitioner, or the specialist."""
    if call.party == "member":
        return {"reference": member}
    if call.party == "pcp":
        for gp in patient.get("generalPractitioner") or []:
            if isinstance(gp.get("reference"), str):
                return {"reference": gp["reference"]}
        raise error(422, "business-rule", "the member has no generalPractitioner to call as the pcp", "party")
    read_named(repo, call.contact, ("Practitioner", "PractitionerRole", "Organization"), "contact")
    return {"reference": call.contact}


def _communication(call: OutreachCall, member: str, task: str, sent: str, coordinator: str,
                   recipient: dict) -> dict:
    """The call as cw-outreach-communication, with its outreach-call extension."""
    details = [{"url": "direction", "valueCode": "outbound"}, {"url": "party", "valueCode": call.party}]
    if call.duration_seconds is not None:
        details.append({"url": "duration", "valueDuration": {
            "value": call.duration_seconds, "unit": "s", "system": "http://unitsofmeasure.org", "code": "s"}})
    communication = {
        "resourceType": "Communication",
        "meta": {"profile": [profile("cw-outreach-communication")]},
        "extension": [{"url": OUTREACH_CALL_URL, "extension": details}],
        "partOf": [{"reference": task}],
        "status": "completed" if call.outcome in CONTACT_MADE else "not-done",
        "statusReason": {"coding": [_outcome(call.outcome)]},
        "category": [{"coding": [OUTREACH_CALL]}],
        "medium": [{"coding": [PHONE]}],
        "subject": {"reference": member},
        "sent": sent,
        "recipient": [recipient],
        "sender": {"reference": coordinator},
    }
    if call.note:
        communication["payload"] = [{"contentString": call.note}]
    return communication


def _new_task(task_id: str, member: str, authored: str) -> dict:
    return {"resourceType": "Task", "id": task_id, "status": "in-progress", "intent": "order",
            "code": {"coding": [OUTREACH_CALL]}, "for": {"reference": member}, "authoredOn": authored}


def _update_task(task: dict, call: OutreachCall, communication: str, coordinator: str, sent: str) -> None:
    """The call's mark on the Task: its outcome, a note, the Communication as an output, the new status."""
    profiles = task.setdefault("meta", {}).setdefault("profile", [])
    if profile("cw-outreach-task") not in profiles:
        profiles.append(profile("cw-outreach-task"))
    task.setdefault("owner", {"reference": coordinator})  # a new or unowned Task is the caller's from now on
    status = "completed" if call.outcome in CLOSING else "in-progress"
    if task.get("status") != status:
        task.pop("statusReason", None)  # it said why the Task was in its former status
    task["status"] = status
    task["businessStatus"] = {"coding": [_outcome(call.outcome)]}
    task["lastModified"] = sent
    text = f"{call.party} call, {OUTCOMES[call.outcome].lower()}" + (f": {call.note}" if call.note else "")
    task.setdefault("note", []).append({"authorReference": {"reference": coordinator}, "time": sent, "text": text})
    task.setdefault("output", []).append({"type": {"coding": [OUTREACH_CALL]},
                                          "valueReference": {"reference": communication}})


def _check_before_deadline(task: dict, callback_at: str) -> None:
    """A callback after the Task's deadline would break its restriction.period (per-1): 422 instead."""
    end = ((task.get("restriction") or {}).get("period") or {}).get("end")
    if not isinstance(end, str):
        return
    # A deadline given as a date lasts the whole day.
    late = callback_at[:len(end)] > end if len(end) <= 10 else instant(callback_at) > instant(end)
    if late:
        raise error(422, "business-rule", f"callbackAt {callback_at} is after the outreach Task's deadline {end}",
                    "callbackAt")


def _schedule_callback(repo: Repository, task: dict, call: OutreachCall, member: str, coordinator: str,
                       recipient: dict, authored: str) -> str:
    """Write the callback CommunicationRequest and focus the Task on it. A callback it replaces is completed;
    a care-plan request the Task was focused on stays linked, as the callback's basedOn."""
    request = {
        "resourceType": "CommunicationRequest",
        "meta": {"profile": [profile("cw-communication-request")]},
        # Unable to reach stops the outreach: a callback planned by the call that ends it is given up at once.
        "status": "revoked" if task["status"] == "failed" else "active",
        "category": [{"coding": [OUTREACH_CALL]}],
        "medium": [{"coding": [PHONE]}],
        "subject": {"reference": member},
        "payload": [{"contentString": "Call back" + (f": {call.note}" if call.note else "")}],
        "occurrenceDateTime": call.callback_at,
        "authoredOn": authored,
        "requester": {"reference": coordinator},
        "recipient": [recipient],
        "sender": {"reference": coordinator},
        "reasonCode": [{"coding": [_outcome(call.outcome)], "text": CALLBACK}],
    }
    previous = _focus(repo, task)
    if previous is not None and _is_callback(previous.resource()):
        _close_callback(repo, previous, "completed")
        request["replaces"] = [{"reference": previous.reference}]
        if previous.resource().get("basedOn"):
            request["basedOn"] = previous.resource()["basedOn"]
    elif previous is not None:
        request["basedOn"] = [{"reference": previous.reference}]
    written = repo.create(request, id=new_id())[0].reference
    task["focus"] = {"reference": written}
    task.setdefault("restriction", {}).setdefault("period", {})["start"] = call.callback_at
    return written


def _focus(repo: Repository, task: dict) -> StoredResource | None:
    """The CommunicationRequest the Task is focused on, if it is still there."""
    reference = (task.get("focus") or {}).get("reference")
    if not isinstance(reference, str) or not reference.startswith("CommunicationRequest/"):
        return None
    try:
        return repo.read("CommunicationRequest", reference.partition("/")[2])
    except FhirError as exc:
        if exc.status in (404, 410):
            return None
        raise


def _close_callback(repo: Repository, stored: StoredResource | None, status: str) -> None:
    """End a callback that is still active: made (completed) or given up (revoked)."""
    if stored is None or not _is_callback(stored.resource()) or stored.resource().get("status") != "active":
        return
    repo.update("CommunicationRequest", stored.id, {**stored.resource(), "status": status}, if_match=stored.etag)


def _is_callback(request: dict) -> bool:
    return any(reason.get("text") == CALLBACK for reason in request.get("reasonCode") or [])


def _failed_member_calls(repo: Repository, member: str) -> tuple[int, datetime | None]:
    """The member's failed calls since the outreach last got an answer, and when the first of them was.

    An answer is a member call that made contact, or an outreach Task that ended (its calls, and calls
    sent before it ended, start no new count)."""
    ended = search(repo, "Task", [("patient", member), ("code", f"{PROGRAM_SYSTEM}|{OUTREACH_CALL['code']}"),
                                  ("status", "completed,failed")])
    logged = {(output.get("valueReference") or {}).get("reference") for task in ended
              for output in task.get("output") or []}
    answered = max((instant(t.get("lastModified") or t["meta"]["lastUpdated"]) for t in ended), default=None)
    calls = [c for c in search(repo, "Communication", [
                 ("subject", member), ("category", f"{PROGRAM_SYSTEM}|{OUTREACH_CALL['code']}"),
                 ("status", "completed,not-done"), ("_sort", "-sent")], count=1000)
             if call_party(c) == "member" and isinstance(c.get("sent"), str)
             and f"Communication/{c['id']}" not in logged and (answered is None or instant(c["sent"]) >= answered)]
    # Newest first; calls logged within the same second are ordered by when they were written.
    calls.sort(key=lambda c: (instant(c["sent"]), instant(c["meta"]["lastUpdated"])), reverse=True)
    failed = [instant(c["sent"]) for c in itertools.takewhile(lambda c: c["status"] == "not-done", calls)]
    return len(failed), min(failed, default=None)


def call_party(communication: dict) -> str | None:
    """Whom an outreach call was to: its outreach-call extension's party (member, pcp, specialist)."""
    return extension_parts(communication, OUTREACH_CALL_URL).get("party", {}).get("valueCode")


def _outcome(code: str) -> dict:
    return {"system": OUTCOME_SYSTEM, "code": code, "display": OUTCOMES[code]}
