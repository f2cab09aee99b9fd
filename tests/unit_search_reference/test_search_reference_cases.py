"""The brute-force reference agrees with the hand-worked search cases of tests/data/search-cases (worked out
from docs/search.md independently of both the server and the reference), wherever a case is only about
which resources of one type match: no paging, counts, chains, `_has`, `_include`, `_list` or errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from search_reference import Reference, parameters_for

CASES = Path(__file__).parents[1] / "data" / "search-cases"
BASE = "http://testserver/fhir"
# Parameters of the result, or beyond the reference (search.html#chaining, #has, #include, #list, ...).
OUT_OF_SCOPE = {"_count", "_total", "_include", "_revinclude", "_has", "_list", "_type", "_cursor", "_text",
                "_content", "_query", "_filter", "_contained", "_containedType"}


def _matching_cases() -> list:
    cases = []
    for path in sorted(CASES.glob("*.json")):
        data = json.loads(path.read_text())
        for case in data["cases"]:
            query = case.get("query", "")
            resource_type, _, text = query.partition("?")
            if (case.get("kind") or case.get("method", "GET") != "GET" or "expect_ids" not in case
                    or case.get("expect_status", 200) != 200 or "{" in query
                    or not resource_type or "/" in resource_type):
                continue
            params = parse_qsl(text, keep_blank_values=True)
            known = parameters_for(resource_type)
            if any(name.partition(":")[0] in OUT_OF_SCOPE or "." in name
                   or (name.partition(":")[0] not in known and name not in ("_sort", "_summary", "_elements"))
                   or name.partition(":")[2] in ("in", "not-in") or (name == "_summary" and value == "count")
                   for name, value in params):
                continue
            cases.append(pytest.param(path.name, case, id=f"{path.stem}::{case['name']}"))
    return cases


@pytest.mark.parametrize(("file", "case"), _matching_cases())
def test_reference_agrees_with_hand_worked_case(file: str, case: dict):
    fixtures = json.loads((CASES / file).read_text(), parse_float=Decimal).get("fixtures", [])
    written = datetime.now(UTC).isoformat()  # the server sets meta.lastUpdated when the fixtures are PUT
    for resource in fixtures:
        resource["meta"] = {**resource.get("meta", {}), "lastUpdated": written}
    resource_type, _, text = case["query"].partition("?")
    found = Reference(fixtures, base_url=BASE).search(resource_type, parse_qsl(text, keep_blank_values=True))
    assert {f"{resource_type}/{i}" for i in found} == set(case["expect_ids"])


def test_most_cases_are_in_scope():
    assert len(_matching_cases()) >= 300
