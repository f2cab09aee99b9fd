"""What every interaction handler gets besides the request."""

from __future__ import annotations

from dataclasses import dataclass

from fhir_server.care.program import ProgramSettings
from fhir_server.store.repository import Repository


@dataclass(frozen=True)
class Context:
    repo: Repository
    base_url: str
    default_count: int = 50
    max_count: int = 1000
    oauth_uris: tuple[tuple[str, str], ...] | None = None
    program: ProgramSettings = ProgramSettings()
