"""`python -m bench.medication_review`: Patient/[id]/$medication-review for every member of the loaded corpus
with two or more active medicines, into docs/benchmarks.md between its own markers.

The first `--bundles` bundles of the Synthea corpus (all by default) are ingested over HTTP into a fresh
database (PostgreSQL unless `--backend sqlite`), and the operation is called over HTTP, one member after
another, for each member whose active MedicationRequests name two or more medicines. The issue asks that it
never fails; the block gives the calls' times, the failures, and how many members have each kind of finding
and each interaction.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.corpus_run import FHIR_JSON, loaded_server, parser, run
from bench.ingest import IngestResult

BEGIN = "<!-- bench-medication-review:begin -->"
END = "<!-- bench-medication-review:end -->"
TIMEOUT_S = 120.0
PAGE = 1000


@dataclass
class Run:
    backend: str
    ingest: IngestResult
    members: int
    reviewed: int = 0
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "Patient/id: status text"
    kinds: Counter = field(default_factory=Counter)  # finding kind: members with one
    interactions: Counter = field(default_factory=Counter)  # interaction entry: members with it
    unmapped: int = 0  # members with a medicine that maps to no ingredient


def members_on_two_or_more(client: httpx.Client) -> list[str]:
    """The Patient ids whose active MedicationRequests name two or more distinct medicines."""
    medicines: dict[str, set[str]] = defaultdict(set)
    url, params = "/MedicationRequest", {"status": "active", "_count": str(PAGE),
                                         "_elements": "subject,medicationCodeableConcept,medicationReference"}
    while url:
        bundle = client.get(url, params=params).raise_for_status().json()
        for entry in bundle.get("entry", []):
            request = entry["resource"]
            medicine = request.get("medicationCodeableConcept") or request.get("medicationReference") or {}
            medicines[request["subject"]["reference"].partition("/")[2]].add(str(medicine))
        url = next((link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None)
        params = None  # the next link carries them
    return sorted(patient for patient, named in medicines.items() if len(named) >= 2)


def review(client: httpx.Client, patient: str, run: Run) -> None:
    started = time.perf_counter()
    response = client.post(f"/Patient/{patient}/$medication-review", json={"resourceType": "Parameters"})
    run.seconds.append(time.perf_counter() - started)
    if response.status_code != 200:
        run.failures.append(f"Patient/{patient}: {response.status_code} {response.text[:200]}")
        return
    run.reviewed += 1
    parts = response.json()["parameter"]
    issues = [p["resource"] for p in parts if p["name"] == "issue"]
    run.kinds.update({kind_of(issue) for issue in issues})
    run.interactions.update({finding_of(issue) for issue in issues if kind_of(issue) == "DRG"})
    run.unmapped += any(p["name"] == "unmapped" for p in parts)


def kind_of(issue: dict) -> str:
    return issue["code"]["coding"][0]["code"]


def finding_of(issue: dict) -> str:
    """The knowledge entry an interaction comes from: its identifier's value up to the ingredients."""
    return issue["identifier"][0]["value"].partition(":")[0]


def measure(args: argparse.Namespace, corpus: Path, tmp: Path, log: Path) -> Run:
    with loaded_server(args, corpus, tmp, log) as loaded, \
            httpx.Client(base_url=loaded.base_url, headers=FHIR_JSON, timeout=TIMEOUT_S) as client:
        patients = members_on_two_or_more(client)
        measured = Run(args.backend, loaded.ingest, len(patients))
        print(f"reviewing {len(patients)} members with two or more active medicines", flush=True)
        for patient in patients:
            review(client, patient, measured)
    return measured


def render(measured: object, facts: list[tuple[str, str]], command: str) -> str:
    assert isinstance(measured, Run)
    run = measured
    lines = [f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Command: `{command}`", ""]
    lines += [f"- {name}: {value}" for name, value in facts] + [""]
    total = sum(run.seconds)
    median = statistics.median(run.seconds) if run.seconds else 0.0
    slowest = max(run.seconds, default=0.0)
    lines += ["### Target", "", "| target | measured | met |", "| --- | --- | --- |",
              f"| $medication-review for every member with 2 or more active medicines never fails | "
              f"{run.reviewed:,} of {run.members:,} reviewed, {len(run.failures)} failed ({run.backend}, "
              f"{run.ingest.resources:,} resources) | {'yes' if not run.failures else '**no**'} |", "",
              f"Calls one after another: {total:.1f} s in all, median {median * 1000:.0f} ms, slowest "
              f"{slowest * 1000:.0f} ms. Members with a medicine that maps to no ingredient: {run.unmapped}.", "",
              "### Members with each kind of finding", "", "| DetectedIssue.code | members |", "| --- | ---: |"]
    lines += [f"| {kind} | {n:,} |" for kind, n in run.kinds.most_common()]
    lines += ["", "### Members with each interaction", "", "| interaction (knowledge entry) | members |",
              "| --- | ---: |"]
    lines += [f"| {entry} | {n:,} |" for entry, n in run.interactions.most_common()] or ["| none | 0 |"]
    lines += [""] + [f"- failed: {failure}" for failure in run.failures[:10]]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parser("python -m bench.medication_review", __doc__).parse_args(argv)
    measured, status = run("bench.medication_review", args, argv, BEGIN, END, measure, render)
    if status:
        return status
    assert isinstance(measured, Run)
    return 1 if measured.failures or measured.ingest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
