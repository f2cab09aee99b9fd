"""SMART scopes (scopes-and-launch-context.html): parse a granted scope string, and make its Access.

Clinical-data scopes are `context/Type.permissions[?query]`:
- `context` is `patient`, `user` or `system`, and `Type` is a resource type or `*`;
- in SMART v2, `permissions` are letters of `cruds` in that order, and a query narrows the scope by search
  parameters (`patient/Observation.rs?category=laboratory`);
- in v1 they are `read`, `write` or `*`, which mean `rs`, `cud` and `cruds`.

Letters out of order or repeated (`.dus`, `.rr`) are refused rather than reinterpreted, as the spec asks.
Every other scope (`openid`, `fhirUser`, `launch`, `launch/patient`, `offline_access`, `online_access`)
carries no data rights and is kept as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fhir_server.fhir.definitions import resource_types
from fhir_server.fhir.errors import FhirError
from fhir_server.search.parse import RESULT_PARAMETERS, Criterion, parse_query
from fhir_server.store.access import NAMED_ONLY, Access, Related, Rule

_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(?:\?(.*))?$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
CONTEXT_SCOPES = frozenset({"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter",
                            "offline_access", "online_access"})


class ScopeError(ValueError):
    """A scope that does not follow the grammar; the message names it."""


@dataclass(frozen=True)
class ResourceScope:
    """One clinical-data scope, as written (`text`) and as understood."""

    text: str
    context: str
    resource_type: str
    interactions: str
    criteria: tuple[Criterion, ...] = ()
    version: int = 2


def parse_scope(text: str) -> ResourceScope | None:
    """A clinical-data scope, or None for a context or identity scope; ScopeError for a malformed one."""
    if text in CONTEXT_SCOPES or text.startswith("launch/"):
        return None
    match = _RESOURCE_SCOPE.match(text)
    if match is None:
        raise ScopeError(f"{text!r} is not a SMART scope")
    context, resource_type, permissions, query = match.groups()
    if resource_type != "*" and resource_type not in resource_types():
        raise ScopeError(f"{text!r} names an unknown resource type")
    if permissions in _V1:
        if query is not None:
            raise ScopeError(f"{text!r}: a v1 scope takes no query")
        return ResourceScope(text, context, resource_type, _V1[permissions], version=1)
    if not permissions or "".join(c for c in "cruds" if c in permissions) != permissions:
        raise ScopeError(f"{text!r}: permissions must be letters of 'cruds', each once, in that order")
    return ResourceScope(text, context, resource_type, permissions, _criteria(text, resource_type, query))


def _criteria(text: str, resource_type: str, query: str | None) -> tuple[Criterion, ...]:
    if query is None:
        return ()
    if resource_type == "*":
        raise ScopeError(f"{text!r}: a query needs a resource type")
    try:
        parsed = parse_query(resource_type, parse_qsl(query, keep_blank_values=True), strict=True)
    except FhirError as exc:
        raise ScopeError(f"{text!r}: {exc.outcome()['issue'][0].get('diagnostics', 'bad query')}") from None
    names = {name.partition(":")[0] for name, _ in parse_qsl(query, keep_blank_values=True)}
    if not parsed.criteria or names & RESULT_PARAMETERS:
        raise ScopeError(f"{text!r}: a scope's query takes search criteria only")
    if any(getattr(c, "name", None) == "_lastUpdated" for c in parsed.criteria):
        raise ScopeError(f"{text!r}: _lastUpdated cannot narrow a scope")
    return parsed.criteria


def parse_scopes(text: str) -> tuple[list[ResourceScope], list[str]]:
    """The clinical-data scopes and the other scopes of a space-separated scope string."""
    resources, others = [], []
    for item in text.split():
        scope = parse_scope(item)
        if scope is None:
            others.append(item)
        else:
            resources.append(scope)
    return resources, others


def access_for(scopes: list[ResourceScope], *, patient: str | None = None, role: str | None = None,
               practitioner: str | None = None) -> Access:
    """The Access of granted scopes, for a token with the launch `patient` and issued to a user of `role`
    who is `practitioner` (a Practitioner id).

    - `patient/` scopes are confined to the launch patient's compartment and grant nothing without one.
    - `user/` scopes reach what the user may: an administrator every patient; a coordinator or a
      physician the patients they are related to (store/access.py, Related); anyone else nothing.
    - `system/` scopes are not confined: a backend client is registered for them.
    - AuditEvent is granted by an administrator's `user/AuditEvent` scope only (SMART leaves who may read
      the audit log to the server; ours keeps it to administrators).
    """
    rules = []
    for scope in scopes:
        if scope.resource_type in NAMED_ONLY and not (scope.context == "user" and role == "admin"):
            continue
        patients: frozenset[str] | Related | None
        if scope.context == "patient":
            if patient is None:
                continue
            patients = frozenset({patient})
        elif scope.context == "user":
            patients = _related(role, practitioner)
        else:
            patients = None
        rules.append(Rule(scope.resource_type, frozenset(scope.interactions), scope.criteria, patients))
    return Access(tuple(rules))


def _related(role: str | None, practitioner: str | None) -> frozenset[str] | Related | None:
    if role == "admin":
        return None
    if role in ("coordinator", "physician") and practitioner:
        return Related(role, practitioner)
    return frozenset()
