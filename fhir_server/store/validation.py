"""Profile validation over the store: the validator kernel (fhir/validation) finding StructureDefinitions,
ValueSets and CodeSystems among stored resources first and then among those that ship (StoredTerminology).

A validator keeps compiled profiles and ValueSet expansions, so one is kept per database and reused while
the conformance resources stay as they are: each use compares the newest `_lastUpdated` among stored
StructureDefinitions, ValueSets and CodeSystems (an index lookup) with the one it was built at.

`FHIR_VALIDATION` decides what a write is checked against (validation.html): `off`, the structural checks
of fhir/models.py only; `claimed` (the default), also the profiles a resource claims in `meta.profile`;
`all`, also its type's base StructureDefinition when it claims none.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from fhir_server.fhir.errors import FhirError, Issue, error
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex
from fhir_server.fhir.validation.conformance import BaseConformance
from fhir_server.fhir.validation.validator import Validator
from fhir_server.store.tables import resource_table as R
from fhir_server.store.terminology import StoredTerminology

if TYPE_CHECKING:
    from fhir_server.store.repository import SqlRepository

MODES = ("off", "claimed", "all")
CONFORMANCE_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem")
_KEPT_VALIDATORS = 4
_REFERENCE = frozenset("/")


class StoredConformance:
    """The validator's `Conformance` over the repository bound to the calling thread, then the base R4."""

    def __init__(self) -> None:
        self._base = BaseConformance()
        self._bound = threading.local()

    @contextmanager
    def bound(self, repo: SqlRepository) -> Iterator[None]:
        previous = getattr(self._bound, "repo", None)
        self._bound.repo = repo
        try:
            yield
        finally:
            self._bound.repo = previous

    def _terminology(self) -> StoredTerminology | None:
        repo = getattr(self._bound, "repo", None)
        return StoredTerminology(repo) if repo is not None else None

    def structure_definition(self, url: str) -> dict | None:
        terminology = self._terminology()
        canonical, _, version = url.partition("|")
        return terminology.resource("StructureDefinition", canonical, version or None) if terminology \
            else self._base.structure_definition(url)

    def value_set(self, url: str, version: str | None) -> dict | None:
        terminology = self._terminology()
        return terminology.value_set(url, version) if terminology else self._base.value_set(url, version)

    def code_system(self, url: str, version: str | None) -> CodeSystemIndex | None:
        terminology = self._terminology()
        return terminology.code_system(url, version) if terminology else self._base.code_system(url, version)

    def read(self, reference: str) -> dict | None:
        """A stored resource named by a relative `Type/id` reference, as the bound repository's grant sees it."""
        repo = getattr(self._bound, "repo", None)
        resource_type, _, id = reference.partition("/")
        if repo is None or not id or "/" in id:
            return None
        try:
            return repo.read(resource_type, id).resource()
        except FhirError:
            return None


class _Kept:
    def __init__(self, stamp: tuple, conformance: StoredConformance, validator: Validator) -> None:
        self.stamp, self.conformance, self.validator = stamp, conformance, validator


_kept: OrderedDict[str, _Kept] = OrderedDict()
_lock = threading.Lock()


def validate(repo: SqlRepository, resource: dict, profiles: tuple[str, ...] = ()) -> list[Issue]:
    """Every issue of `resource` against its base definition, its claimed profiles and `profiles`; a
    profile asked for that is not held here is a 422 (resource-operation-validate.html)."""
    kept = _validator(repo)
    with kept.conformance.bound(repo):
        for url in profiles:
            try:
                known = kept.validator.structure(url) is not None
            except ValueError as exc:  # a snapshot that cannot be generated or compiled
                raise error(422, "processing", f"the profile {url} cannot be used: {exc}", "profile") from None
            if not known:
                raise error(422, "not-supported", f"the profile {url} is not known here", "profile")
        return kept.validator.validate(resource, profiles)


def check_write(repo: SqlRepository, resource: dict, mode: str) -> None:
    """422 with the OperationOutcome when a resource to be written fails validation under `mode`."""
    claimed = (resource.get("meta") or {}).get("profile")
    if mode == "off" or (mode == "claimed" and not claimed):
        return
    issues = validate(repo, resource)
    if any(i.severity in ("error", "fatal") for i in issues):
        ranked = sorted(issues, key=lambda i: ("fatal", "error", "warning", "information").index(i.severity))
        raise FhirError(422, ranked)


def _validator(repo: SqlRepository) -> _Kept:
    key = repo.conn.engine.url.render_as_string(hide_password=True)
    stamp = _stamp(repo)
    with _lock:
        kept = _kept.get(key)
        if kept is None or kept.stamp != stamp:
            conformance = StoredConformance()
            kept = _kept[key] = _Kept(stamp, conformance, Validator(conformance, resolve=conformance.read))
        _kept.move_to_end(key)
        while len(_kept) > _KEPT_VALIDATORS:
            _kept.popitem(last=False)
        return kept


def _stamp(repo: SqlRepository) -> tuple[datetime | None, ...]:
    """The newest write among stored conformance resources, per type (deletions included)."""
    return tuple(repo.conn.execute(select(func.max(R.c.last_updated)).where(R.c.resource_type == t)).scalar()
                 for t in CONFORMANCE_TYPES)
