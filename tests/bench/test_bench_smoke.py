"""`make bench` keeps working: a tiny run of the harness on SQLite writes a report with its figures; the scaled
corpus generator copies bundles consistently; the search workload builds its requests from sampled data.
Nothing here asserts on a timing."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import orjson
import pytest
from conftest import CORPORA
from fastapi.testclient import TestClient

from bench.report import BackendResult, render
from bench.scale import copy_bundle, iter_scaled, scaled_bundles
from bench.search import (
    KINDS,
    MIX,
    Catalog,
    Measure,
    SearchRun,
    build_requests,
    discover,
    mix_requests,
    next_link,
)
from fhir_server.app import create_app
from fhir_server.config import AuthMode, Settings
from fhir_server.store.db import make_engine
from fhir_server.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
CORPUS = CORPORA / "synthea-r4.tar.gz"
needs_corpus = pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent)")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@needs_corpus
def test_small_bench_run_writes_its_report(tmp_path):
    report = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--backends", "sqlite", "--bundles", "3", "--clients", "2",
         "--duration", "1", "--levels", "1", "--corpus", str(CORPUS), "--out", str(report),
         "--load-generator", "python"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    assert "<!-- bench:begin -->" in text and "<!-- bench:end -->" in text
    ingest = re.search(r"^\| transactions \| 3 of 3 \| ([\d,]+) \|.* (\d+) \|$", text, re.MULTILINE)
    assert ingest and int(ingest[1].replace(",", "")) > 0 and ingest[2] == "0"  # resources, failures
    assert re.search(r"^\| 1 \| [\d,]+ \| [\d.]+ ms \| [\d.]+ ms \| 0 \|$", text, re.MULTILINE)  # reads
    assert "Search at" not in text  # search is on by default on PostgreSQL only


@needs_corpus
def test_small_validation_bench_writes_its_block(tmp_path):
    """bench/validation.py: the in-process rate, and on PostgreSQL (when the tests have one) the writes."""
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n<!-- bench-validation:begin -->\nold\n<!-- bench-validation:end -->\n")
    postgres = os.environ.get("FHIR_TEST_POSTGRES_URL")
    writes = ["--write-bundles", "1", "--postgres-url", postgres, "--database",
              f"careweave_bench_{uuid.uuid4().hex[:8]}"] if postgres else ["--write-bundles", "0"]
    result = subprocess.run([sys.executable, "-m", "bench.validation", "--bundles", "1", "--corpus", str(CORPUS),
                             "--out", str(report), *writes], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = report.read_text()
    assert "old" not in text
    assert re.search(r"^\| validation against base R4 ≥ 1,000 resources/s \| [\d,]+/s \([\d,]+ Synthea", text,
                     re.MULTILINE), text
    if postgres:
        assert [m[1] for m in re.finditer(r"^\| (off|claimed|all) \| [\d,]+ \| [\d,]+ \| 0 \|$", text,
                                          re.MULTILINE)] == ["off", "claimed", "off", "claimed", "all"], text


@needs_corpus
def test_small_bench_run_with_search_and_scale(tmp_path):
    """The whole search flow on SQLite: corpus, search, scaled copies on top, search again, and the report."""
    report = tmp_path / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--backends", "sqlite", "--bundles", "2", "--clients", "2",
         "--duration", "1", "--levels", "1", "--corpus", str(CORPUS), "--out", str(report),
         "--load-generator", "python", "--search", "--scale", "1200", "--search-duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    scaled = re.search(r"^\| scaled copies \(seed 1\), on top \| (\d+) of (\d+) \| ([\d,]+) \|.* (\d+) \|$",
                       text, re.MULTILINE)
    assert scaled and scaled[1] == scaled[2] and scaled[4] == "0", text
    runs = re.findall(r"^Search at ([\d,]+) resources", text, re.MULTILINE)
    assert len(runs) == 2 and int(runs[1].replace(",", "")) >= 1200
    for kind in [k.name for k in KINDS] + [MIX]:
        assert re.search(rf"^\| {re.escape(kind)}( \(walks\))? \| ", text, re.MULTILINE), kind
    assert "against corpus" in text  # the comparison table


# ---- the scaled corpus -----------------------------------------------------------------------------------


def tiny_bundle(n: int = 0) -> dict:
    """A Synthea-shaped transaction: POSTs with urn:uuid fullUrls and references, a Patient with identifiers."""
    def uid(k: int) -> str:
        return f"{n:08x}-0000-4000-8000-{k:012x}"

    patient, encounter, org, practitioner = uid(1), uid(2), uid(3), uid(4)
    mrn = uid(99)

    def entry(resource: dict) -> dict:
        return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]}}

    resources = [
        {"resourceType": "Patient", "id": patient,
         "identifier": [{"system": "https://github.com/synthetichealth/synthea", "value": mrn},
                        {"system": "http://hospital.smarthealthit.org", "value": mrn,
                         "type": {"coding": [{"code": "MR"}]}},
                        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-22-1962"},
                        {"system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "S99942380"}],
         "name": [{"use": "official", "family": f"Koepp{'abc'[n % 3]}", "given": ["Abdul"]}],
         "gender": "male", "birthDate": f"19{50 + n:02d}-08-03"},
        {"resourceType": "Organization", "id": org, "name": "Clinic"},
        {"resourceType": "Practitioner", "id": practitioner, "name": [{"family": "Doc"}]},
        {"resourceType": "Encounter", "id": encounter, "status": "finished", "class": {"code": "AMB"},
         "subject": {"reference": f"urn:uuid:{patient}"},
         "participant": [{"individual": {"reference": f"urn:uuid:{practitioner}"}}],
         "serviceProvider": {"reference": f"urn:uuid:{org}"},
         "period": {"start": f"2019-0{1 + n % 5}-10T10:00:00-05:00", "end": "2019-06-10T11:00:00-05:00"}},
        {"resourceType": "Condition", "id": uid(5),
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                        "code": "active"}]},
         "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
         "subject": {"reference": f"urn:uuid:{patient}"}, "encounter": {"reference": f"urn:uuid:{encounter}"}},
        {"resourceType": "Observation", "id": uid(6), "status": "final",
         "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
         "subject": {"reference": f"urn:uuid:{patient}"}, "encounter": {"reference": f"urn:uuid:{encounter}"},
         "effectiveDateTime": "2019-01-10T10:00:00-05:00",
         "valueQuantity": {"value": 180 + n, "unit": "cm", "system": "http://unitsofmeasure.org", "code": "cm"}},
        {"resourceType": "MedicationRequest", "id": uid(7), "status": "active", "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                   "code": "314076"}]},
         "subject": {"reference": f"urn:uuid:{patient}"}, "encounter": {"reference": f"urn:uuid:{encounter}"},
         "requester": {"reference": f"urn:uuid:{practitioner}"}},
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": [entry(r) for r in resources]}


def references(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [ref for child in value.values() for ref in references(child)]
    if isinstance(value, list):
        return [ref for child in value for ref in references(child)]
    return []


def check_copy(original: dict, body: bytes) -> dict:
    """A copy is a well-formed bundle of the same shape whose ids are all new and whose references resolve."""
    bundle = orjson.loads(body)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == \
        [e["resource"]["resourceType"] for e in original["entry"]]
    full_urls = [e["fullUrl"] for e in bundle["entry"]]
    ids = [e["resource"]["id"] for e in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls) and len(set(ids)) == len(ids)
    assert full_urls == [f"urn:uuid:{i}" for i in ids]
    old_uuids = set(UUID.findall(orjson.dumps(original).decode()))
    assert not old_uuids & set(UUID.findall(body.decode())), "a UUID of the original survived"
    for entry in bundle["entry"]:
        for reference in references(entry["resource"]):
            if not reference.startswith("#"):
                assert reference in full_urls, f"{reference} does not resolve inside the bundle"
    return bundle


def test_a_copy_has_fresh_ids_consistent_references_and_a_distinct_patient():
    original = tiny_bundle()
    one = check_copy(original, copy_bundle(orjson.dumps(original), seed=7, copy=1, index=0)[0])
    two = check_copy(original, copy_bundle(orjson.dumps(original), seed=7, copy=2, index=0)[0])
    assert not {e["fullUrl"] for e in one["entry"]} & {e["fullUrl"] for e in two["entry"]}
    patients = [b["entry"][0]["resource"] for b in (original, one, two)]
    assert [p["name"][0]["family"] for p in patients] == ["Koeppa", "Koeppa1", "Koeppa2"]
    for field in range(4):  # Synthea id, MRN, SSN, driver's licence: all different in each copy
        assert len({p["identifier"][field]["value"] for p in patients}) == 3
    mrn = patients[1]["identifier"][1]["value"]
    assert UUID.fullmatch(mrn) and patients[1]["identifier"][0]["value"] == mrn  # still one person id
    assert patients[1]["birthDate"] == patients[0]["birthDate"]  # clinical content is kept


def test_copies_are_deterministic_by_seed():
    body = orjson.dumps(tiny_bundle())
    assert copy_bundle(body, seed=3, copy=1, index=5) == copy_bundle(body, seed=3, copy=1, index=5)
    assert copy_bundle(body, seed=3, copy=1, index=5)[0] != copy_bundle(body, seed=4, copy=1, index=5)[0]
    assert copy_bundle(body, seed=3, copy=1, index=5)[0] != copy_bundle(body, seed=3, copy=1, index=6)[0]


def write_corpus(path: Path, bundles: dict[str, dict]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, bundle in bundles.items():
            data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2)
            info = tarfile.TarInfo(f"SYNTHEA/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_scaled_bundles_stream_copies_in_passes_until_the_target(tmp_path):
    hospitals = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:ef58ea08-d883-3957-8300-150554edc8fb",
         "request": {"method": "POST", "url": "Organization"},
         "resource": {"resourceType": "Organization", "id": "ef58ea08-d883-3957-8300-150554edc8fb"}}]}
    originals = {"a.json": tiny_bundle(0), "hospitalInformation1.json": hospitals, "b.json": tiny_bundle(1)}
    corpus = write_corpus(tmp_path / "corpus.tar.gz", originals)
    per_bundle = len(tiny_bundle()["entry"])  # 7
    bundles = list(iter_scaled(corpus, 5 * per_bundle - 3, seed=11))  # 2 full passes, then 1 bundle of the 3rd
    assert [b.name for b in bundles] == ["copy1-a.json", "copy1-b.json", "copy2-a.json", "copy2-b.json",
                                         "copy3-a.json"]  # the bundle with no Patient is not copied
    assert sum(b.entries for b in bundles) == 5 * per_bundle
    all_urls: list[str] = []
    for bundle in bundles:
        original = originals[bundle.name.split("-", 1)[1]]
        copied = check_copy(original, bundle.body)
        copy_number = bundle.name[4]
        assert copied["entry"][0]["resource"]["name"][0]["family"].endswith(copy_number)
        all_urls += [e["fullUrl"] for e in copied["entry"]]
    assert len(set(all_urls)) == len(all_urls)
    assert list(scaled_bundles(corpus, 5 * per_bundle - 3, seed=11)) == [b.body for b in bundles]
    assert list(scaled_bundles(corpus, 5 * per_bundle - 3, seed=12)) != [b.body for b in bundles]
    assert list(iter_scaled(corpus, 0, seed=11)) == []


@needs_corpus
def test_scaled_copies_of_synthea_bundles_resolve_inside_themselves():
    originals = {}
    with tarfile.open(CORPUS, "r|gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".json"):
                originals[member.name.rsplit("/", 1)[-1]] = orjson.loads(archive.extractfile(member).read())
            if len(originals) == 12:
                break
    bundles = list(iter_scaled(CORPUS, 1500, seed=1))
    assert bundles and sum(b.entries for b in bundles) >= 1500
    assert sum(b.entries for b in bundles[:-1]) < 1500
    for bundle in bundles:
        name = bundle.name.split("-", 1)[1]
        copied = check_copy(originals[name], bundle.body)
        patient = next(e["resource"] for e in copied["entry"] if e["resource"]["resourceType"] == "Patient")
        assert patient["name"][0]["family"].endswith("1")
    assert [b.body for b in iter_scaled(CORPUS, 1500, seed=1)] == [b.body for b in bundles]


# ---- the search workload's requests ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    """The real app in-process over SQLite, holding six tiny patients' bundles."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bench-search')}/fhir.sqlite3"
    upgrade(make_engine(url))
    settings = Settings(database_url=url, base_url="http://testserver/fhir", log_level="WARNING",
                        auth_mode=AuthMode.open)
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        for n in range(6):
            response = client.post("/fhir", content=orjson.dumps(tiny_bundle(n)),
                                   headers={"Content-Type": "application/fhir+json"})
            assert response.status_code == 200, response.text
        yield client


