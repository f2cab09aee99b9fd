"""Every search parameter of the program's resource types finds, over a slice of Synthea and HL7's examples,
exactly the resources that the brute-force reference (tests/search_reference.py) finds (docs/search.md).

Per backend, the first SYNTHEA_BUNDLES Synthea bundles are POSTed as transactions and the official examples
of TYPES are PUT; the stored resources are read back (the server assigns ids, versionId and lastUpdated).
Then, for each SearchParameter, queries are generated from values present in the data (and one present
nowhere, plus the parameter type's modifiers) and the server's ids are compared with the reference's.
Each backend has a database of its own for the module (conftest's `client` empties the shared one per test).
Without ../shared the Synthea part is skipped (test_synthea_slice_is_loaded says so) and the examples remain.
A parameter the server rejects or ignores fails, unless docs/search.md lists it as not supported.
"""

from __future__ import annotations

import json
import tarfile
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import BASE_URL, CORPORA, POSTGRES_URL, fresh_postgres_database
from fastapi.testclient import TestClient
from fhirjson import FHIR_JSON
from search_reference import (
    NOT_SUPPORTED,
    Reference,
    Token,
    Typed,
    amounts,
    date_ranges,
    escape,
    kind,
    local_reference,
    parameter_by_url,
    parameters_for,
    reference_texts,
    string_values,
    token_texts,
    tokens,
)

pytestmark = [pytest.mark.corpus, pytest.mark.xdist_group("search-reference")]

TYPES = ("Patient", "Observation", "Condition", "Encounter", "MedicationRequest", "MedicationStatement",
         "CarePlan", "Goal", "ServiceRequest", "Task", "CommunicationRequest", "Procedure", "Practitioner")
CORPUS = CORPORA / "synthea-r4.tar.gz"
EXAMPLES = Path(__file__).parents[1] / "data" / "r4-examples"
SYNTHEA_BUNDLES = 20
VALUES_PER_PARAMETER = 3
MAX_PAGES = 100
STRICT = {"Prefer": "handling=strict"}


@dataclass
class Loaded:
    client: TestClient
    reference: Reference
    backend: str
    rejected_examples: list[str] = field(default_factory=list)
    synthea: str = ""
    counts: Counter = field(default_factory=Counter)


def _precise(content: bytes) -> dict:
    return json.loads(content, parse_float=Decimal)


def _load_synthea(client: TestClient, expected: Counter) -> str:
    if not CORPUS.exists():
        return f"Synthea part skipped: shared corpus missing: {CORPUS} (../shared is absent)"
    posted = 0
    with tarfile.open(CORPUS) as tar:
        for member in tar:
            if not member.isfile():
                continue
            body = tar.extractfile(member).read()
            response = client.post("/fhir", content=body, headers=FHIR_JSON)
            assert response.status_code == 200, f"{member.name}: {response.status_code} {response.text[:500]}"
            for entry in response.json().get("entry", []):
                location = entry["response"].get("location", "")
                resource_type = location.split("/", 1)[0]
                if resource_type in TYPES:
                    expected[resource_type] += 1
            posted += 1
            if posted == SYNTHEA_BUNDLES:
                break
    return f"{posted} Synthea bundles"


def _load_examples(client: TestClient, expected: Counter) -> list[str]:
    rejected = []
    for path in sorted(EXAMPLES.glob("*.json")):
        if path.name.split("-", 1)[0] not in TYPES:
            continue
        example = _precise(path.read_bytes())
        response = client.put(f"/fhir/{example['resourceType']}/{example['id']}", content=path.read_bytes(),
                              headers=FHIR_JSON)
        if response.status_code in (200, 201):
            expected[example["resourceType"]] += 1
        else:
            rejected.append(f"{path.name}: {response.status_code} {response.text[:160]}")
    return rejected


