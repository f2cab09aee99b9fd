"""POST transaction bundles with a few concurrent clients and measure throughput and latency."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson

from bench.corpus import Bundle
from bench.stats import percentile

FHIR_JSON = "application/fhir+json"
# Large Synthea bundles hold thousands of entries; on SQLite writers queue behind one lock.
BUNDLE_TIMEOUT_S = 300.0
SHOWN_FAILURES = 5
PROGRESS_EVERY = 100


@dataclass
class IngestResult:
    bundles: int = 0
    ok_bundles: int = 0
    resources: int = 0  # entries of the bundles the server committed
    failures: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    patient_ids: list[str] = field(default_factory=list)

    @property
    def resources_per_s(self) -> float:
        return self.resources / self.seconds if self.seconds else 0.0

    @property
    def bundles_per_s(self) -> float:
        return self.ok_bundles / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float:
        return percentile(sorted(self.latencies_ms), q)


class _Run:
    """State shared by the client threads: the bundle source and the tallies, each behind a lock."""

    def __init__(self, bundles: Iterator[Bundle]) -> None:
        self._bundles = bundles
        self._source_lock = threading.Lock()
        self._tally_lock = threading.Lock()
        self.result = IngestResult()
        self.started = time.perf_counter()

    def next_bundle(self) -> Bundle | None:
        # The tar stream can only be read in order, so clients take turns decompressing the next member.
        with self._source_lock:
            return next(self._bundles, None)

    def record(self, bundle: Bundle, latency_ms: float, patient_ids: list[str], error: str | None) -> None:
        with self._tally_lock:
            result = self.result
            result.bundles += 1
            if error is None:
                result.ok_bundles += 1
                result.resources += bundle.entries
                result.latencies_ms.append(latency_ms)
                result.patient_ids.extend(patient_ids)
            else:
                result.failures += 1
                if result.failures <= SHOWN_FAILURES:
                    print(f"  ingest failure {result.failures}: {bundle.name}: {error}", flush=True)
            if result.bundles % PROGRESS_EVERY == 0:
                elapsed = time.perf_counter() - self.started
                print(f"  ingested {result.bundles} bundles, {result.resources:,} resources "
                      f"({result.resources / elapsed:,.0f}/s)", flush=True)


def ingest(base_url: str, bundles: Iterator[Bundle], clients: int) -> IngestResult:
    """POST every bundle to `base_url` as a transaction, `clients` at a time."""
    run = _Run(bundles)
    threads = [threading.Thread(target=_client, args=(base_url, run), daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.result.seconds = time.perf_counter() - run.started
    return run.result


def _client(base_url: str, run: _Run) -> None:
    headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
    with httpx.Client(headers=headers, timeout=BUNDLE_TIMEOUT_S) as client:
        while (bundle := run.next_bundle()) is not None:
            started = time.perf_counter()
            try:
                response = client.post(base_url, content=bundle.body)
                latency_ms = (time.perf_counter() - started) * 1000
                patient_ids, error = _check(response, bundle.entries)
            except httpx.HTTPError as exc:
                latency_ms, patient_ids, error = 0.0, [], f"{type(exc).__name__}: {exc}"
            run.record(bundle, latency_ms, patient_ids, error)


def _check(response: httpx.Response, entries: int) -> tuple[list[str], str | None]:
    """The Patient ids a transaction-response names, or why the response is a failure."""
    if response.status_code != 200:
        return [], f"HTTP {response.status_code}: {_diagnostics(response)}"
    try:
        locations = [entry["response"]["location"] for entry in orjson.loads(response.content)["entry"]]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return [], f"malformed transaction-response ({type(exc).__name__}: {exc})"
    if len(locations) != entries:
        return [], f"transaction-response has {len(locations)} entries for {entries} requests"
    return [rid for rtype, rid in map(_type_and_id, locations) if rtype == "Patient"], None


def _type_and_id(location: str) -> tuple[str, str]:
    # Locations are "Patient/<id>/_history/1", possibly absolute; the type and id precede _history.
    parts = location.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")


def _diagnostics(response: httpx.Response) -> str:
    """The OperationOutcome's diagnostics, else the start of the body."""
    try:
        issues = orjson.loads(response.content).get("issue", [])
        text = "; ".join(issue.get("diagnostics") or issue.get("code", "?") for issue in issues)
    except (orjson.JSONDecodeError, AttributeError):
        text = ""
    return text or response.text[:300]
