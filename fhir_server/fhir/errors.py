"""Errors as OperationOutcome (operationoutcome.html), each with its HTTP status (http.html#summary)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: `code` from the issue-type ValueSet, `expression` a FHIRPath location."""

    code: str
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict:
        issue: dict = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FhirError(Exception):
    """A request that fails with `status` and an OperationOutcome made of `issues`."""

    status: int
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: " + "; ".join(i.diagnostics for i in self.issues)

    def outcome(self) -> dict:
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue]) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def error(status: int, code: str, diagnostics: str, *expression: str) -> FhirError:
    """Shorthand for a FhirError with one issue."""
    return FhirError(status, [Issue(code, diagnostics, expression=tuple(expression))])


def bad_request(diagnostics: str, *expression: str) -> FhirError:
    return error(400, "invalid", diagnostics, *expression)


def not_found(diagnostics: str) -> FhirError:
    return error(404, "not-found", diagnostics)


def gone(diagnostics: str) -> FhirError:
    return error(410, "deleted", diagnostics)


def conflict(diagnostics: str) -> FhirError:
    return error(409, "conflict", diagnostics)


def precondition_failed(diagnostics: str) -> FhirError:
    return error(412, "conflict", diagnostics)


def unprocessable(diagnostics: str, *expression: str) -> FhirError:
    return error(422, "processing", diagnostics, *expression)


def not_supported(diagnostics: str, status: int = 400) -> FhirError:
    return error(status, "not-supported", diagnostics)
