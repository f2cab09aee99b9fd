"""`python -m bench.candidates`: Patient/$care-candidates over every member of the loaded corpus, into
docs/benchmarks.md between its own markers.

The first `--bundles` bundles of the Synthea corpus (all by default) are ingested over HTTP into a fresh
database (PostgreSQL unless `--backend sqlite`), its statistics refreshed, and the operation is called over
HTTP for all members with `count=1000`, `--repeat` times after one warm-up call, by GET and by POST. The
issue's target: under 10 s on PostgreSQL for the whole corpus (about 600 members, 191k resources).
Synthea's records end in spring 2021, so `--as-of` defaults to 2021-04-01 for the look-back windows to
hold something.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.corpus_run import FHIR_JSON, loaded_server, parser, run
from bench.ingest import IngestResult

BEGIN = "<!-- bench-candidates:begin -->"
END = "<!-- bench-candidates:end -->"
TARGET_SECONDS = 10.0
CORPUS_BUNDLES = 617  # the bundles of ../shared/corpora/synthea-r4.tar.gz: fewer is a smoke run, no verdict
CALL_TIMEOUT_S = 300.0


@dataclass
class Timing:
    method: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Run:
    backend: str
    bundles: int
    ingest: IngestResult
    members: int
    qualified: int
    reasons: dict[str, int]  # reason code: candidates given it
    timings: list[Timing]
    analyze_seconds: float
    as_of: str


def call(base_url: str, method: str, as_of: str) -> tuple[float, dict]:
    """One call for every member; its wall time and the answer."""
    started = time.perf_counter()
    if method == "GET":
        response = httpx.get(f"{base_url}/Patient/$care-candidates", params={"asOf": as_of, "count": "1000"},
                             headers=FHIR_JSON, timeout=CALL_TIMEOUT_S)
    else:
        body = {"resourceType": "Parameters", "parameter": [{"name": "asOf", "valueDate": as_of},
                                                            {"name": "count", "valueInteger": 1000}]}
        response = httpx.post(f"{base_url}/Patient/$care-candidates", json=body, headers=FHIR_JSON,
                              timeout=CALL_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"$care-candidates answered {response.status_code}: {response.text[:500]}")
    return seconds, response.json()


def measure(args: argparse.Namespace, corpus: Path, tmp: Path, log: Path) -> Run:
    with loaded_server(args, corpus, tmp, log) as loaded:
        members = httpx.get(f"{loaded.base_url}/Patient", params={"_summary": "count"},
                            timeout=CALL_TIMEOUT_S).json()["total"]
        _, answer = call(loaded.base_url, "GET", args.as_of)  # warm-up: ValueSets, statement shapes
        timings = []
        for method in ("GET", "POST"):
            timing = Timing(method)
            for _ in range(args.repeat):
                seconds, answer = call(loaded.base_url, method, args.as_of)
                timing.seconds.append(seconds)
            print(f"  {method}: median {timing.median:.2f} s over {args.repeat} calls", flush=True)
            timings.append(timing)
    parameters = answer["parameter"]
    reasons: dict[str, int] = {}
    for candidate in (p for p in parameters if p["name"] == "candidate"):
        for part in candidate["part"]:
            if part["name"] == "reason":
                code = part["valueCodeableConcept"]["coding"][0]["code"]
                reasons[code] = reasons.get(code, 0) + 1
    qualified = next(p["valueInteger"] for p in parameters if p["name"] == "total")
    return Run(args.backend, loaded.ingest.ok_bundles, loaded.ingest, members, qualified, reasons, timings,
               loaded.analyze_seconds, args.as_of)


def render(measured: object, facts: list[tuple[str, str]], command: str) -> str:
    assert isinstance(measured, Run)
    run, as_of = measured, measured.as_of
    lines = [f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Command: `{command}`", ""]
    lines += [f"- {name}: {value}" for name, value in facts] + [""]
    whole = run.bundles >= CORPUS_BUNDLES and run.backend == "postgres"
    slowest = max(t.median for t in run.timings)
    verdict = ("yes" if slowest < TARGET_SECONDS else "**no**") if whole else \
        "– (part of the corpus or not PostgreSQL: a smoke run, no verdict)"
    lines += ["### Target", "", "| target | measured | met |", "| --- | --- | --- |",
              f"| $care-candidates over every member of the corpus < {TARGET_SECONDS:g} s on PostgreSQL | "
              f"{slowest:.2f} s (the slower method's median), {run.members:,} members, "
              f"{run.ingest.resources:,} resources ({run.backend}) | {verdict} |", "",
              f"### Calls (asOf {as_of}, count 1000, after one warm-up call)", "",
              "| method | calls | median | fastest | slowest |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {t.method} | {len(t.seconds)} | {t.median:.2f} s | {min(t.seconds):.2f} s | {max(t.seconds):.2f} s |"
              for t in run.timings]
    lines += ["", f"{run.qualified:,} of {run.members:,} members qualify. Reasons given: "
              + (", ".join(f"{code} {n:,}" for code, n in sorted(run.reasons.items(), key=lambda kv: -kv[1]))
                 or "none") + ".", "",
              f"Loading: {run.bundles:,} bundles, {run.ingest.resources:,} resources at "
              f"{run.ingest.resources_per_s:,.0f}/s, {run.ingest.failures} failures; "
              f"{'VACUUM ANALYZE' if run.backend == 'postgres' else 'ANALYZE'} took {run.analyze_seconds:.1f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = parser("python -m bench.candidates", __doc__)
    arguments.add_argument("--as-of", default="2021-04-01", help="the operation's asOf")
    arguments.add_argument("--repeat", type=int, default=5, help="timed calls per method")
    args = arguments.parse_args(argv)
    measured, status = run("bench.candidates", args, argv, BEGIN, END, measure, render)
    if status:
        return status
    assert isinstance(measured, Run)
    return 1 if measured.ingest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
