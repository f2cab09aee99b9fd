"""Enrolment of a member in the program (`Patient/[id]/$enroll`) and leaving it (`$disenroll`).

Enrolling writes, in the request's one transaction, what the program's profiles describe: the member's
verbal agreement as a Consent (cw-enrollment-consent: the member agreed, the coordinator verified it by
phone), the EpisodeOfCare of the enrolment (cw-program-enrollment), the CareTeam of member, PCP and
coordinator (cw-care-team) and a draft CarePlan (cw-care-plan) for the coordinator and the PCP to fill.
A member can be enrolled only with their agreement and while their primary-care practice takes part in
the program (care/participation.py). Disenrolling finishes the episode with its reason
(disenrollment-reason), ends the team, revokes the plans still open and makes the consent inactive; each
of those is a new version, so the history stays.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from fhir_server.care.program import (
    DISENROLLMENT_SYSTEM,
    DISENROLLMENT_URL,
    PROGRAM,
    PROGRAM_SYSTEM,
    SNOMED,
    VERIFIED_BY_URL,
    member_practice,
    now,
    open_episodes,
    participation_status,
    profile,
    read_named,
    reference_parts,
    search,
)
from fhir_server.fhir.errors import FhirError, Issue, bad_request, error
from fhir_server.store.repository import Repository

# CareTeam.participant.role codes the cw-care-team slices are cut by (SNOMED CT).
MEMBER_ROLE = {"system": SNOMED, "code": "116154003", "display": "Patient"}
PCP_ROLE = {"system": SNOMED, "code": "446050000", "display": "Primary care physician"}
COORDINATOR_ROLE = {"system": SNOMED, "code": "768820003", "display": "Care coordinator"}
_PEOPLE = ("Practitioner", "PractitionerRole")
# The program's consent policy that the member agrees to (Consent.policy; ppc-1 asks for one).
PROGRAM_POLICY = "https://careweave.example.org/fhir/policy/program-consent"
_OPEN_PLANS = ("draft", "active", "on-hold")


def enroll(repo: Repository, patient_id: str, coordinator: str, pcp: str, agreement: bool | None,
           agreement_date: str, script: str | None = None) -> dict[str, str]:
    """Enrol the member; the references of the Consent, EpisodeOfCare, CareTeam and CarePlan written."""
    patient = repo.read("Patient", patient_id).resource()
    if agreement is not True:
        raise error(422, "business-rule", "the member has not agreed to join the program: enrolment needs their "
                                          "agreement, given by phone (agreement=true)", "agreement")
    _check_date(agreement_date, "agreementDate")
    read_named(repo, pcp, _PEOPLE, "pcp")
    read_named(repo, coordinator, _PEOPLE, "coordinator")
    if script is not None:
        read_named(repo, script, ("QuestionnaireResponse",), "script")
    practice = member_practice(repo, patient)
    if practice is None:
        raise error(422, "business-rule", f"Patient/{patient_id} has no primary-care practice on record "
                                          "(generalPractitioner): the program enrols members through their practice",
                    "Patient.generalPractitioner")
    status = participation_status(practice)
    if status != "agreed":
        raise error(422, "business-rule", f"the member's practice Organization/{practice['id']} does not take part in "
                                          f"the program (participation: {status or 'not recorded'}), so its members "
                                          "cannot be enrolled", "Patient.generalPractitioner")
    if open_episodes(repo, patient_id):
        raise FhirError(409, [Issue("duplicate", f"Patient/{patient_id} is already enrolled in the program")])
    plan = _plan_organization(repo, coordinator)
    member = f"Patient/{patient_id}"
    consent = repo.create(_consent(member, coordinator, plan, agreement_date, script))[0].reference
    team = repo.create(_care_team(member, pcp, coordinator, plan, agreement_date))[0].reference
    episode = repo.create(_episode(member, coordinator, plan, team, agreement_date))[0].reference
    care_plan = repo.create(_care_plan(member, coordinator, pcp, team))[0].reference
    return {"consent": consent, "episodeOfCare": episode, "careTeam": team, "carePlan": care_plan}


def disenroll(repo: Repository, patient_id: str, reason: str, text: str | None = None) -> dict[str, list[str]]:
    """End the member's enrolment; the references of what was closed, by kind."""
    repo.read("Patient", patient_id)
    if not reason:
        raise bad_request("reason is required: a code of the program's disenrollment reasons", "reason")
    episodes = open_episodes(repo, patient_id)
    if not episodes:
        raise error(422, "business-rule", f"Patient/{patient_id} is not enrolled in the program", "Patient")
    ended = now()
    member = f"Patient/{patient_id}"
    closed: dict[str, list[str]] = {"episodeOfCare": [], "careTeam": [], "carePlan": [], "consent": []}
    for episode in episodes:
        finished = copy.deepcopy(episode)
        period = finished.setdefault("period", {})
        began = {"start": period["start"]} if period.get("start") else {}
        finished.setdefault("statusHistory", []).append({"status": episode["status"],
                                                         "period": {**began, "end": ended}})
        finished["status"] = "finished"
        period["end"] = ended
        concept = {"coding": [{"system": DISENROLLMENT_SYSTEM, "code": reason}], **({"text": text} if text else {})}
        finished["extension"] = [e for e in finished.get("extension") or [] if e.get("url") != DISENROLLMENT_URL]
        finished["extension"].append({"url": DISENROLLMENT_URL, "valueCodeableConcept": concept})
        closed["episodeOfCare"].append(_replace(repo, finished, "EpisodeOfCare"))
        for team in finished.get("team") or []:
            closed["careTeam"] += _end_team(repo, team.get("reference", ""), ended)
    for care_plan in search(repo, "CarePlan", [("subject", member), ("status", ",".join(_OPEN_PLANS)),
                                               ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")]):
        revoked = copy.deepcopy(care_plan)
        revoked["status"] = "revoked"
        revoked.setdefault("period", {})["end"] = ended
        closed["carePlan"].append(_replace(repo, revoked, "CarePlan"))
    for consent in search(repo, "Consent", [("patient", member), ("status", "active"),
                                            ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")]):
        inactive = copy.deepcopy(consent)
        inactive["status"] = "inactive"
        inactive.setdefault("provision", {}).setdefault("period", {})["end"] = ended
        closed["consent"].append(_replace(repo, inactive, "Consent"))
    return closed


def _replace(repo: Repository, resource: dict, resource_type: str) -> str:
    stored, _ = repo.update(resource_type, resource["id"], resource)
    return stored.reference


def _end_team(repo: Repository, reference: str, ended: str) -> list[str]:
    if not reference.startswith("CareTeam/"):
        return []
    try:
        team = copy.deepcopy(repo.read("CareTeam", reference.partition("/")[2]).resource())
    except FhirError as exc:
        if exc.status in (404, 410):  # the team is gone already: nothing to end
            return []
        raise
    if team.get("status") != "active":
        return []
    team["status"] = "inactive"
    team.setdefault("period", {})["end"] = ended
    return [_replace(repo, team, "CareTeam")]


def _check_date(text: str | None, name: str) -> None:
    """A FHIR dateTime: a date, or a date and time with its zone (datatypes.html#dateTime), not in the future."""
    if not text:
        raise bad_request(f"{name} is required", name)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} is a FHIR dateTime (2026-12-01 or 2026-12-01T10:30:00Z), not {text!r}",
                          name) from None
    if "T" in text and when.tzinfo is None:
        raise bad_request(f"{name} gives a time, so it needs its time zone (Z or +hh:mm)", name)
    if (when if when.tzinfo else when.replace(tzinfo=UTC)) > datetime.now(UTC):
        raise bad_request(f"{name} is in the future: the member's agreement must already have been given", name)


def _plan_organization(repo: Repository, coordinator: str) -> str:
    """The health plan the coordinator works for: the organization of their PractitionerRole."""
    resource_type, id = reference_parts(coordinator, _PEOPLE, "coordinator")
    roles = [repo.read("PractitionerRole", id).resource()] if resource_type == "PractitionerRole" else \
        search(repo, "PractitionerRole", [("practitioner", coordinator), ("active", "true")])
    for role in roles:
        organization = (role.get("organization") or {}).get("reference")
        if isinstance(organization, str) and organization.startswith("Organization/"):
            return organization
    raise error(422, "business-rule", f"the coordinator {coordinator} has no active role at an organization "
                                      "(PractitionerRole.organization): the program needs the plan they work for",
                "coordinator")


def _consent(member: str, coordinator: str, plan: str, agreed: str, script: str | None) -> dict:
    return {
        "resourceType": "Consent", "meta": {"profile": [profile("cw-enrollment-consent")]},
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "treatment"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}, {"coding": [PROGRAM]}],
        "patient": {"reference": member}, "dateTime": agreed, "performer": [{"reference": member}],
        "organization": [{"reference": plan}], "policy": [{"uri": PROGRAM_POLICY}],
        **({"sourceReference": {"reference": script}} if script else {}),
        "verification": [{
            "extension": [{"url": VERIFIED_BY_URL, "valueReference": {"reference": coordinator}}],
            "verified": True, "verifiedWith": {"reference": member}, "verificationDate": agreed}],
        "provision": {"type": "permit", "period": {"start": agreed}},
    }