def getter(client: TestClient, seen: list[str]):
    def get(url: str) -> dict:
        seen.append(url)
        response = client.get(url if url.startswith("http") else f"/fhir/{url}")
        assert response.status_code == 200, response.text
        return response.json()
    return get


def test_discovery_samples_the_loaded_data_through_the_api(tiny_server):
    seen: list[str] = []
    catalog = discover(getter(tiny_server, seen), page_size=4, pages=3)
    assert any("_cursor" in url for url in seen)  # the second pages came through `next` links
    ids = {pid for pid, _, _ in catalog.patients}
    assert len(ids) == 6
    assert {family for _, family, _ in catalog.patients} == {"Koeppa", "Koeppb", "Koeppc"}
    assert {(pid in ids, code) for pid, code in catalog.observations} == {(True, "8302-2")}
    assert {(pid in ids, code, status) for pid, code, status in catalog.conditions} == {(True, "44054006", "active")}
    assert {(pid in ids, status) for pid, status in catalog.medication_requests} == {(True, "active")}
    assert len(catalog.encounter_dates) == 6 and all(re.fullmatch(r"2019-0\d-10", d) for d in catalog.encounter_dates)
    assert catalog.counts()["patients"] == 6


def test_requests_cover_every_kind_with_sampled_values(tiny_server):
    catalog = discover(getter(tiny_server, []))
    requests = build_requests(catalog, seed=5, per_kind=20)
    assert build_requests(catalog, seed=5, per_kind=20) == requests  # deterministic
    assert set(requests) == {kind.name for kind in KINDS}
    patient_ids = {pid for pid, _, _ in catalog.patients}
    for kind in KINDS:
        paths = requests[kind.name]
        assert len(paths) == 20, kind.name
        for path in paths:
            assert not path.startswith("/") and " " not in path
            prefix = kind.template.split("<", 1)[0]
            assert path.startswith(prefix), (kind.name, path)
            if "patient=" in path or path.startswith("Patient/"):
                pid = re.search(r"(?:patient=|Patient/)([^&/]+)", path)[1]
                assert pid in patient_ids
    assert {p.split("=")[1] for p in requests["patient-name"]} == {"Koe"}
    assert all(re.fullmatch(r"Patient\?birthdate=ge19\d\d-08-03", p) for p in requests["patient-birthdate"])
    assert all(p.endswith("&code=8302-2&_sort=-date&_count=10") for p in requests["observation"])
    assert all(re.fullmatch(r"Encounter\?date=ge2019-0\d-10&_count=50", p) for p in requests["encounter-paging"])
    assert set(requests["patient-has-condition"]) == {"Patient?_has:Condition:subject:code=44054006"}
    mix = mix_requests(requests)
    assert len(mix) == 4 * 20
    assert [p.split("?")[0].split("/")[0] for p in mix[:4]] == ["Observation", "Condition", "MedicationRequest",
                                                                "Patient"]


