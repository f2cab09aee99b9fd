"""Whom an evaluation covers, and the practice each member belongs to.

`$evaluate-measure` (measure-operation-evaluate-measure.html) takes a `subject` (a Patient, or a Group of
them) and a `practitioner` (the members whose PCP that is); the program adds `practice` (an Organization:
its members). Without any, every Patient the caller may read is in scope. A member's practice, the stratum
the program's measures report by, is the Organization among their `generalPractitioner`, or that of the
PractitionerRole or Practitioner there, as care/program.py's member_practice reads it, but from one read of
all PractitionerRoles instead of one read per member.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from fhir_server.care.program import every, read_named, reference_parts
from fhir_server.store.repository import Repository

_BATCH = 100  # references per search
NO_STRATUM = "none"  # the stratum of a subject the stratifier finds no value for (no practice, no sender)


@dataclass(frozen=True)
class Scope:
    """The members an evaluation covers (Patient references); None for every Patient the caller may read."""

    patients: frozenset[str] | None = None

    def includes(self, patient: str | None) -> bool:
        return patient is not None and (self.patients is None or patient in self.patients)


def scope(repo: Repository, subject: str | None, practice: str | None, practitioner: str | None) -> Scope:
    """The members the inputs name, each input narrowing the others; 422 naming an input that is not there."""
    chosen: frozenset[str] | None = None
    if subject is not None:
        chosen = _subject(repo, subject)
    for name, reference, allowed in (("practice", practice, ("Organization",)),
                                     ("practitioner", practitioner, ("Practitioner",))):
        if reference is not None:
            target = read_named(repo, reference, allowed, name)
            found = _attributed(repo, f"{allowed[0]}/{target['id']}")
            chosen = found if chosen is None else chosen & found
    return Scope(chosen)


def batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]


def patients(repo: Repository, members: Scope) -> dict[str, dict]:
    """The Patient resources in scope, by reference."""
    if members.patients is None:
        return {f"Patient/{p['id']}": p for p in every(repo, "Patient", [])}
    found = {}
    for batch in batches(sorted(members.patients)):
        ids = ",".join(reference.partition("/")[2] for reference in batch)
        found.update({f"Patient/{p['id']}": p for p in every(repo, "Patient", [("_id", ids)])})
    return found


class Practices:
    """The practice (an Organization reference) of each member, from their generalPractitioner."""

    def __init__(self, repo: Repository) -> None:
        self._of_role: dict[str, str] = {}
        self._of_practitioner: dict[str, str] = {}
        for role in every(repo, "PractitionerRole", []):
            organization = (role.get("organization") or {}).get("reference")
            if not isinstance(organization, str) or not organization.startswith("Organization/"):
                continue
            self._of_role[f"PractitionerRole/{role['id']}"] = organization
            practitioner = (role.get("practitioner") or {}).get("reference")
            if isinstance(practitioner, str):
                # A practitioner working at several practices counts for the first by role id (a stable choice).
                self._of_practitioner.setdefault(practitioner, organization)

    def of(self, patient: dict) -> str | None:
        for gp in patient.get("generalPractitioner") or []:
            target = gp.get("reference") if isinstance(gp, dict) else None
            if not isinstance(target, str):
                continue
            if target.startswith("Organization/"):
                return target
            found = self._of_role.get(target) or self._of_practitioner.get(target)
            if found:
                return found
        return None


def practice_of(repo: Repository, members: set[str]) -> dict[str, str]:
    """The practice of each member (a Patient reference), `none` when they have none: their stratum."""
    practices = Practices(repo)
    found = patients(repo, Scope(frozenset(members))) if members else {}
    return {reference: practices.of(patient) or NO_STRATUM for reference, patient in found.items()}


def _subject(repo: Repository, subject: str) -> frozenset[str]:
    resource_type, id = reference_parts(subject, ("Patient", "Group"), "subject")
    resource = read_named(repo, subject, ("Patient", "Group"), "subject")
    if resource_type == "Patient":
        return frozenset({f"Patient/{id}"})
    entities = [(m.get("entity") or {}).get("reference") for m in resource.get("member") or [] if not m.get("inactive")]
    return frozenset(e for e in entities if isinstance(e, str) and e.startswith("Patient/"))


def _attributed(repo: Repository, target: str) -> frozenset[str]:
    """The Patients whose generalPractitioner is `target`, or a PractitionerRole of it (or at it)."""
    parameter = "organization" if target.startswith("Organization/") else "practitioner"
    roles = [f"PractitionerRole/{r['id']}" for r in every(repo, "PractitionerRole", [(parameter, target)])]
    found: set[str] = set()
    for batch in batches([target, *roles]):
        found.update(f"Patient/{p['id']}" for p in every(repo, "Patient", [("general-practitioner", ",".join(batch))]))
    return frozenset(found)
