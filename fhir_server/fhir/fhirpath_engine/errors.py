"""The one error the engine raises: a syntax error, an unknown function or type, or an execution error."""

from __future__ import annotations


class FhirPathError(ValueError):
    """An expression that cannot be compiled, or that signals an error when evaluated (fhirpath.html#errors)."""
