"""Helpers for tests that speak FHIR JSON over HTTP."""

from __future__ import annotations

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def outcome_codes(response) -> list[str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return [issue["code"] for issue in body["issue"]]


def expressions(response) -> list[str]:
    return [e for issue in response.json()["issue"] for e in issue.get("expression", [])]


def without_meta(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k != "meta"}
