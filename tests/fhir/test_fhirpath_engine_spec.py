"""HL7's official FHIRPath test suite for R4 (tests-fhir-r4.xml, from the FHIR test cases) run against the
compiled engine of fhir_server/fhir/fhirpath_engine.

Each `<test>` is one case named as in the suite. Cases the engine does not pass are listed, with the reason,
in tests/data/fhirpath/known-failures.json and expected to fail (strictly: a fixed case must leave the list).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from conftest import CORPORA
from fhir_xml import xml_to_json

from fhir_server.fhir.fhirpath_engine import Context, FhirPathError, compile_path

SUITE = CORPORA / "fhirpath" / "tests-fhir-r4.xml"
KNOWN_FAILURES = Path(__file__).parents[1] / "data" / "fhirpath" / "known-failures.json"

if not SUITE.exists():
    pytest.skip(f"HL7's FHIRPath test suite is not at {SUITE}", allow_module_level=True)


@dataclass(frozen=True)
class Case:
    name: str
    expression: str
    invalid: bool
    input_file: str | None
    predicate: bool
    ordered: bool
    outputs: tuple[tuple[str | None, str], ...]


def _cases() -> list:
    known = {entry["name"]: entry["why"] for entry in json.loads(KNOWN_FAILURES.read_text())}
    params, seen = [], {}
    for test in ElementTree.parse(SUITE).getroot().iter("test"):
        expression = test.find("expression")
        name = test.get("name")
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"  # the suite names two cases testEquivalent23
        case = Case(
            name=name,
            expression=expression.text or "",
            invalid=expression.get("invalid") is not None,
            input_file=test.get("inputfile"),
            predicate=test.get("predicate") == "true",
            ordered=test.get("ordered") != "false",
            outputs=tuple((o.get("type"), o.text or "") for o in test.findall("output")),
        )
        marks = [pytest.mark.xfail(strict=True, reason=known[name])] if name in known else []
        params.append(pytest.param(case, id=name, marks=marks))
    return params


@cache
def _input(file_name: str) -> dict:
    path = SUITE.parent / file_name
    if path.suffix == ".json":
        return json.loads(path.read_text(), parse_float=Decimal)
    return xml_to_json(path)


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _matches(actual: object, kind: str | None, text: str) -> bool:
    """Whether a result item is the expected `<output type="…">text</output>` (untyped in newer groups)."""
    if kind == "boolean" or (kind is None and text in ("true", "false")):
        return actual is (text == "true")
    if kind in ("integer", "decimal") or (kind is None and _NUMBER.fullmatch(text)):
        if type(actual) not in (int, Decimal) or (kind == "integer" and type(actual) is not int):
            return False
        expected = Decimal(text)
        # Trailing zeros are part of the answer: `1.587.lowBoundary()` is 1.58650000.
        same_digits = type(actual) is int or actual.as_tuple().exponent == expected.as_tuple().exponent
        return actual == expected and same_digits
    if kind in ("date", "dateTime", "time") or text.startswith("@"):
        return str(actual) == text.removeprefix("@").removeprefix("T")
    if kind == "Quantity" or (kind is None and "'" in text):
        return str(actual) == text
    return actual == text


@pytest.mark.parametrize("case", _cases())
def test_fhirpath_suite(case: Case) -> None:
    resource = _input(case.input_file) if case.input_file else None
    context = Context(resource, resource)
    focus_type = resource["resourceType"] if resource else ""
    if case.invalid:
        with pytest.raises(FhirPathError):
            compile_path(case.expression)(resource, focus_type, context)
        return
    result = compile_path(case.expression)(resource, focus_type, context)
    if case.predicate:
        result = [bool(result)]
    assert len(result) == len(case.outputs), f"{case.expression!r} gave {result}"
    if case.ordered:
        pairs = zip(result, case.outputs, strict=True)
        assert all(_matches(a, kind, text) for a, (kind, text) in pairs), f"{case.expression!r} gave {result}"
    else:
        remaining = list(result)
        for kind, text in case.outputs:
            found = next((a for a in remaining if _matches(a, kind, text)), None)
            assert found is not None, f"{case.expression!r} gave {result}, missing {text}"
            remaining.remove(found)
