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
import os
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.corpus import iter_bundles
from bench.ingest import IngestResult, ingest
from bench.report import machine, splice
from bench.server import BENCH_DATABASE, Server, analyze, fresh_database, migrate, postgres_version

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench-medication-review:begin -->"
END = "<!-- bench-medication-review:end -->"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
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
    with fresh_database(args.backend, args.postgres_url, tmp, args.database) as database_url:
        migrate(database_url, log)
        with Server(database_url, args.workers, log) as server:
            print(f"ingesting {args.bundles or 'all'} bundles into {args.backend}", flush=True)
            loaded = ingest(server.base_url, iter_bundles(corpus, args.bundles), args.clients)
            analyze(database_url)
            with httpx.Client(base_url=server.base_url, headers=FHIR_JSON, timeout=TIMEOUT_S) as client:
                patients = members_on_two_or_more(client)
                run = Run(args.backend, loaded, len(patients))
                print(f"reviewing {len(patients)} members with two or more active medicines", flush=True)
                for patient in patients:
                    review(client, patient, run)
    return run


def render(run: Run, facts: list[tuple[str, str]], command: str) -> str:
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
    parser = argparse.ArgumentParser(prog="python -m bench.medication_review", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpora/synthea-r4.tar.gz"))
    parser.add_argument("--bundles", type=int, default=None, help="bundles loaded; all when not given")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="maintenance database used to create and drop --database")
    parser.add_argument("--database", default=BENCH_DATABASE, help="the database loaded (dropped after)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    corpus = REPO / args.corpus
    if not corpus.is_file():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    log = REPO / "bench" / "results" / "medication-review-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="careweave-bench-") as tmp:
        run = measure(args, corpus, Path(tmp), log)
    command = shlex.join([".venv/bin/python", "-m", "bench.medication_review",
                          *(argv if argv is not None else sys.argv[1:])])
    version = postgres_version(args.postgres_url) if args.backend == "postgres" else "not used"
    block = render(run, machine(version, load_before), command)
    splice(REPO / args.out, block, BEGIN, END)
    print("\n" + block)
    return 1 if run.failures or run.ingest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
