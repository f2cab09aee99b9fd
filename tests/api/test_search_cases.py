"""Search as data (search.html; the contract is docs/search.md): one case file per spec section.

Each `tests/data/search-cases/<section>.json` has `fixtures`, PUT once per file and database into emptied
tables, and `cases`, each run as its own test `<section>::<name>`. The case format is described in
`tests/data/search-cases/README.md`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhirjson import FHIR_JSON
from sqlalchemy import delete

from fhir_server.store.tables import ALL_TABLES

pytestmark = pytest.mark.xdist_group("search-cases")

CASE_DIR = Path(__file__).resolve().parents[1] / "data" / "search-cases"
BASE = "http://testserver/fhir"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
FILES = {path.stem: json.loads(path.read_text()) for path in sorted(CASE_DIR.glob("*.json"))}
CASES = [pytest.param(stem, case, id=f"{stem}::{case['name']}") for stem, doc in FILES.items()
         for case in doc["cases"]]


class Loaded:
    """What one file's fixtures left in one database: instants around the load and a first-fixture stamp."""

    def __init__(self, stem: str, before: str, after: str, probe: tuple[str, str]):
        self.stem, self.before, self.after, self.probe = stem, before, after, probe


_loaded: dict[int, Loaded] = {}  # by id(app_client): one per database backend


def _instant() -> str:
    """A FHIR instant strictly between the writes before and after it (the server stamps milliseconds)."""
    time.sleep(0.01)
    moment = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    time.sleep(0.01)
    return moment


def _put(client, resource: dict):
    return client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)


def _load(client, engine, stem: str) -> Loaded:
    with engine.begin() as conn:  # as the `client` fixture does: every table emptied
        for table in reversed(ALL_TABLES):
            conn.execute(delete(table))
    _loaded.pop(id(client), None)
    before = _instant()
    stamps = []
    for resource in FILES[stem]["fixtures"]:
        response = _put(client, resource)
        assert response.status_code in (200, 201), (stem, resource["resourceType"], resource["id"], response.text)
        stamps.append(response.json()["meta"]["lastUpdated"])
    first = FILES[stem]["fixtures"][0]
    state = Loaded(stem, before, _instant(), (f"/fhir/{first['resourceType']}/{first['id']}", stamps[0]))
    _loaded[id(client)] = state
    return state


def _fixtures(client, engine, stem: str) -> Loaded:
    """This file's fixtures, loaded unless they still are (another test module may have emptied the tables)."""
    state = _loaded.get(id(client))
    if state is not None and state.stem == stem:
        probe = client.get(state.probe[0])
        if probe.status_code == 200 and probe.json()["meta"]["lastUpdated"] == state.probe[1]:
            return state
    return _load(client, engine, stem)


def _url(query: str, state: Loaded) -> str:
    query = query.replace("{before_load}", state.before).replace("{after_load}", state.after)
    return "/fhir" + ("" if query.startswith("?") else "/") + query


def _ref(entry: dict) -> str:
    resource = entry["resource"]
    return f"{resource['resourceType']}/{resource['id']}"


def _mode(entry: dict) -> str | None:
    return (entry.get("search") or {}).get("mode")


def _link(bundle: dict, *relations: str) -> str | None:
    return next((link["url"] for link in bundle.get("link", []) if link["relation"] in relations), None)


def _send(client, case: dict, state: Loaded):
    headers = dict(case.get("headers", {}))
    content = None
    if "form" in case:
        headers.update(FORM)
        content = case["form"].encode()
    elif "body" in case:
        headers.update(FHIR_JSON)
        content = json.dumps(case["body"]).encode()
    return client.request(case.get("method", "GET"), _url(case["query"], state), headers=headers, content=content)


def _check_error(response, case: dict) -> None:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    if "expect_issue_expression_contains" in case:
        wanted = case["expect_issue_expression_contains"]
        found = [e for issue in body["issue"] for e in issue.get("expression", [])]
        assert any(wanted in e for e in found), f"no issue expression names {wanted!r}: {body}"


def _entries_by_mode(bundle: dict, modes_optional: bool = False) -> tuple[list[str], list[str], list[dict]]:
    """Match refs, include refs and outcome resources; no resource may appear twice (search.html#include)."""
    entries = bundle.get("entry", [])
    matches, includes, outcomes = [], [], []
    for entry in entries:
        mode = _mode(entry) or ("match" if modes_optional else None)
        if mode == "outcome":
            assert entry["resource"]["resourceType"] == "OperationOutcome", entry
            outcomes.append(entry["resource"])
            continue
        assert mode in ("match", "include"), f"entry without search.mode match/include: {entry.get('search')}"
        ref = _ref(entry)
        assert entry.get("fullUrl") == f"{BASE}/{ref}", entry.get("fullUrl")
        (matches if mode == "match" else includes).append(ref)
    every = matches + includes
    assert len(every) == len(set(every)), f"a resource appears twice: {every}"
    return matches, includes, outcomes


def _compare(actual: list[str], expected: list[str], ordered: bool, what: str) -> None:
    if ordered:
        assert actual == expected, f"{what} in order: got {actual}, expected {expected}"
    else:
        assert sorted(actual) == sorted(expected), f"{what}: got {sorted(actual)}, expected {sorted(expected)}"


def _check_total(bundle: dict, expected) -> None:
    if expected == "absent":
        assert "total" not in bundle, bundle.get("total")
    elif expected == "integer":
        assert isinstance(bundle.get("total"), int) and bundle["total"] >= 0, bundle.get("total")
    else:
        assert bundle.get("total") == expected, f"total {bundle.get('total')}, expected {expected}"


def _names_in(outcome: dict) -> str:
    return " ".join(" ".join(issue.get("expression", [])) + " " + issue.get("diagnostics", "")
                    for issue in outcome["issue"])


