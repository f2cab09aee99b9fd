"""Patient education (`Patient/[id]/$assign-education`): the program's own plain-language materials, given
to a member to read and then talked through with their coordinator (the teach-back, care/teach_back.py).

The materials are data: one Markdown file per topic in knowledge/education/, written for the program, and
an index naming each one's title, the guideline its facts follow, and the keys that choose it for a member
(docs/clinical-knowledge.md). Each material is a DocumentReference (documentreference.html) with a stable
id, `cw-education-<material>`: current, typed and categorised from the program's cw-education codes, its
text as a base64 Markdown attachment, its guideline in `description`, and the chronic-condition ValueSet
it is for, when it has one, as a logical `context.related`. Assigning writes that DocumentReference in the
request's transaction when it is missing or differs from the shipped file (so no load step is needed, and
an unchanged material is written once), then, per material:

- a Task (task.html) for the member to review it, shaped as SDOHCC's Task for Patient: `ready` (acceptance
  is a given for reading material), intent order, code review-material, `for` and `owner` the member,
  `requester` the coordinator, `focus` the DocumentReference, `restriction.period.end` the due date;
- a CommunicationRequest (cw-communication-request) to send it: active, `basedOn` the Task, the member as
  subject and recipient, the coordinator as requester and sender, the DocumentReference as its payload,
  and the medium asked for (mail, portal or phone, as v3 ParticipationMode).

Without named materials, those that fit the member are chosen: the material of each chronic-condition
ValueSet an active Condition of theirs is coded from, the material of each drug class an active medicine of
theirs belongs to, and the adherence material for two or more distinct active medicines (reconciled as the
medication review reconciles them). A material with an open education Task for the member is not assigned
twice: naming it is a 409, and a fitting one is left out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

from fhir_server.care.medreview import knowledge as medication_knowledge
from fhir_server.care.medreview import review
from fhir_server.care.outreach import OPEN_TASK
from fhir_server.care.program import BASE, codings, now, profile, read_named, search, value_set_codes
from fhir_server.fhir.errors import FhirError, Issue, bad_request, error
from fhir_server.store.repository import Repository, new_id
from fhir_server.store.terminology import StoredTerminology

MATERIALS = Path(__file__).with_name("knowledge") / "education"
EDUCATION_SYSTEM = BASE + "CodeSystem/cw-education"
MATERIAL_ID_SYSTEM = BASE + "sid/education-material"
REVIEW_MATERIAL = {"system": EDUCATION_SYSTEM, "code": "review-material", "display": "Review material"}
EDUCATION_MATERIAL = {"system": EDUCATION_SYSTEM, "code": "education-material", "display": "Education material"}
PATIENT_EDUCATION = {"system": EDUCATION_SYSTEM, "code": "patient-education", "display": "Patient education"}
_MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
# How the material reaches the member (v3 ParticipationMode): a letter, the member portal, read out by phone.
MEDIUMS = {"mail": {"system": _MODE, "code": "MAILWRIT", "display": "mail"},
           "portal": {"system": _MODE, "code": "ONLINEWRIT", "display": "online written"},
           "phone": {"system": _MODE, "code": "PHONE", "display": "telephone"}}
_PEOPLE = ("Practitioner", "PractitionerRole")
_CLINICAL_ACTIVE = "active,recurrence,relapse"
_NOT_A_CONDITION = frozenset({"refuted", "entered-in-error"})


@dataclass(frozen=True)
class Material:
    id: str
    title: str
    language: str
    guideline: str
    keys: dict
    text: str

    @property
    def reference(self) -> str:
        return f"DocumentReference/cw-education-{self.id}"


@dataclass(frozen=True)
class Assignment:
    material: str
    document_reference: str
    task: str
    communication_request: str


@cache
def materials() -> dict[str, Material]:
    """The shipped materials by id, in the index's order, read once."""
    index = json.loads((MATERIALS / "index.json").read_text(encoding="utf-8"))
    return {m["id"]: Material(m["id"], m["title"], m["language"], m["guideline"], m["keys"],
                              (MATERIALS / m["file"]).read_text(encoding="utf-8"))
            for m in index["materials"]}


def document_reference(material: Material) -> dict:
    """The material as the DocumentReference the server keeps of it."""
    data = material.text.encode("utf-8")
    condition = material.keys.get("condition")
    return {
        "resourceType": "DocumentReference", "id": material.reference.partition("/")[2],
        "meta": {"profile": [profile("cw-education-material")]},
        "identifier": [{"system": MATERIAL_ID_SYSTEM, "value": material.id}],
        "status": "current", "docStatus": "final",
        "type": {"coding": [EDUCATION_MATERIAL], "text": material.title},
        "category": [{"coding": [PATIENT_EDUCATION]}],
        "description": f"{material.title}: plain-language text written by the program. Follows {material.guideline}.",
        "content": [{"attachment": {"contentType": "text/markdown", "language": material.language,
                                    "data": base64.b64encode(data).decode("ascii"), "size": len(data),
                                    "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
                                    "title": material.title}}],
        **({"context": {"related": [{"type": "ValueSet", "display": "the condition the material is for",
                                     "identifier": {"system": "urn:ietf:rfc:3986", "value": condition}}]}}
           if condition else {}),
    }


