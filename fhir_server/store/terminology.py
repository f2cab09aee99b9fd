"""The terminology kernel's `Resolver` over stored resources: CodeSystems, ValueSets and ConceptMaps found
by canonical URL (references.html#canonical), through the repository's own search, so under the caller's
grant.

Without a version, the most recently updated resource with the URL answers (the spec leaves "latest" to
the server). A URL that no stored resource has falls back to the definitions that ship with the server:
the program's own (profiles/) and the R4 specification's, as the validator sees them.

A CodeSystem's index is built once per stored version and kept for the process, since a large system
(a SNOMED CT or LOINC extract) takes far longer to index than to read.

Search's token modifiers that need terminology (`:in`, `:not-in`, `:below`, `:above`) become plain codes
here (`with_codes`), before the search is compiled to SQL.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from threading import Lock
from typing import TYPE_CHECKING

from fhir_server.fhir import jsonio
from fhir_server.fhir.errors import FhirError, bad_request, error
from fhir_server.fhir.search_parameters import for_type
from fhir_server.fhir.terminology.codesystem import CodeSystemIndex
from fhir_server.fhir.terminology.valueset import expand
from fhir_server.fhir.validation.conformance import BaseConformance
from fhir_server.search.parse import TERMINOLOGY_MODIFIERS, Chain, Criterion, Has, SearchQuery, SortKey
from fhir_server.search.values import TokenValue, UriValue

if TYPE_CHECKING:
    from fhir_server.store.repository import Repository, StoredResource

_CACHED_CODE_SYSTEMS = 32
_SHIPPED = BaseConformance()
_LATEST = (SortKey("_lastUpdated", "date", True),)


class StoredTerminology:
    """A `Resolver` (fhir/terminology/valueset.py) over one repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.shipped = _SHIPPED

    def find(self, resource_type: str, url: str, version: str | None = None) -> StoredResource | None:
        """The stored resource of `resource_type` with canonical `url` (and `version`, when given)."""
        params = for_type(resource_type)
        criteria = [Criterion("url", "uri", (UriValue(url),), param=params["url"])]
        if version:
            criteria.append(Criterion("version", "token", (TokenValue(None, version, False),),
                                      param=params["version"]))
        page = self.repo.search(SearchQuery(resource_type, tuple(criteria), sort=_LATEST, total="none"), count=1)
        return page.resources[0] if page.resources else None

    def resource(self, resource_type: str, url: str, version: str | None = None) -> dict | None:
        found = self.find(resource_type, url, version)
        if found is None:
            return self.shipped.resource(resource_type, url, version)
        return jsonio.loads(found.content) if found.content is not None else None

    def value_set(self, url: str, version: str | None) -> dict | None:
        return self.resource("ValueSet", url, version)

    def concept_map(self, url: str, version: str | None = None) -> dict | None:
        return self.resource("ConceptMap", url, version)

    def code_system(self, url: str, version: str | None) -> CodeSystemIndex | None:
        found = self.find("CodeSystem", url, version)
        return self.index_of(found) if found is not None else self.shipped.code_system(url, version)

    @staticmethod
    def index_of(stored: StoredResource) -> CodeSystemIndex | None:
        """The index of a stored CodeSystem version, built once."""
        if stored.content is None:
            return None
        return _INDEXES.get((stored.id, stored.version_id, stored.last_updated), stored.content)


# A search by terminology becomes one condition per code; beyond this many it is refused, not sent.
MAX_SEARCH_CODES = 5_000
# A code no resource carries: `:in` an empty ValueSet matches nothing (a system-less, code-less value
# would match every token without a system).
NO_CODE = TokenValue("urn:careweave:no-code", "-", True)


def needs_terminology(criterion: Criterion | Chain | Has) -> bool:
    if isinstance(criterion, Chain | Has):
        return needs_terminology(criterion.inner)
    return criterion.type == "token" and criterion.modifier in TERMINOLOGY_MODIFIERS


def with_codes(terminology: StoredTerminology, criterion: Criterion | Chain | Has) -> Criterion | Chain | Has | None:
    """`criterion` (inside chains and `_has` too) with its terminology-modified token values replaced by
    the codes they stand for; None for a `:not-in` an empty ValueSet, which excludes nothing."""
    if isinstance(criterion, Chain | Has):
        inner = with_codes(terminology, criterion.inner)
        return replace(criterion, inner=inner) if inner is not None else None
    if not needs_terminology(criterion):
        return criterion
    codes = tuple(code for value in criterion.values for code in _token_codes(terminology, criterion, value))
    if len(codes) > MAX_SEARCH_CODES:
        raise error(422, "too-costly", f"{criterion.name}:{criterion.modifier} stands for {len(codes):,} codes; "
                                       f"at most {MAX_SEARCH_CODES:,} are searched for", criterion.name)
    if not codes:
        if criterion.modifier == "not-in":
            return None
        codes = (NO_CODE,)
    return replace(criterion, values=codes)


def _token_codes(terminology: StoredTerminology, criterion: Criterion, value: object) -> list[TokenValue]:
    """The codes one value of a terminology-modified token criterion stands for."""
    name = f"{criterion.name}:{criterion.modifier}"
    if criterion.modifier in ("in", "not-in"):
        url, _, version = value.uri.partition("|")
        value_set = terminology.value_set(url, version or None)
        if value_set is None:
            raise bad_request(f"no ValueSet with the url {value.uri!r} is stored on this server", name)
        try:
            expansion = expand(value_set, terminology, open_systems=True)
        except FhirError as exc:
            raise bad_request(f"{name}: the ValueSet {value.uri} cannot be expanded: "
                              + "; ".join(i.diagnostics for i in exc.issues), name) from None
        return [TokenValue(m.system, m.code, True) for m in expansion.members] + [
            TokenValue(system, None, True) for system in expansion.open_systems]
    if not value.system or not value.code:
        raise bad_request(f"{name} takes system|code: the hierarchy is that of the code's system", name)
    code_system = terminology.code_system(value.system, None)
    if code_system is None or not code_system.holds_codes or code_system.get(value.code) is None:
        raise bad_request(f"{name}: {value.system}#{value.code} is not a code of a CodeSystem held on this "
                          "server, so its hierarchy is not known", name)
    code = code_system.get(value.code).code
    related = code_system.descendants(code) if criterion.modifier == "below" else code_system.ancestors(code)
    return [TokenValue(value.system, c, True) for c in [code, *sorted(related)]]


class _IndexCache:
    """The last few CodeSystem indexes built, by (id, version, lastUpdated) of the stored resource."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int, datetime], CodeSystemIndex] = OrderedDict()
        self._lock = Lock()

    def get(self, key: tuple[str, int, datetime], content: str) -> CodeSystemIndex:
        with self._lock:
            index = self._items.get(key)
            if index is not None:
                self._items.move_to_end(key)
                return index
        index = CodeSystemIndex(jsonio.loads(content))
        with self._lock:
            self._items[key] = index
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return index


_INDEXES = _IndexCache(_CACHED_CODE_SYSTEMS)
