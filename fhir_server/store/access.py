"""What a grant lets a request touch, and that rule as SQL (SMART App Launch, scopes-and-launch-context.html).

An `Access` is made from a token's scopes by the auth layer and handed to the repository, which applies it
inside every statement it runs: reads, searches and their includes, history, and the checks around writes.
Nothing above the repository filters results, so no route can forget to.

Each `Rule` is one granted scope:
- a resource type (or `*`) and the interactions granted, as SMART's letters: `c` create; `r` read, vread
  and instance history; `u` update and patch; `d` delete; `s` search and type or system history;
- optionally, search criteria that narrow it (`patient/Observation.rs?category=laboratory`);
- optionally, `patients`: the Patient compartments it is confined to: the launch patient of `patient/`
  scopes, or, for `user/` scopes, the patients the user is `Related` to, found in the data when the
  statement runs (so a new assignment counts at once, with no new token). A resource of a type in the
  Patient compartment is then reachable only if it is in one of those compartments (compartment membership
  rows, compartmentdefinition.html), a Patient only if it is one of them. Types outside the Patient
  compartment (Practitioner, Organization, Medication, Location…) hold no one patient's record: the rule's
  type and criteria alone govern them.

AuditEvent is the server's record of who did what (store/audit.py). No `*` rule reaches it; only a rule
that names it does, and auth/scopes.py makes one only for an administrator's `user/AuditEvent` scope.

A resource is reachable for an interaction when some rule for it allows it; rules are OR-ed. A type with no
rule for an interaction is refused with 403 before any data is read, so the refusal says nothing about what
is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select, true, union

from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.fhir.search_parameters import compartment_types
from fhir_server.search.parse import Criterion
from fhir_server.store.tables import INDEX_TABLES

CM = INDEX_TABLES["compartment"]
REF = INDEX_TABLES["reference"]
TOKEN = INDEX_TABLES["token"]
INTERACTIONS = "cruds"
# Types that a wildcard scope does not reach (see the module docstring).
NAMED_ONLY = frozenset({"AuditEvent"})


@dataclass(frozen=True)
class Related:
    """The patients a user is related to in the program's data (SMART `user/` scopes, which the spec leaves
    to the server's own rules):

    - a `coordinator` Practitioner: the members assigned to them, as a participant (themself or one of
      their PractitionerRoles) of the member's CareTeam that is not inactive or entered-in-error, or as
      care manager of the member's EpisodeOfCare that is not finished, cancelled or entered-in-error;
    - a `physician` Practitioner: the patients attributed to their practice, whose generalPractitioner is
      them, one of their PractitionerRoles, or the Organization of one of those roles.
    """

    role: str
    practitioner: str  # the Practitioner's id


@dataclass(frozen=True)
class Rule:
    """One granted scope: `resource_type` (or `*`), its interaction letters, and the criteria that narrow it."""

    resource_type: str
    interactions: frozenset[str]
    criteria: tuple[Criterion, ...] = ()
    patients: frozenset[str] | Related | None = None

    def covers(self, resource_type: str, interaction: str) -> bool:
        if interaction not in self.interactions:
            return False
        return self.resource_type == resource_type or (self.resource_type == "*" and resource_type not in NAMED_ONLY)


@dataclass(frozen=True)
class Access:
    """A grant as the repository applies it; `rules=None` is unrestricted (open mode, trusted internal work)."""

    rules: tuple[Rule, ...] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.rules is None

    def allows(self, resource_type: str, interaction: str) -> bool:
        """Whether some rule grants `interaction` on the type, whatever the resource."""
        return self.rules is None or any(r.covers(resource_type, interaction) for r in self.rules)

    def require(self, resource_type: str, interaction: str) -> None:
        """403 when the grant has no rule for this interaction on this type (decided before any query)."""
        if not self.allows(resource_type, interaction):
            raise FhirError(403, [Issue("forbidden", f"the access token does not grant {_NAMES[interaction]} "
                                                     f"on {resource_type}")])

    def needs_query(self, resource_type: str, interaction: str) -> bool:
        """Whether reaching a resource of this type takes a look at its data: not when some rule grants the
        interaction on the whole type, with neither criteria nor patients (`system/Patient.rs`)."""
        if self.rules is None:
            return False
        return not any(r.covers(resource_type, interaction) and not r.criteria and r.patients is None
                       for r in self.rules)

    def searchable_types(self, types: tuple[str, ...]) -> tuple[str, ...]:
        """Of `types`, those this grant may search."""
        return tuple(t for t in types if self.allows(t, "s"))


ALL = Access()
_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@cache
def patient_compartment_types() -> frozenset[str]:
    return frozenset(("Patient", *compartment_types("Patient")))


def visible(access: Access, outer, interaction: str, now: datetime, condition) -> ColumnElement[bool]:
    """The rows of `outer` (any selectable with `resource_type` and `id`) that `access` lets `interaction` reach.

    `condition(outer, resource_type, criterion, now)` is the search compiler's criterion-to-SQL function,
    passed in so that scope criteria mean exactly what the same search parameter means in a search.
    """
    if access.rules is None:
        return true()
    options = []
    for rule in access.rules:
        if interaction not in rule.interactions:
            continue
        scope = None if rule.resource_type == "*" else rule.resource_type
        conditions = [condition(outer, scope, c, now) for c in rule.criteria]
        if rule.resource_type != "*":
            conditions.insert(0, outer.c.resource_type == rule.resource_type)
        else:
            conditions.insert(0, outer.c.resource_type.not_in(sorted(NAMED_ONLY)))
        if rule.patients is not None:
            conditions.append(in_patient_compartments(outer, rule.patients))
        options.append(and_(*conditions) if conditions else true())
    return or_(*options) if options else false()


def in_patient_compartments(outer, patients: frozenset[str] | Related) -> ColumnElement[bool]:
    """Outside the Patient compartment's types, or a member of one of `patients`' compartments."""
    cm = CM.alias("member")  # an alias of its own: `outer` may be the membership table itself
    owners = related_patients(patients) if isinstance(patients, Related) else sorted(patients)
    member = exists().where(cm.c.resource_type == outer.c.resource_type, cm.c.id == outer.c.id,
                            cm.c.compartment_type == "Patient", cm.c.compartment_id.in_(owners))
    return or_(outer.c.resource_type.not_in(sorted(patient_compartment_types())), member)


_ENDED = {"CareTeam": ("inactive", "entered-in-error"), "EpisodeOfCare": ("finished", "cancelled", "entered-in-error")}


def related_patients(related: Related) -> Select:
    """The ids of the patients `related` is related to (see Related), read from the reference index."""
    roles = select(REF.c.id).where(REF.c.resource_type == "PractitionerRole", REF.c.param == "practitioner",
                                   REF.c.target_type == "Practitioner", REF.c.target_id == related.practitioner)
    if related.role == "physician":
        practices = select(REF.c.target_id).where(REF.c.resource_type == "PractitionerRole",
                                                  REF.c.param == "organization", REF.c.target_type == "Organization",
                                                  REF.c.id.in_(roles))
        gp = REF.alias("gp")
        return select(gp.c.id).where(gp.c.resource_type == "Patient", gp.c.param == "general-practitioner",
                                     _refers_to(gp, related.practitioner, roles, practices))
    if related.role == "coordinator":
        # R4's EpisodeOfCare `care-manager` indexes Practitioner references only.
        return union(_assigned("CareTeam", "participant", related.practitioner, roles),
                     _assigned("EpisodeOfCare", "care-manager", related.practitioner, roles))
    return select(REF.c.target_id).where(false())


def _refers_to(ref, practitioner: str, roles: Select, practices: Select | None = None) -> ColumnElement[bool]:
    options = [and_(ref.c.target_type == "Practitioner", ref.c.target_id == practitioner),
               and_(ref.c.target_type == "PractitionerRole", ref.c.target_id.in_(roles))]
    if practices is not None:
        options.append(and_(ref.c.target_type == "Organization", ref.c.target_id.in_(practices)))
    return or_(*options)


def _assigned(resource_type: str, member_param: str, practitioner: str, roles: Select) -> Select:
    """Patients of the `resource_type` records (CareTeam, EpisodeOfCare) that name the practitioner, and are
    not over."""
    subject, member, status = REF.alias("subject"), REF.alias("assignee"), TOKEN.alias("status")
    return select(subject.c.target_id).where(
        subject.c.resource_type == resource_type, subject.c.param == "patient", subject.c.target_type == "Patient",
        exists().where(member.c.resource_type == resource_type, member.c.id == subject.c.id,
                       member.c.param == member_param, _refers_to(member, practitioner, roles)),
        ~exists().where(status.c.resource_type == resource_type, status.c.id == subject.c.id,
                        status.c.param == "status", status.c.code.in_(_ENDED[resource_type])))