def _read_all(client: TestClient, resource_type: str) -> list[dict]:
    """Every stored resource of a type, read back through a type search without criteria."""
    resources, url, params = [], f"/fhir/{resource_type}", {"_count": "1000"}
    for _ in range(MAX_PAGES):
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text[:500]
        bundle = _precise(response.content)
        resources.extend(e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "outcome")
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        params = None
        if url is None:
            return resources
    raise AssertionError(f"{resource_type}: more than {MAX_PAGES} pages")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def loaded(request, tmp_path_factory) -> Iterator[Loaded]:
    """A server of its own per backend, loaded once for the module (other tests' `client` wipes theirs)."""
    from fhir_server.app import create_app
    from fhir_server.config import AuthMode, Settings
    from fhir_server.store.db import make_engine
    from fhir_server.store.migrate import upgrade

    with ExitStack() as stack:
        if request.param == "postgres":
            if not POSTGRES_URL:
                pytest.skip("FHIR_TEST_POSTGRES_URL is not set: the PostgreSQL runs are skipped")
            url = stack.enter_context(fresh_postgres_database())
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('search-reference')}/fhir.sqlite3"
        settings = Settings(database_url=url, base_url=BASE_URL, log_level="WARNING", auth_mode=AuthMode.open)
        engine = make_engine(url)
        upgrade(engine)
        stack.callback(engine.dispose)
        client = stack.enter_context(TestClient(create_app(settings), base_url="http://testserver"))
        expected: Counter = Counter()
        synthea = _load_synthea(client, expected)
        rejected = _load_examples(client, expected)
        resources = [r for t in TYPES for r in _read_all(client, t)]
        counts = Counter(r["resourceType"] for r in resources)
        assert counts == expected, "reading back every resource by type search"
        yield Loaded(client, Reference(resources, base_url=BASE_URL), request.param, rejected, synthea, counts)


@pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent); "
                                                 "the comparison runs on the official examples only")
def test_synthea_slice_is_loaded(loaded: Loaded):
    assert loaded.synthea == f"{SYNTHEA_BUNDLES} Synthea bundles"


def test_corpus_is_loaded(loaded: Loaded):
    """Reports what was loaded, and which examples the server rejected (they are left out, not failed)."""
    summary = f"{loaded.backend}: {loaded.synthea}; " + ", ".join(f"{t} {n}" for t, n in sorted(loaded.counts.items()))
    if loaded.rejected_examples:
        warnings.warn(UserWarning(f"{summary}. {len(loaded.rejected_examples)} examples rejected and skipped:\n"
                                  + "\n".join(loaded.rejected_examples)), stacklevel=1)
    else:
        warnings.warn(UserWarning(f"{summary}. No example was rejected."), stacklevel=1)
    assert loaded.counts["Patient"] > 0 and loaded.counts["Observation"] > 0


# ------------------------------------------------------------------------------------------- queries

def spread(candidates, n: int = VALUES_PER_PARAMETER) -> list:
    """Up to n distinct candidates, spread over their sorted order (first, middle, last)."""
    distinct = sorted(set(candidates), key=repr)
    if len(distinct) <= n:
        return distinct
    return [distinct[round(i * (len(distinct) - 1) / (n - 1))] for i in range(n)] if n > 1 else distinct[:1]


def _flat(values: list[list]) -> list[Typed]:
    return [v for per_resource in values for v in per_resource]


def _token_query(token: Token, form: str) -> str | None:
    code = escape(token.code) if token.code is not None else None
    if form == "code":
        return code
    if form == "system|":
        return f"{escape(token.system)}|" if token.system else None
    if code is None:
        return None
    return f"{escape(token.system)}|{code}" if token.system else f"|{code}"