def _care_team(member: str, pcp: str, coordinator: str, plan: str, agreed: str) -> dict:
    return {
        "resourceType": "CareTeam", "meta": {"profile": [profile("cw-care-team")]},
        "status": "active", "category": [{"coding": [PROGRAM]}], "subject": {"reference": member},
        "period": {"start": agreed},
        "participant": [{"role": [{"coding": [role]}], "member": {"reference": who}}
                        for role, who in ((MEMBER_ROLE, member), (PCP_ROLE, pcp), (COORDINATOR_ROLE, coordinator))],
        "managingOrganization": [{"reference": plan}],
    }


def _episode(member: str, coordinator: str, plan: str, team: str, agreed: str) -> dict:
    return {
        "resourceType": "EpisodeOfCare", "meta": {"profile": [profile("cw-program-enrollment")]},
        "status": "active", "type": [{"coding": [PROGRAM], "text": PROGRAM["display"]}],
        "patient": {"reference": member}, "managingOrganization": {"reference": plan},
        "period": {"start": agreed}, "careManager": {"reference": coordinator}, "team": [{"reference": team}],
    }


def _care_plan(member: str, coordinator: str, pcp: str, team: str) -> dict:
    return {
        "resourceType": "CarePlan", "meta": {"profile": [profile("cw-care-plan")]},
        "status": "draft", "intent": "plan",
        "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                                  "code": "assess-plan"}]}, {"coding": [PROGRAM]}],
        "title": "Chronic-care coordination plan", "subject": {"reference": member}, "created": now(),
        "author": {"reference": coordinator}, "contributor": [{"reference": coordinator}, {"reference": pcp}],
        "careTeam": [{"reference": team}],
    }