def test_kinds_without_sampled_data_get_no_requests():
    catalog = Catalog()
    catalog.add({"resourceType": "Patient", "id": "p1", "name": [{"family": "Ng7"}], "birthDate": "1970-01-01"})
    requests = build_requests(catalog, seed=1, per_kind=3)
    assert requests["patient-name"] == []  # "Ng" is shorter than a prefix
    assert requests["everything"] == ["Patient/p1/$everything"] * 3
    assert requests["observation"] == requests["condition"] == requests["encounter-paging"] == []
    assert mix_requests(requests) == ["Patient/p1/$everything"] * 3
    assert next_link({"link": [{"relation": "self", "url": "a"}, {"relation": "next", "url": "b"}]}) == "b"
    assert next_link({"link": [{"relation": "self", "url": "a"}]}) is None


def test_report_renders_search_tables_ratios_and_targets():
    def runs(scale: float) -> list[Measure]:
        return [Measure(c, int(1000 / scale), 10.0, 2.0 * scale * (1 + c / 8), 9.0 * scale * (1 + c / 8), 0,
                        pages=int(3000 / scale), page_p50_ms=1.0, page_p99_ms=4.0)
                for c in (1, 8, 32)]

    corpus = SearchRun("corpus", 191_093, {"patients": 600},
                       {kind.name: runs(1) for kind in KINDS} | {MIX: runs(1)})
    scaled = SearchRun("corpus and scaled copies", 1_000_400, {"patients": 600},
                       {kind.name: runs(12 if kind.name == "everything" else 2) for kind in KINDS} | {MIX: runs(2)})
    result = BackendResult("postgres", searches=[corpus, scaled], analyze_seconds=[1.0, 9.5])
    text = render([result], [("CPUs (nproc)", "2")], "cmd", "settings", whole_corpus=True)
    assert "| patient-scoped search mix ≥ 500 searches/s, p99 ≤ 100 ms, at 32 connections, 1,000,000 resources" in text
    assert "**no**: -90% searches/s" in text  # 50 searches/s at 32 connections is 90 % short of 500
    assert "**no**: everything 12.0×" in text  # the one kind over 10× its corpus-size time
    assert re.search(r"^\| encounter-paging \(pages; 3\.0 a walk\) \|", text, re.MULTILINE)
    assert re.search(r"^\| observation \| 2\.2 ms \| 4\.5 ms \| 2\.0× \|", text, re.MULTILINE)
    assert "VACUUM ANALYZE before it took 9.5 s" in text
