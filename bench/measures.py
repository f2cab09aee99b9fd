"""`python -m bench.measures`: Measure/[id]/$evaluate-measure, summary over every member, for each of the
program's Measures on the loaded corpus, into docs/benchmarks.md between its own markers.

The first `--bundles` bundles of the Synthea corpus (all by default) are ingested over HTTP into a fresh
database (PostgreSQL unless `--backend sqlite`); then each Measure in profiles/ is evaluated over HTTP for
`--period` (Synthea's records end in spring 2021, so 2020 by default), once to warm up and `--repeat` times.
The issue's target: each summary under 30 s on PostgreSQL for the whole corpus.
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

from bench.corpus_run import FHIR_JSON, REPO, loaded_server, parser, run
from bench.ingest import IngestResult

BEGIN = "<!-- bench-measures:begin -->"
END = "<!-- bench-measures:end -->"
TARGET_SECONDS = 30.0
CORPUS_BUNDLES = 617  # the bundles of ../shared/corpora/synthea-r4.tar.gz: fewer is a smoke run, no verdict
TIMEOUT_S = 300.0
MEASURES = sorted(p.stem.removeprefix("Measure-") for p in (REPO / "profiles").glob("Measure-*.json"))


@dataclass
class Result:
    measure: str
    seconds: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # population code: count (first group)
    score: float | None = None
    strata: int = 0
    failure: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


@dataclass
class Run:
    backend: str
    bundles: int
    ingest: IngestResult
    period: tuple[str, str]
    results: list[Result]


def evaluate(client: httpx.Client, measure: str, period: tuple[str, str]) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(f"/Measure/{measure}/$evaluate-measure",
                          params={"periodStart": period[0], "periodEnd": period[1], "reportType": "population"})
    return time.perf_counter() - started, response


def measure(args: argparse.Namespace, corpus: Path, tmp: Path, log: Path) -> Run:
    period = (f"{args.period}-01-01", f"{args.period}-12-31")
    with loaded_server(args, corpus, tmp, log) as loaded, \
            httpx.Client(base_url=loaded.base_url, headers=FHIR_JSON, timeout=TIMEOUT_S) as client:
        results = []
        for name in MEASURES:
            result = Result(name)
            for attempt in range(args.repeat + 1):  # the first call warms up
                seconds, response = evaluate(client, name, period)
                if response.status_code != 200:
                    result.failure = f"{response.status_code} {response.text[:200]}"
                    break
                if attempt:
                    result.seconds.append(seconds)
            if result.failure is None:
                group = response.json()["group"][0]
                result.counts = {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}
                result.score = (group.get("measureScore") or {}).get("value")
                result.strata = sum(len(s.get("stratum", [])) for s in group.get("stratifier", []))
            print(f"  {name}: median {result.median:.2f} s {result.counts}", flush=True)
            results.append(result)
    return Run(args.backend, args.bundles or CORPUS_BUNDLES, loaded.ingest, period, results)


def render(measured: object, facts: list[tuple[str, str]], command: str) -> str:
    assert isinstance(measured, Run)
    whole = measured.bundles >= CORPUS_BUNDLES and measured.backend == "postgres"
    lines = [f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Command: `{command}`", ""]
    lines += [f"- {name}: {value}" for name, value in facts]
    lines += [f"- corpus loaded: {measured.ingest.ok_bundles:,} bundles, {measured.ingest.resources:,} resources "
              f"({measured.backend}); period {measured.period[0]} to {measured.period[1]}", "",
              "### Summary reports over all members", "",
              "| Measure | median s | target < 30 s | initial pop. | denominator | excluded | numerator | score "
              "| strata |", "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for result in measured.results:
        if result.failure:
            lines.append(f"| {result.measure} | failed: {result.failure} | **no** | | | | | | |")
            continue
        met = ("yes" if result.median < TARGET_SECONDS else "**no**") if whole else "smoke run, no verdict"
        counts = result.counts
        lines.append(f"| {result.measure} | {result.median:.2f} | {met} | {counts.get('initial-population', 0):,} | "
                     f"{counts.get('denominator', '')} | {counts.get('denominator-exclusion', '')} | "
                     f"{counts.get('numerator', '')} | {'' if result.score is None else result.score} | "
                     f"{result.strata} |")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    arguments = parser("python -m bench.measures", __doc__)
    arguments.add_argument("--period", type=int, default=2020, help="the calendar year measured")
    arguments.add_argument("--repeat", type=int, default=3)
    args = arguments.parse_args(argv)
    measured, status = run("bench.measures", args, argv, BEGIN, END, measure, render)
    if status:
        return status
    assert isinstance(measured, Run)
    return 1 if any(r.failure for r in measured.results) or measured.ingest.failures else 0


if __name__ == "__main__":
    sys.exit(main())