def assign(repo: Repository, patient_id: str, named: list[str], coordinator: str, due: date | None = None,
           medium: str | None = None) -> list[Assignment]:
    """Give the member the named materials (or those that fit them); what was written, per material."""
    repo.read("Patient", patient_id)
    member = f"Patient/{patient_id}"
    if medium is not None and medium not in MEDIUMS:
        raise bad_request(f"medium is one of {', '.join(MEDIUMS)}, not {medium!r}", "medium")
    if due is not None and due < datetime.now(UTC).date():
        raise bad_request(f"due {due} is in the past", "due")
    unknown = [name for name in named if name not in materials()]
    if unknown:
        raise bad_request(f"no education material {', '.join(unknown)}; the materials are "
                          f"{', '.join(materials())}", "material")
    read_named(repo, coordinator, _PEOPLE, "coordinator")
    chosen = list(dict.fromkeys(named)) or _fitting(repo, patient_id, member)
    if not chosen:
        raise error(422, "business-rule", f"no education material fits {member}: no active chronic condition or "
                                          "medicine a material is for; name the material to assign", "material")
    already = _open_tasks(repo, member)
    taken = [m for m in chosen if materials()[m].reference in already]
    if taken and (named or len(taken) == len(chosen)):
        raise FhirError(409, [Issue("duplicate", "the member already has an open education Task for " + ", ".join(
            f"{m} ({already[materials()[m].reference]})" for m in taken), expression=("material",))])
    return [_assign_one(repo, materials()[m], member, coordinator, due, medium) for m in chosen if m not in taken]


def _assign_one(repo: Repository, material: Material, member: str, coordinator: str, due: date | None,
                medium: str | None) -> Assignment:
    document = store_material(repo, material)
    authored = now()
    task_id = new_id()
    task = {
        "resourceType": "Task", "meta": {"profile": [profile("cw-education-task")]},
        "status": "ready", "intent": "order", "priority": "routine", "code": {"coding": [REVIEW_MATERIAL]},
        "description": f"Read \"{material.title}\" and talk it through with your care coordinator",
        "focus": {"reference": document, "display": material.title}, "for": {"reference": member},
        "authoredOn": authored, "lastModified": authored, "requester": {"reference": coordinator},
        "owner": {"reference": member},
        **({"restriction": {"period": {"end": due.isoformat()}}} if due else {}),
    }
    repo.create(task, id=task_id)
    request = {
        "resourceType": "CommunicationRequest", "meta": {"profile": [profile("cw-communication-request")]},
        "basedOn": [{"reference": f"Task/{task_id}"}], "status": "active",
        "category": [{"coding": [PATIENT_EDUCATION]}],
        **({"medium": [{"coding": [MEDIUMS[medium]]}]} if medium else {}),
        "subject": {"reference": member},
        "payload": [{"contentReference": {"reference": document, "display": material.title}}],
        "authoredOn": authored, "requester": {"reference": coordinator}, "recipient": [{"reference": member}],
        "sender": {"reference": coordinator},
    }
    written = repo.create(request, id=new_id())[0].reference
    return Assignment(material.id, document, f"Task/{task_id}", written)


def store_material(repo: Repository, material: Material) -> str:
    """Write the material's DocumentReference when it is missing or differs from the shipped file, so an
    unchanged material keeps its one version; its reference."""
    wanted = document_reference(material)
    id = wanted["id"]
    try:
        stored = repo.read("DocumentReference", id).resource()
    except FhirError as exc:
        if exc.status not in (404, 410):
            raise
        stored = None
    if stored is None or _content(stored) != _content(wanted):
        repo.update("DocumentReference", id, wanted)
    return material.reference


def _content(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k != "meta"}


def is_education_task(task: dict) -> bool:
    return (EDUCATION_SYSTEM, REVIEW_MATERIAL["code"]) in codings(task.get("code"))


def _open_tasks(repo: Repository, member: str) -> dict[str, str]:
    """The member's open education Tasks, by the DocumentReference they are on."""
    tasks = search(repo, "Task", [("patient", member), ("status", ",".join(OPEN_TASK)),
                                  ("code", f"{EDUCATION_SYSTEM}|{REVIEW_MATERIAL['code']}")], count=1000)
    return {t["focus"]["reference"]: f"Task/{t['id']}" for t in tasks if (t.get("focus") or {}).get("reference")}


def _fitting(repo: Repository, patient_id: str, member: str) -> list[str]:
    """The materials the member's active chronic Conditions and medicines call for, in the index's order."""
    by_code: dict[tuple[str, str], set[str]] = {}
    terminology = StoredTerminology(repo)
    for material in materials().values():
        url = material.keys.get("condition")
        if url is None:
            continue
        for key in value_set_codes(terminology, url, f"the education material {material.id}"):
            by_code.setdefault(key, set()).add(material.id)
    fitting: set[str] = set()
    for condition in search(repo, "Condition", [("patient", member), ("clinical-status", _CLINICAL_ACTIVE)],
                            count=1000):
        if not {c for _, c in codings(condition.get("verificationStatus"))} & _NOT_A_CONDITION:
            for key in codings(condition.get("code")):
                fitting |= by_code.get(key, set())
    medicines = review(repo, patient_id, persist=False)
    classes = medication_knowledge().classes
    for material in materials().values():
        drug_class = material.keys.get("drugClass")
        members = {m["rxcui"] or "name:" + m["name"] for m in classes[drug_class]["members"]} if drug_class else set()
        if members & set(medicines.medicines):
            fitting.add(material.id)
        least = material.keys.get("activeMedicines")
        if least is not None and len(medicines.medicines) + len(medicines.unmapped) >= least:
            fitting.add(material.id)
    return [m for m in materials() if m in fitting]
