"""Search workload: discover parameter values in the loaded data through the FHIR API, then load each query
kind alone, the patient-scoped mix, and the Encounter paging walk, at fixed numbers of connections.

Discovery reads the first pages of `GET [base]/[type]?_count=1000` for Patient, Observation, Condition,
MedicationRequest and Encounter. The server's default order is by id, and ids are random UUIDs it assigned,
so those pages are a uniform sample of each type across the whole database (not the first bundles loaded).
From the sample come (patient, LOINC code) pairs that exist, patients with Conditions and MedicationRequests,
family-name prefixes, birth dates, Condition codes weighted by how often they occur, and Encounter start
dates. `build_requests` turns that into request paths per query kind, deterministically for a seed.

Single-request kinds are loaded with wrk and bench/search_paths.lua (the paths in turn, cycling) or, without
wrk, bench/load.py's Python generator. The Encounter kind follows `next` links to the last page, so it is
driven by an asyncio + httpx client here: one operation is the whole walk, and each page is timed too.
Every search request carries `Prefer: handling=strict`: a parameter the server does not support is a 400 and
counts as an error instead of being silently dropped (which would measure a different query).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import orjson

from bench.load import read_load
from bench.stats import percentile

SEARCH_SCRIPT = Path(__file__).with_name("search_paths.lua")
STRICT = {"Prefer": "handling=strict"}
HEADERS = {"Accept": "application/fhir+json", **STRICT}
SEARCH_TIMEOUT_S = 10.0  # per request (per page of a walk); slower answers count as errors
DISCOVERY_TYPES = ("Patient", "Observation", "Condition", "MedicationRequest", "Encounter")
DISCOVERY_PAGE_SIZE = 1000  # the server's FHIR_MAX_PAGE_SIZE default
DISCOVERY_PAGES = 2
PATHS_PER_KIND = 400
NAME_PREFIX_LENGTH = 3
# `Encounter?date=ge<date>` cut-offs: these quantiles of the sampled start dates, so that each walk covers
# roughly the last 0.5 to 2 % of Encounters (a few pages at 191k resources, about 5 times as many at 1M).
ENCOUNTER_QUANTILES = (0.98, 0.985, 0.99, 0.995)
ENCOUNTER_PAGE_SIZE = 50
MAX_PAGES_PER_WALK = 10_000  # a `next` link that never ends is an error, not a hang
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    template: str
    scoped: bool = False  # part of the patient-scoped mix
    paged: bool = False  # followed through `next` links; one operation is the whole walk


KINDS = (
    Kind("patient-name", "Patient by name prefix", "Patient?name=<prefix>"),
    Kind("patient-birthdate", "Patient by birth date", "Patient?birthdate=ge<date>"),
    Kind("observation", "Observations of a patient by code",
         "Observation?patient=<id>&code=<loinc>&_sort=-date&_count=10", scoped=True),
    Kind("condition", "active Conditions of a patient", "Condition?patient=<id>&clinical-status=active",
         scoped=True),
    Kind("medication-request", "active MedicationRequests of a patient, with their Medications",
         "MedicationRequest?patient=<id>&status=active&_include=MedicationRequest:medication", scoped=True),
    Kind("encounter-paging", "Encounters since a date, every page",
         f"Encounter?date=ge<date>&_count={ENCOUNTER_PAGE_SIZE}", paged=True),
    Kind("patient-has-condition", "Patients with a Condition code", "Patient?_has:Condition:subject:code=<snomed>"),
    Kind("everything", "Patient $everything", "Patient/<id>/$everything", scoped=True),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}
MIX = "patient-scoped-mix"
MIX_LABEL = "patient-scoped mix: " + ", ".join(kind.name for kind in KINDS if kind.scoped) + ", in turn"


@dataclass
class Catalog:
    """Facts sampled from the loaded data, enough to build requests that find something."""

    patients: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # id, family, birthDate
    observations: list[tuple[str, str]] = field(default_factory=list)  # patient id, LOINC code
    conditions: list[tuple[str, str, str | None]] = field(default_factory=list)  # patient id, SNOMED, status
    medication_requests: list[tuple[str, str | None]] = field(default_factory=list)  # patient id, status
    encounter_dates: list[str] = field(default_factory=list)  # period.start, YYYY-MM-DD

    def add(self, resource: dict) -> None:
        kind = resource.get("resourceType")
        if kind == "Patient" and isinstance(resource.get("id"), str):
            family = next((name["family"] for name in resource.get("name", [])
                           if isinstance(name, dict) and isinstance(name.get("family"), str)), None)
            self.patients.append((resource["id"], family, _date(resource.get("birthDate"))))
        elif kind == "Observation" and (patient := _patient_of(resource)):
            for code in _codes(resource.get("code"), LOINC):
                self.observations.append((patient, code))
        elif kind == "Condition" and (patient := _patient_of(resource)):
            status = next(iter(_codes(resource.get("clinicalStatus"), None)), None)
            for code in _codes(resource.get("code"), SNOMED):
                self.conditions.append((patient, code, status))
        elif kind == "MedicationRequest" and (patient := _patient_of(resource)):
            self.medication_requests.append((patient, resource.get("status")))
        elif kind == "Encounter":
            period = resource.get("period")
            if isinstance(period, dict) and (start := _date(period.get("start"))):
                self.encounter_dates.append(start)

    def counts(self) -> dict[str, int]:
        return {
            "patients": len({p[0] for p in self.patients}),
            "observation codes": len({code for _, code in self.observations}),
            "patients with observations": len({p for p, _ in self.observations}),
            "condition codes": len({code for _, code, _ in self.conditions}),
            "patients with conditions": len({p for p, _, _ in self.conditions}),
            "patients with medication requests": len({p for p, _ in self.medication_requests}),
            "encounters": len(self.encounter_dates),
        }


Getter = Callable[[str], dict]


def discover(get: Getter, *, page_size: int = DISCOVERY_PAGE_SIZE, pages: int = DISCOVERY_PAGES,
             types: Iterable[str] = DISCOVERY_TYPES) -> Catalog:
    """Sample the loaded data through the FHIR API. `get` takes a path relative to the base (or a `next`
    URL as the server wrote it) and returns the parsed searchset Bundle; it raises on failure."""
    catalog = Catalog()
    for resource_type in types:
        url: str | None = f"{resource_type}?_count={page_size}&_total=none"
        for _ in range(pages):
            if url is None:
                break
            bundle = get(url)
            for entry in bundle.get("entry", []):
                if entry.get("search", {}).get("mode", "match") == "match" and isinstance(entry.get("resource"), dict):
                    catalog.add(entry["resource"])
            url = next_link(bundle)
    return catalog


def http_getter(client: httpx.Client) -> Getter:
    """A `get` for discover() over an httpx client whose base_url is the FHIR base."""
    def get(url: str) -> dict:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: HTTP {response.status_code}: {response.text[:300]}")
        return orjson.loads(response.content)
    return get


def build_requests(catalog: Catalog, seed: int, per_kind: int = PATHS_PER_KIND) -> dict[str, list[str]]:
    """Request paths (relative to the FHIR base) per query kind; a kind with no data to use has none."""
    rng = random.Random(seed)

    def pick(values: list, render: Callable[..., str]) -> list[str]:
        if not values:
            return []
        return [render(*_as_tuple(rng.choice(values))) for _ in range(per_kind)]

    patient_ids = sorted({pid for pid, _, _ in catalog.patients})
    prefixes = sorted({prefix for _, family, _ in catalog.patients if (prefix := _name_prefix(family))})
    birth_dates = sorted({birth for _, _, birth in catalog.patients if birth})
    observations = sorted(set(catalog.observations))
    condition_patients = sorted({p for p, _, status in catalog.conditions if status == "active"}
                                or {p for p, _, _ in catalog.conditions})
    medication_patients = sorted({p for p, status in catalog.medication_requests if status == "active"}
                                 or {p for p, _ in catalog.medication_requests})
    condition_codes = sorted(code for _, code, _ in catalog.conditions)  # repeats: frequent codes weigh more
    cutoffs = _quantiles(sorted(catalog.encounter_dates), ENCOUNTER_QUANTILES)

    return {
        "patient-name": pick(prefixes, lambda prefix: f"Patient?name={_q(prefix)}"),
        "patient-birthdate": pick(birth_dates, lambda day: f"Patient?birthdate=ge{day}"),
        "observation": pick(observations, lambda pid, code: (
            f"Observation?patient={_q(pid)}&code={_q(code)}&_sort=-date&_count=10")),
        "condition": pick(condition_patients, lambda pid: f"Condition?patient={_q(pid)}&clinical-status=active"),
        "medication-request": pick(medication_patients, lambda pid: (
            f"MedicationRequest?patient={_q(pid)}&status=active&_include=MedicationRequest:medication")),
        "encounter-paging": pick(cutoffs, lambda day: f"Encounter?date=ge{day}&_count={ENCOUNTER_PAGE_SIZE}"),
        "patient-has-condition": pick(condition_codes, lambda code: f"Patient?_has:Condition:subject:code={_q(code)}"),
        "everything": pick(patient_ids, lambda pid: f"Patient/{_q(pid)}/$everything"),
    }


def mix_requests(requests: dict[str, list[str]]) -> list[str]:
    """The patient-scoped kinds in turn: one of each, then the next of each, ..."""
    lists = [requests[kind.name] for kind in KINDS if kind.scoped and requests.get(kind.name)]
    if not lists:
        return []
    return [paths[i % len(paths)] for i in range(max(map(len, lists))) for paths in lists]


def next_link(bundle: dict) -> str | None:
    return next((link.get("url") for link in bundle.get("link", [])
                 if isinstance(link, dict) and link.get("relation") == "next"), None)


# ---- measurement -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One query kind at one number of connections. For a paged kind an operation is a whole walk."""

    connections: int
    operations: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    pages: int = 0
    page_p50_ms: float = 0.0
    page_p99_ms: float = 0.0

    @property
    def per_s(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def pages_per_walk(self) -> float:
        return self.pages / self.operations if self.operations else 0.0


@dataclass
class SearchRun:
    """The search workload on one data set (say the corpus, then the scaled corpus)."""

    label: str
    resources: int
    discovered: dict[str, int] = field(default_factory=dict)
    measures: dict[str, list[Measure]] = field(default_factory=dict)  # kind name or MIX -> one per level
    no_data: list[str] = field(default_factory=list)  # kinds the sample gave no values for
    error: str | None = None

    def at(self, kind: str, connections: int) -> Measure | None:
        return next((m for m in self.measures.get(kind, []) if m.connections == connections), None)


def run_search(base_url: str, wrk: str | None, levels: list[int], duration: float, workdir: Path, *,
               label: str, resources: int, seed: int) -> SearchRun:
    """Discover, then measure every kind and the patient-scoped mix at each level. Exceptions propagate."""
    run = SearchRun(label, resources)
    with httpx.Client(base_url=base_url, headers={"Accept": "application/fhir+json"},
                      timeout=max(SEARCH_TIMEOUT_S, 60.0)) as client:
        catalog = discover(http_getter(client))
    run.discovered = catalog.counts()
    print(f"  search ({label}): sampled " + ", ".join(f"{v:,} {k}" for k, v in run.discovered.items()), flush=True)
    requests = build_requests(catalog, seed)
    origin, base_path = _split_base(base_url)
    workdir.mkdir(parents=True, exist_ok=True)
    plan: list[tuple[str, list[str], bool]] = [(kind.name, requests[kind.name], kind.paged) for kind in KINDS]
    plan.append((MIX, mix_requests(requests), False))
    for name, paths, paged in plan:
        if not paths:
            run.no_data.append(name)
            print(f"  search ({label}): {name}: nothing in the sample to query with; skipped", flush=True)
            continue
        paths_file = workdir / f"search-{name}.txt"
        paths_file.write_text("".join(f"{base_path}/{path}\n" for path in paths))
        for level in levels:
            if paged:
                measure = walk_load(base_url, paths, level, duration)
            else:
                read = read_load(wrk, origin, paths_file, level, duration, script=SEARCH_SCRIPT, headers=STRICT,
                                 timeout_s=SEARCH_TIMEOUT_S)
                measure = Measure(read.connections, read.requests, read.seconds, read.p50_ms, read.p99_ms,
                                  read.errors)
            run.measures.setdefault(name, []).append(measure)
            print(f"  search ({label}): {name}, {level} connections: {measure.per_s:,.1f}/s, "
                  f"p50 {measure.p50_ms:.1f} ms, p99 {measure.p99_ms:.1f} ms, {measure.errors} errors"
                  + (f", {measure.pages_per_walk:.1f} pages a walk, page p99 {measure.page_p99_ms:.1f} ms"
                     if paged else ""), flush=True)
    return run


def walk_load(base_url: str, starts: list[str], connections: int, duration: float,
              timeout_s: float = SEARCH_TIMEOUT_S) -> Measure:
    """Walk searches from `starts` (paths relative to `base_url`) through their `next` links, `connections`
    walks at a time, starting new walks for `duration` seconds (walks under way then are finished)."""
    return asyncio.run(_walks(base_url, starts, connections, duration, timeout_s))


async def _walks(base_url: str, starts: list[str], connections: int, duration: float,
                 timeout_s: float) -> Measure:
    walk_ms: list[float] = []
    page_ms: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, headers=HEADERS, timeout=timeout_s) as client:

        async def connection(offset: int, end: float) -> None:
            nonlocal errors
            index = offset
            while time.perf_counter() < end:
                url: str | None = f"{base_url}/{starts[index % len(starts)]}"
                index += 1
                began, pages, ok = time.perf_counter(), 0, True
                while url is not None:
                    sent = time.perf_counter()
                    try:
                        response = await client.get(url)
                    except httpx.HTTPError:
                        ok = False
                        break
                    if response.status_code != 200 or pages >= MAX_PAGES_PER_WALK:
                        ok = False
                        break
                    page_ms.append((time.perf_counter() - sent) * 1000)
                    pages += 1
                    try:
                        url = next_link(orjson.loads(response.content))
                    except orjson.JSONDecodeError:
                        ok = False
                        break
                if ok:
                    walk_ms.append((time.perf_counter() - began) * 1000)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(connection(i * len(starts) // connections, started + duration)
                               for i in range(connections)))
        seconds = time.perf_counter() - started
    walk_ms.sort()
    page_ms.sort()
    return Measure(connections, len(walk_ms), seconds, percentile(walk_ms, 50), percentile(walk_ms, 99), errors,
                   pages=len(page_ms), page_p50_ms=percentile(page_ms, 50), page_p99_ms=percentile(page_ms, 99))