def _check_bundle(response, case: dict) -> dict:
    bundle = response.json()
    assert (bundle["resourceType"], bundle.get("type")) == ("Bundle", "searchset"), bundle
    matches, includes, outcomes = _entries_by_mode(bundle, case.get("modes_optional", False))
    if "expect_ids" in case:
        _compare(matches, case["expect_ids"], case.get("ordered", False), "matches")
    if "expect_include_ids" in case:
        _compare(includes, case["expect_include_ids"], False, "included")
    for ref in case.get("expect_contains", []):
        assert ref in matches + includes, f"{ref} missing from {matches + includes}"
    for ref in case.get("expect_excludes", []):
        assert ref not in matches + includes, f"{ref} should not be in {matches + includes}"
    if "expect_total" in case:
        _check_total(bundle, case["expect_total"])
    for name in case.get("expect_outcome_names", []):
        assert any(name in _names_in(o) for o in outcomes), f"no outcome entry names {name!r}: {outcomes}"
    self_link = _link(bundle, "self")
    assert self_link is not None, bundle.get("link")
    self_params = [k for k, _ in parse_qsl(urlsplit(self_link).query, keep_blank_values=True)]
    for name in case.get("expect_self_lacks", []):
        assert name not in self_params, f"self link {self_link} keeps {name}"
    for name in case.get("expect_self_has", []):
        assert name in self_params, f"self link {self_link} lacks {name}"
    for relation, present in case.get("expect_links", {}).items():
        relations = ("prev", "previous") if relation == "prev" else (relation,)
        assert (_link(bundle, *relations) is not None) == present, f"link {relation}: {bundle.get('link')}"
    resources = [e["resource"] for e in bundle.get("entry", []) if _mode(e) == "match"]
    for resource in resources:
        for element in case.get("expect_elements_present", []):
            assert element in resource, f"{element} missing from {resource}"
        for element in case.get("expect_elements_absent", []):
            assert element not in resource, f"{element} should be left out of {resource}"
        if "expect_subsetted" in case:
            tags = [t.get("code") for t in (resource.get("meta") or {}).get("tag", [])]
            assert ("SUBSETTED" in tags) == case["expect_subsetted"], resource.get("meta")
    return bundle


def _run_request(client, case: dict, state: Loaded) -> None:
    response = _send(client, case, state)
    expected = case.get("expect_status", 200)
    assert response.status_code == expected, f"{response.status_code}, expected {expected}: {response.text}"
    if expected >= 400:
        _check_error(response, case)
    else:
        _check_bundle(response, case)


def _run_paging(client, case: dict, state: Loaded) -> None:
    """Follow `next` links to the end (search.html#paging): no resource skipped or repeated.

    `write_after_first_page` resources are PUT once the first page is read; they may show up (once) or
    not, but every other expected resource must still come exactly once.
    """
    headers = case.get("headers", {})
    response = client.get(_url(case["query"], state), headers=headers)
    seen: list[str] = []
    pages: list[list[str]] = []
    written = [f"{r['resourceType']}/{r['id']}" for r in case.get("write_after_first_page", [])]
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert (bundle["resourceType"], bundle.get("type")) == ("Bundle", "searchset"), bundle
        matches, includes, _ = _entries_by_mode(bundle, case.get("modes_optional", False))
        page = includes + matches if case.get("all_modes") else matches
        assert len(matches) <= case["page_size"], f"page {len(pages) + 1} has {len(matches)} matches"
        if not pages and "expect_first_total" in case:
            _check_total(bundle, case["expect_first_total"])
        if pages and "expect_later_total" in case:
            _check_total(bundle, case["expect_later_total"])
        if case.get("check_prev"):
            previous = _link(bundle, "prev", "previous")
            if not pages:
                assert previous is None, f"the first page has a prev link: {previous}"
            elif len(pages) == 1:
                assert previous is not None, f"the second page has no prev link: {bundle.get('link')}"
                back = client.get(previous, headers=headers)
                assert back.status_code == 200, back.text
                assert _entries_by_mode(back.json())[0] == pages[0], "prev does not lead back to the first page"
        pages.append(page)
        seen += page
        if len(pages) == 1:
            for resource in case.get("write_after_first_page", []):
                assert _put(client, resource).status_code in (200, 201)
        following = _link(bundle, "next")
        if following is None:
            break
        assert len(pages) < 200, "paging does not end"
        response = client.get(following, headers=headers)
    assert len(seen) == len(set(seen)), f"a resource came twice while paging: {pages}"
    if "expect_pages" in case:
        assert len(pages) == case["expect_pages"], pages
    if "expect_ids" in case:
        kept = [ref for ref in seen if ref not in written]
        _compare(kept, case["expect_ids"], case.get("ordered", False), "paged matches")
    for ref in case.get("expect_contains", []):
        assert ref in seen, f"{ref} missing from {pages}"
    for ref in case.get("expect_excludes", []):
        assert ref not in seen, f"{ref} should not be in {pages}"


@pytest.mark.parametrize("stem", list(FILES))
def test_fixtures_are_accepted(app_client, engine, stem):
    """Every fixture of the file is a valid resource that PUT creates (the cases below rely on them)."""
    _load(app_client, engine, stem)


@pytest.mark.parametrize(("stem", "case"), CASES)
def test_search_case(app_client, engine, stem, case):
    state = _fixtures(app_client, engine, stem)
    try:
        if case.get("kind") == "paging":
            _run_paging(app_client, case, state)
        else:
            _run_request(app_client, case, state)
    finally:
        if case.get("mutates") or case.get("write_after_first_page"):
            _loaded.pop(id(app_client), None)  # reload before the next case
