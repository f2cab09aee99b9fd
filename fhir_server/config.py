"""Settings, read from the environment once at start (the only place that reads it)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class AuthMode(StrEnum):
    """How requests are authorised: `smart` needs a bearer token from our authorization server on every
    FHIR request but `metadata`; `open` lets every request do everything (a developer's machine only).
    `open` stays the default until the authorization-code launch lands."""

    open = "open"
    smart = "smart"


class ValidationMode(StrEnum):
    """FHIR_VALIDATION: what a write is validated against beyond the structure of R4 (store/validation.py).
    `claimed`: the profiles a resource claims in meta.profile; `all`: its type's base definition too."""

    off = "off"
    claimed = "claimed"
    all = "all"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FHIR_", extra="ignore")

    database_url: str = "sqlite:///./var/fhir.sqlite3"
    base_url: str = "http://127.0.0.1:8080/fhir"
    auth_mode: AuthMode = AuthMode.smart
    max_body_bytes: Annotated[int, Field(gt=1024)] = 50 * 1024 * 1024
    default_page_size: Annotated[int, Field(gt=0, le=1000)] = 50
    max_page_size: Annotated[int, Field(gt=0, le=10000)] = 1000
    log_level: str = "INFO"
    db_pool_size: Annotated[int, Field(gt=0, le=200)] = 10
    # Two threads per worker overlap one request's database wait with another's Python; more only contend
    # for the GIL (docs/benchmarks.md: the search mix's p99 at 32 connections was 80 ms with 2, 104 with 4).
    db_threads: Annotated[int, Field(gt=0, le=200)] = 2
    audit: bool = True  # FHIR_AUDIT: record every request, sign-in and token event in the audit log
    validation: ValidationMode = ValidationMode.claimed
    # Failed calls to a member (spanning 30 days or more) after which $log-outreach concludes unable-to-reach.
    outreach_attempts: Annotated[int, Field(ge=1)] = 3
    # A rules file for $care-candidates in place of fhir_server/care/knowledge/candidate_rules.json (docs/program.md).
    candidate_rules: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(f"not a SQLAlchemy database URL: {exc}") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite:// and postgresql:// URLs are supported")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http(s) URL such as http://127.0.0.1:8080/fhir")
        return value.rstrip("/")

    @field_validator("candidate_rules")
    @classmethod
    def _candidate_rules(cls, value: str | None) -> str | None:
        if value and not Path(value).is_file():
            raise ValueError("must be the path of a rules file, such as a copy of "
                             "fhir_server/care/knowledge/candidate_rules.json")
        return value or None

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level


class SettingsError(RuntimeError):
    """A setting from the environment is invalid; the message names the variable."""


def load_settings() -> Settings:
    """Read and check the settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"FHIR_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        ]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
