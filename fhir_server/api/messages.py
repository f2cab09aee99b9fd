"""FhirRequest and FhirResponse: what dispatch takes and gives, with no HTTP framework in sight."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fhir_server.fhir.errors import Issue, operation_outcome
from fhir_server.store.repository import StoredResource


@dataclass
class FhirRequest:
    """One interaction: `path` is relative to the FHIR base (`Patient/1/_history/2`, `` for the base)."""

    method: str
    path: str
    params: list[tuple[str, str]] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: object = None
    # Set by a transaction that numbered its POST entries before running them (http.html#trules).
    assigned_id: str | None = None

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def prefer(self, name: str) -> str | None:
        """One token of the Prefer header (RFC 7240), e.g. prefer("return") -> "minimal"."""
        for part in self.headers.get("prefer", "").split(";"):
            for item in part.split(","):
                key, _, value = item.strip().partition("=")
                if key.strip().lower() == name:
                    return value.strip().strip('"').lower()
        return None


@dataclass
class FhirResponse:
    """The answer: `body` (a dict that may hold orjson.Fragment parts), stored JSON text `raw`, bytes in another
    format `content` (a PDF, an HTML page; its Content-Type in `headers`), or nothing."""

    status: int
    body: dict | None = None
    raw: str | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    interaction: str = "unknown"
    resource_type: str = ""
    stored: StoredResource | None = None  # the version written or read, for bundle entry responses

    @classmethod
    def of_stored(cls, stored: StoredResource, status: int = 200, **kwargs) -> FhirResponse:
        """A response whose body is the stored JSON text, sent without re-parsing."""
        response = cls(status, raw=stored.content, resource_type=stored.resource_type, stored=stored, **kwargs)
        response.headers.update(version_headers(stored))
        return response

    @classmethod
    def outcome(cls, status: int, issues: list[Issue], **kwargs) -> FhirResponse:
        return cls(status, operation_outcome(issues), **kwargs)


def version_headers(stored: StoredResource) -> dict[str, str]:
    return {"ETag": stored.etag, "Last-Modified": stored.last_modified}