# ---- helpers ---------------------------------------------------------------------------------------------


def _patient_of(resource: dict) -> str | None:
    """The Patient id of `subject` (or `patient`), from `Patient/<id>` or an absolute URL ending so."""
    for key in ("subject", "patient"):
        reference = resource.get(key)
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
            parts = reference["reference"].split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
                return parts[-1]
    return None


def _codes(concept: object, system: str | None) -> list[str]:
    """Codes of a CodeableConcept's codings, of `system` only unless it is None."""
    if not isinstance(concept, dict):
        return []
    return [coding["code"] for coding in concept.get("coding", [])
            if isinstance(coding, dict) and isinstance(coding.get("code"), str)
            and (system is None or coding.get("system") == system)]


def _date(value: object) -> str | None:
    return value[:10] if isinstance(value, str) and len(value) >= 10 and value[4] == "-" else None


def _name_prefix(family: str | None) -> str | None:
    """The first letters of a family name, without the copy number bench/scale.py appends."""
    if not family:
        return None
    letters = family.rstrip("0123456789")
    return letters[:NAME_PREFIX_LENGTH] if len(letters) >= NAME_PREFIX_LENGTH else None


def _quantiles(sorted_values: list[str], quantiles: Iterable[float]) -> list[str]:
    if not sorted_values:
        return []
    return sorted({sorted_values[int(q * (len(sorted_values) - 1))] for q in quantiles})


def _as_tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _q(value: str) -> str:
    return quote(value, safe="")


def _split_base(base_url: str) -> tuple[str, str]:
    """`http://host:port/fhir` -> (`http://host:port`, `/fhir`)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
