"""SMART scope grammar (fhir_server/auth/scopes.py), from tests/data/smart-scopes/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fhir_server.auth.scopes import ScopeError, access_for, parse_scope, parse_scopes
from fhir_server.store.access import Related

CASES = json.loads((Path(__file__).parents[1] / "data" / "smart-scopes" / "scopes-and-launch-context.json").read_text())


@pytest.mark.parametrize("case", CASES["valid"], ids=lambda c: c["scope"])
def test_valid_scopes(case):
    scope = parse_scope(case["scope"])
    assert (scope.context, scope.resource_type, scope.interactions, scope.version) == (
        case["context"], case["type"], case["interactions"], case["version"])
    assert [c.name for c in scope.criteria] == case.get("criteria", [])


@pytest.mark.parametrize("text", CASES["context"])
def test_context_and_identity_scopes_carry_no_data_rights(text):
    assert parse_scope(text) is None


@pytest.mark.parametrize("case", CASES["invalid"], ids=lambda c: c["scope"])
def test_invalid_scopes_are_refused_with_the_scope_named(case):
    with pytest.raises(ScopeError) as refused:
        parse_scope(case["scope"])
    assert repr(case["scope"]) in str(refused.value)


def test_a_scope_string_splits_into_data_and_context_scopes():
    resources, others = parse_scopes("openid fhirUser launch/patient patient/Observation.rs  offline_access")
    assert [s.text for s in resources] == ["patient/Observation.rs"]
    assert others == ["openid", "fhirUser", "launch/patient", "offline_access"]


def test_access_confines_each_context():
    resources, _ = parse_scopes("patient/Observation.rs user/Practitioner.r system/Organization.r")
    rules = {r.resource_type: r
             for r in access_for(resources, patient="p1", role="coordinator", practitioner="n1").rules}
    assert rules["Observation"].patients == frozenset({"p1"})
    assert rules["Practitioner"].patients == Related("coordinator", "n1")
    assert rules["Organization"].patients is None
    assert not access_for(resources).allows("Observation", "r")  # patient/ scopes need a patient
    access = access_for(resources, patient="p1")
    assert access.allows("Observation", "s") and not access.allows("Observation", "c")
    assert not access.allows("Condition", "r")


@pytest.mark.parametrize(("role", "practitioner", "confined_to"), [
    ("admin", None, None),
    ("physician", "d1", Related("physician", "d1")),
    ("coordinator", None, frozenset()),  # a coordinator not linked to a Practitioner has no members
    (None, None, frozenset()),
])
def test_user_scopes_follow_the_users_role(role, practitioner, confined_to):
    resources, _ = parse_scopes("user/Patient.rs")
    (rule,) = access_for(resources, role=role, practitioner=practitioner).rules
    assert rule.patients == confined_to


def test_the_audit_log_is_granted_only_by_name_and_only_to_administrators():
    named, _ = parse_scopes("user/AuditEvent.rs")
    assert access_for(named, role="admin").allows("AuditEvent", "s")
    for role in ("coordinator", "physician", None):
        assert not access_for(named, role=role, practitioner="x").allows("AuditEvent", "r")
    system, _ = parse_scopes("system/AuditEvent.rs patient/AuditEvent.rs")
    assert not access_for(system, patient="p1").allows("AuditEvent", "r")
    wildcard, _ = parse_scopes("user/*.rs")
    admin = access_for(wildcard, role="admin")
    assert admin.allows("Patient", "r") and not admin.allows("AuditEvent", "r")