def _prefix(text: str) -> str:
    return text[:max(1, min(len(text), (len(text) + 1) // 2, 6))]


def _day(text: str) -> str:
    return text[:10]


def _number_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def id_queries(values: list[Typed]) -> list[tuple[str, str]]:
    """`_id` takes plain ids (search.html#id), `,`-separated, and `:not` (docs/search.md)."""
    picked = spread(v.data for v in values if isinstance(v.data, str))
    queries = [("_id", escape(i)) for i in picked] + [("_id:not", escape(i)) for i in picked[:1]]
    if len(picked) >= 2:
        queries.append(("_id", f"{escape(picked[0])},no-such-id,{escape(picked[-1])}"))
    return queries + [("_id", "no-such-id")]


def token_queries(code: str, values: list[Typed]) -> list[tuple[str, str]]:
    if code == "_id":
        return id_queries(values)
    found = [t for v in values for t in tokens(v)]
    picked = spread(t for t in found if t.code is not None)
    queries: list[tuple[str, str]] = []
    for i, token in enumerate(picked):
        queries.append((code, _token_query(token, "system|code")))
        if i == 0:
            queries.append((code, _token_query(token, "code")))
            queries.append((f"{code}:not", _token_query(token, "system|code")))
        if i == 1 and token.system:
            queries.append((code, _token_query(token, "system|")))
    if len(picked) >= 2:
        queries.append((code, f"{_token_query(picked[0], 'code')},{_token_query(picked[-1], 'system|code')}"))
    queries.append((code, "http://example.org/absent|no-such-code"))
    queries.append((f"{code}:not", "http://example.org/absent|no-such-code"))
    texts = spread(t for v in values for t in token_texts(v) if len(t) >= 2)
    if texts:
        queries.append((f"{code}:text", escape(_prefix(texts[0]).lower())))
    typed = [v for v in values if kind(v) == "Identifier" and v.data.get("value")
             and (v.data.get("type") or {}).get("coding")]
    if typed:
        first = typed[0].data
        coding = first["type"]["coding"][0]
        queries.append((f"{code}:of-type", f"{escape(coding.get('system', ''))}|{escape(coding.get('code', ''))}|"
                                           f"{escape(first['value'])}"))
    queries += [(f"{code}:missing", "true"), (f"{code}:missing", "false")]
    return [q for q in queries if q[1] is not None]


def string_queries(code: str, values: list[Typed]) -> list[tuple[str, str]]:
    picked = spread(s for v in values for s in string_values(v) if s.strip())
    queries: list[tuple[str, str]] = []
    for i, text in enumerate(picked):
        prefix = _prefix(text)
        queries.append((code, escape(prefix.upper() if i % 2 else prefix.lower())))
    if picked:
        queries.append((f"{code}:exact", escape(picked[0])))
        queries.append((f"{code}:exact", escape(picked[0].upper() if picked[0] != picked[0].upper()
                                                else picked[0].lower())))
        last = picked[-1]
        middle = last[len(last) // 3: len(last) // 3 + max(2, len(last) // 3)]
        queries.append((f"{code}:contains", escape(middle.swapcase())))
    queries += [(code, "Zqxjv-absent"), (f"{code}:missing", "true"), (f"{code}:missing", "false")]
    return queries


def _date_texts(value: Typed) -> list[str]:
    data = value.data
    if isinstance(data, str):
        return [data] if date_ranges(value) else []
    if isinstance(data, dict):
        period = data.get("boundsPeriod") or (data.get("repeat") or {}).get("boundsPeriod") or data
        texts = [t for t in (period.get("start"), period.get("end")) if isinstance(t, str)]
        return texts + [e for e in data.get("event", []) if isinstance(e, str)]
    return []


def date_queries(code: str, values: list[Typed]) -> list[tuple[str, str]]:
    picked = spread(t for v in values if date_ranges(v) for t in _date_texts(v))
    prefixes = [("eq", "ge", "lt"), ("gt", "le", "eq"), ("sa", "eb", "ne")]
    queries: list[tuple[str, str]] = []
    for text, group in zip(picked, prefixes, strict=False):
        queries += [(code, f"{prefix}{_day(text)}") for prefix in group]
    if picked:
        queries.append((code, picked[0][:4]))
        timed = [t for t in picked if "T" in t]
        if timed:
            queries += [(code, f"ge{timed[0]}"), (code, f"lt{timed[-1]}")]
    queries += [(code, "eq1801-01-01"), (f"{code}:missing", "true"), (f"{code}:missing", "false")]
    return queries


def _quantity_parts(value: Typed) -> list[tuple[str, str | None, str | None, str | None]]:
    data = value.data
    if kind(value) == "Range" or not isinstance(data, dict):
        return [(_number_text(a.low), None, None, None) for a in amounts(value) if a.low is not None]
    return [(_number_text(a.low), data.get("system"), data.get("code"), data.get("unit"))
            for a in amounts(value) if a.low is not None]


def quantity_queries(code: str, values: list[Typed]) -> list[tuple[str, str]]:
    picked = spread(q for v in values for q in _quantity_parts(v))
    queries: list[tuple[str, str]] = []
    for i, (number, system, unit_code, unit) in enumerate(picked):
        if i == 0:
            if system and unit_code:
                queries.append((code, f"{number}|{escape(system)}|{escape(unit_code)}"))
            queries += [(code, number), (code, f"ne{number}")]
        elif i == 1:
            if unit_code or unit:
                queries.append((code, f"ge{number}||{escape(unit_code or unit)}"))
            queries += [(code, f"gt{number}"), (code, f"ap{number}")]
        else:
            queries += [(code, f"lt{number}"), (code, f"le{number}"), (code, f"sa{number}"), (code, f"eb{number}")]
    queries += [(code, "-987654.321|http://unitsofmeasure.org|absent"), (f"{code}:missing", "true"),
                (f"{code}:missing", "false")]
    return queries


def reference_queries(code: str, values: list[Typed]) -> list[tuple[str, str]]:
    texts = [t for v in values for t in reference_texts(v)]
    local = spread(loc for t in texts if (loc := local_reference(t, BASE_URL)) is not None)
    queries: list[tuple[str, str]] = []
    for i, (target, ident) in enumerate(local):
        queries.append((code, f"{target}/{ident}"))
        if i == 0:
            queries.append((code, f"{BASE_URL}/{target}/{ident}"))
        if i == 1:
            queries.append((code, ident))
        if i == 2:
            queries.append((f"{code}:{target}", ident))
    external = spread((t for t in texts if local_reference(t, BASE_URL) is None and ":" in t), 1)
    queries += [(code, t) for t in external]
    identifiers = spread((i.system or "", i.code) for v in values if isinstance(v.data, dict)
                         for i in tokens(Typed("Identifier", v.data.get("identifier") or {})))
    if identifiers:
        system, value = identifiers[0]
        queries.append((f"{code}:identifier", f"{escape(system)}|{escape(value)}" if system else escape(value)))
    queries += [(code, "Patient/no-such-id"), (f"{code}:missing", "true"), (f"{code}:missing", "false")]
    return queries


def uri_queries(code: str, values: list[Typed]) -> list[tuple[str, str]]:
    picked = spread(v.data for v in values if isinstance(v.data, str))
    queries = [(code, text) for text in picked]
    if picked:
        first = picked[0]
        if first.count("/") > 3:
            queries.append((f"{code}:below", first.rsplit("/", 1)[0]))
        queries.append((f"{code}:above", f"{first}/sub/path"))
    queries += [(code, "http://example.org/absent"), (f"{code}:missing", "true"), (f"{code}:missing", "false")]
    return queries


def _component_query(definition: dict, value: Typed, variant: int) -> str | None:
    kind_of = definition["type"]
    if kind_of == "token":
        found = [t for t in tokens(value) if t.code is not None]
        return _token_query(found[0], "system|code" if variant % 2 == 0 else "code") if found else None
    if kind_of == "quantity":
        parts = _quantity_parts(value)
        if not parts:
            return None
        number, system, unit_code, unit = parts[0]
        if variant == 0 and system and unit_code:
            return f"{number}|{escape(system)}|{escape(unit_code)}"
        return f"{('eq', 'ge', 'le')[variant % 3]}{number}"
    if kind_of == "date":
        texts = _date_texts(value)
        return f"{('eq', 'ge', 'lt')[variant % 3]}{_day(texts[0])}" if texts else None
    if kind_of == "string":
        texts = string_values(value)
        return escape(_prefix(texts[0])) if texts else None
    raise NotImplementedError(kind_of)


def composite_queries(code: str, definition: dict, elements: list) -> list[tuple[str, str]]:
    subs = [parameter_by_url(c["definition"]) for c in definition["component"]]
    candidates = {}
    for element in elements:
        if all(element):
            candidates.setdefault(tuple(repr(values[0].data) for values in element), element)
    picked = [candidates[key] for key in spread(candidates)]
    queries = []
    for i, element in enumerate(picked):
        parts = [_component_query(sub, values[0], i) for sub, values in zip(subs, element, strict=True)]
        if None not in parts:
            queries.append((code, "$".join(parts)))
    absent = {"token": "http://example.org/absent|no-such-code", "quantity": "1", "date": "1801",
              "string": "zqxjv"}
    queries.append((code, "$".join(absent[s["type"]] for s in subs)))
    return queries


def queries_for(loaded: Loaded, resource_type: str, code: str, definition: dict) -> list[tuple[str, str]]:
    values = loaded.reference.values(resource_type, definition)
    kind_of = definition["type"]
    if kind_of == "composite":
        return composite_queries(code, definition, [e for per_resource in values for e in per_resource])
    builder = {"token": token_queries, "string": string_queries, "date": date_queries,
               "number": quantity_queries, "quantity": quantity_queries, "reference": reference_queries,
               "uri": uri_queries}[kind_of]
    return builder(code, _flat(values))


# ------------------------------------------------------------------------------------------- comparison

def server_ids(client: TestClient, resource_type: str, name: str, value: str) -> set[str] | str:
    """The ids the server finds, or the reason it did not answer (an error, an ignored parameter)."""
    ids: set[str] = set()
    url, params = f"/fhir/{resource_type}", [(name, value), ("_count", "1000")]
    for _ in range(MAX_PAGES):
        response = client.get(url, params=params, headers=STRICT)
        if response.status_code != 200:
            return f"HTTP {response.status_code}: {response.text[:300]}"
        bundle = response.json()
        for entry in bundle.get("entry", []):
            if entry.get("search", {}).get("mode") == "outcome":
                return f"ignored, with an OperationOutcome: {json.dumps(entry['resource'])[:300]}"
            ids.add(entry["resource"]["id"])
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        params = None
        if url is None:
            return ids
    return f"more than {MAX_PAGES} pages"


def _cases() -> list:
    cases = []
    for resource_type in TYPES:
        for code in sorted(parameters_for(resource_type)):
            cases.append(pytest.param(resource_type, code, id=f"{resource_type}.{code}"))
    return cases


@pytest.mark.parametrize(("resource_type", "code"), _cases())
def test_parameter_matches_reference(loaded: Loaded, resource_type: str, code: str):
    if code in NOT_SUPPORTED:
        pytest.skip(f"{code} is in docs/search.md's list of parameters that are not supported")
    definition = parameters_for(resource_type)[code]
    queries = queries_for(loaded, resource_type, code, definition)
    assert queries
    failures = []
    for name, value in queries:
        shown = f"GET {resource_type}?{urlencode([(name, value)])}"
        expected = loaded.reference.search(resource_type, [(name, value)])
        found = server_ids(loaded.client, resource_type, name, value)
        if isinstance(found, str):
            failures.append(f"{shown}: {found}")
        elif found != expected:
            missing, extra = sorted(expected - found), sorted(found - expected)
            failures.append(f"{shown}: server {len(found)}, reference {len(expected)}; "
                            f"not found {len(missing)} {missing[:5]}; not expected {len(extra)} {extra[:5]}")
    assert not failures, f"{len(failures)} of {len(queries)} queries differ:\n" + "\n".join(failures)
