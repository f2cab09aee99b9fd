"""The shapes and words the PCP report's sections share (care/pcp_report.py): a Section, the Report, the
facts the sections are written from (and what they cite), and small readers and phrasings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from fhir_server.care.careplan import BARRIER_SYSTEM
from fhir_server.care.program import codings, day_of
from fhir_server.fhir.errors import FhirError
from fhir_server.store.repository import Repository

_CLINICAL_ACTIVE = frozenset({"active", "recurrence", "relapse"})
_NOT_A_CONDITION = frozenset({"refuted", "entered-in-error"})


@dataclass(frozen=True)
class Section:
    """One section of the report: its key (Composition.section.code.text), title, prose, bulleted items and
    the references it cites (Composition.section.entry)."""

    key: str
    title: str
    paragraphs: tuple[str, ...]
    items: tuple[str, ...]
    entries: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    title: str
    heading: str
    date: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Previous:
    """The member's last report made here: its day, what its document cited (by reference, with the version
    cited) and the findings its alerts section named (DetectedIssue identifiers)."""

    timestamp: str
    cited: dict[str, dict]
    alerts: frozenset[str]


@dataclass
class Facts:
    """What the sections are written from. `cited` holds every resource a section names, by reference, for
    the document; `changes` what is new since the last report, as the sections find it."""

    member: str
    patient: dict
    as_of: date
    previous: Previous | None
    conditions: list[dict]  # the member's active Conditions, problems and barriers
    coordinator: str | None = None  # the care coordinator's Practitioner or PractitionerRole, when there is one
    cited: dict[str, dict] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)

    def cite(self, resource: dict) -> str:
        reference = f"{resource['resourceType']}/{resource['id']}"
        self.cited[reference] = resource
        return reference

    def is_new(self, reference: str) -> bool:
        return self.previous is not None and reference not in self.previous.cited

    def has_changed(self, resource: dict) -> bool:
        """Cited by the last report in another version."""
        if self.previous is None:
            return False
        before = self.previous.cited.get(f"{resource['resourceType']}/{resource['id']}")
        return before is not None and (before.get("meta") or {}).get("versionId") != \
            (resource.get("meta") or {}).get("versionId")


def read(repo: Repository, reference: str, resource_type: str) -> dict | None:
    """The resource a reference names, if it is on the server and readable under the grant."""
    kind, _, id = reference.partition("/")
    if not id or "/" in id or (resource_type and kind != resource_type):
        return None
    try:
        return repo.read(kind, id).resource()
    except FhirError:
        return None


def active(condition: dict, as_of: date) -> bool:
    """A problem the member has: clinically active, neither refuted nor entered in error, begun by `as_of`."""
    if {c for _, c in codings(condition.get("verificationStatus"))} & _NOT_A_CONDITION:
        return False
    began = day_of(condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start")
                 or condition.get("recordedDate"))
    status = {c for _, c in codings(condition.get("clinicalStatus"))}
    return (began is None or began <= as_of) and (bool(status & _CLINICAL_ACTIVE) if status else
                                                  not any(k.startswith("abatement") for k in condition))


def is_barrier(condition: dict) -> bool:
    return any(system == BARRIER_SYSTEM for system, _ in codings(condition.get("code")))




def name_of(resource: dict) -> str:
    for name in resource.get("name") or []:
        text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
        if text:
            return text
    return f"{resource.get('resourceType', 'Patient')}/{resource.get('id', '?')}"


def age_of(patient: dict, as_of: date) -> int | None:
    born = day_of(patient.get("birthDate"))
    if born is None:
        return None
    return as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))


def in_words(concept: dict | None) -> str:
    """A CodeableConcept in words: its text, else its first display without SNOMED CT's semantic tag."""
    concept = concept or {}
    text = concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")),
                                       None) or next((c.get("code") for c in concept.get("coding") or []), "unnamed")
    for tag in (" (disorder)", " (finding)", " (situation)", " (procedure)", " (regime/therapy)"):
        text = text.removesuffix(tag)
    return text


def in_sentence(name: str) -> str:
    """A problem's name inside a sentence: "Type 2 diabetes" reads "type 2 diabetes"; "COPD" stays."""
    first = name.split(" ")[0]
    return name[0].lower() + name[1:] if first[:1].isupper() and first[1:].islower() else name


def start(encounter: dict) -> str:
    period = encounter.get("period") or {}
    return period.get("start") or period.get("end") or ""


def counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def and_(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def more(found: Sequence[object], shown: int, what: str = "") -> list[str]:
    return [f"and {len(found) - shown} more" + (f" {what}" if what else "")] if len(found) > shown else []
