"""Giving a member to a coordinator to call (`Patient/[id]/$assign-outreach`).

A candidate ($care-candidates) reaches a coordinator's worklist through an outreach Task the coordinator
owns (care/worklist.py: "first call to a new candidate"). Assigning writes that Task as cw-outreach-task:
requested, intent order, code outreach-call, `for` the member, `owner` the coordinator, `authoredOn` now,
with a note saying who assigned it when that is given. A member whose open outreach Task another coordinator
owns is reassigned: the Task is the same, in a new version naming the new owner, so the calls logged on it
stay with it. A member already enrolled, or already the coordinator's, is refused (422, 409).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from fhir_server.care.outreach import OUTREACH_CALL, open_outreach_task
from fhir_server.care.program import now, open_episodes, profile, read_named
from fhir_server.fhir.errors import FhirError, Issue, error
from fhir_server.store.repository import Repository

_PEOPLE = ("Practitioner", "PractitionerRole")


@dataclass(frozen=True)
class Assigned:
    task: str  # Task/id/_history/version
    previous_owner: str | None  # the coordinator it was taken from, when reassigned


def assign(repo: Repository, patient_id: str, coordinator: str, assigned_by: str | None = None) -> Assigned:
    """Give the member to the coordinator: a new outreach Task, or the open one with its new owner."""
    repo.read("Patient", patient_id)
    member = f"Patient/{patient_id}"
    read_named(repo, coordinator, _PEOPLE, "coordinator")
    if assigned_by is not None:
        read_named(repo, assigned_by, _PEOPLE, "assignedBy")
    if open_episodes(repo, patient_id):
        raise error(422, "business-rule", f"{member} is already enrolled in the program: there is no outreach to "
                                          "assign", "Patient")
    when = now()
    note = [{"time": when, "text": f"Assigned to {coordinator}", **(
        {"authorReference": {"reference": assigned_by}} if assigned_by else {})}]
    stored = open_outreach_task(repo, member)
    if stored is None:
        task = {"resourceType": "Task", "meta": {"profile": [profile("cw-outreach-task")]}, "status": "requested",
                "intent": "order", "code": {"coding": [OUTREACH_CALL]}, "for": {"reference": member},
                "authoredOn": when, "lastModified": when, "owner": {"reference": coordinator}, "note": note}
        written, _ = repo.create(task)
        return Assigned(f"Task/{written.id}/_history/{written.version_id}", None)
    task = copy.deepcopy(stored.resource())
    owner = (task.get("owner") or {}).get("reference")
    if owner == coordinator:
        raise FhirError(409, [Issue("duplicate", f"{member}'s outreach (Task/{stored.id}) is already "
                                                 f"{coordinator}'s", expression=("coordinator",))])
    task["owner"] = {"reference": coordinator}
    task["lastModified"] = when
    task.setdefault("note", []).extend(note)
    written, _ = repo.update("Task", stored.id, task, if_match=stored.etag)
    return Assigned(f"Task/{written.id}/_history/{written.version_id}", owner)
