"""What a grant lets a request touch, and that rule as SQL (SMART App Launch, scopes-and-launch-context.html).

An `Access` is made from a token's scopes by the auth layer and handed to the repository, which applies it
inside every statement it runs: reads, searches and their includes, history, and the checks around writes.
Nothing above the repository filters results, so no route can forget to.

Each `Rule` is one granted scope:
- a resource type (or `*`) and the interactions granted, as SMART's letters: `c` create; `r` read, vread
  and instance history; `u` update and patch; `d` delete; `s` search and type or system history;
- optionally, search criteria that narrow it (`patient/Observation.rs?category=laboratory`);
- optionally, `patients`: the Patient compartments it is confined to (the launch patient of `patient/`
  scopes; the members a coordinator is assigned for `user/` scopes). A resource of a type in the Patient
  compartment is then reachable only if it is in one of those compartments (compartment membership rows,
  compartmentdefinition.html), a Patient only if it is one of them. Types outside the Patient compartment
  (Practitioner, Organization, Medication, Location…) hold no one patient's record: the rule's type and
  criteria alone govern them.

A resource is reachable for an interaction when some rule for it allows it; rules are OR-ed. A type with no
rule for an interaction is refused with 403 before any data is read, so the refusal says nothing about what
is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import ColumnElement, and_, exists, false, or_, true

from fhir_server.fhir.errors import FhirError, Issue
from fhir_server.fhir.search_parameters import compartment_types
from fhir_server.search.parse import Criterion
from fhir_server.store.tables import INDEX_TABLES

CM = INDEX_TABLES["compartment"]
INTERACTIONS = "cruds"


@dataclass(frozen=True)
class Rule:
    """One granted scope: `resource_type` (or `*`), its interaction letters, and the criteria that narrow it."""

    resource_type: str
    interactions: frozenset[str]
    criteria: tuple[Criterion, ...] = ()
    patients: frozenset[str] | None = None

    def covers(self, resource_type: str, interaction: str) -> bool:
        return interaction in self.interactions and self.resource_type in ("*", resource_type)


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
        if rule.patients is not None:
            conditions.append(in_patient_compartments(outer, rule.patients))
        options.append(and_(*conditions) if conditions else true())
    return or_(*options) if options else false()


def in_patient_compartments(outer, patients: frozenset[str]) -> ColumnElement[bool]:
    """Outside the Patient compartment's types, or a member of one of `patients`' compartments."""
    cm = CM.alias("member")  # an alias of its own: `outer` may be the membership table itself
    member = exists().where(cm.c.resource_type == outer.c.resource_type, cm.c.id == outer.c.id,
                            cm.c.compartment_type == "Patient", cm.c.compartment_id.in_(sorted(patients)))
    return or_(outer.c.resource_type.not_in(sorted(patient_compartment_types())), member)
