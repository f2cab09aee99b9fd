"""Every resource of HL7's R4 examples package (hl7.fhir.r4.examples@4.0.1: the examples and the
specification's own conformance resources) validates against its type's base StructureDefinition without
errors, except the few listed in tests/data/r4-examples-invalid.json, where the example itself
breaks a rule of the specification; each of those must fail exactly as listed, and docs/validation.md
names it.

The package comes from the npm registry (`make test` fetches it into var/).
"""

from __future__ import annotations

import json
import tarfile
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from fhir_server.fhir.validation.conformance import BaseConformance
from fhir_server.fhir.validation.validator import Validator

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "var" / "hl7.fhir.r4.examples-4.0.1.tgz"
INVALID = json.loads((ROOT / "tests" / "data" / "r4-examples-invalid.json").read_text())["examples"]

if not PACKAGE.exists():
    pytest.skip(f"{PACKAGE.relative_to(ROOT)} is missing: `make test` fetches it with npm pack",
                allow_module_level=True)


@cache
def _names() -> list[str]:
    with tarfile.open(PACKAGE) as tar:
        return sorted(m.name.removeprefix("package/") for m in tar if _is_resource(m.name))


def _is_resource(member: str) -> bool:
    name = member.removeprefix("package/")
    return member.startswith("package/") and "/" not in name and name.endswith(".json") \
        and name not in ("package.json", ".index.json")


@cache
def _validator() -> Validator:
    return Validator(BaseConformance())


def _chunks(size: int = 100) -> list[list[str]]:
    names = _names()
    return [names[i:i + size] for i in range(0, len(names), size)]


def _errors(resource: dict) -> set[str]:
    return {i.expression[0] for i in _validator().validate(resource) if i.severity in ("error", "fatal")}


@pytest.mark.parametrize("chunk", range(len(_chunks())))
def test_examples_validate(chunk):
    names = _chunks()[chunk]
    failures = {}
    with tarfile.open(PACKAGE) as tar:
        for name in names:
            resource = json.load(tar.extractfile(f"package/{name}"), parse_float=Decimal)
            errors = _errors(resource)
            expected = set(INVALID[name]["errors"]) if name in INVALID else set()
            if errors != expected:
                failures[name] = sorted(errors ^ expected)[:5]
    assert not failures, failures


def test_every_exception_is_explained_in_the_docs():
    docs = (ROOT / "docs" / "validation.md").read_text()
    assert set(INVALID) <= set(_names())
    assert [name for name in INVALID if name not in docs] == []
