"""`python -m bench.validation`: the validator's speed, into docs/benchmarks.md between its own markers.

1. In one process: Synthea resources validated against their types' base R4 StructureDefinitions
   (fhir/validation), after one bundle of warm-up; resources per second overall and per type.
2. Writes: the first bundles of the corpus ingested over HTTP into a fresh PostgreSQL database by a server
   with FHIR_VALIDATION=off, claimed and all (off and claimed twice, alternating, so that drift shows).
   Synthea's resources claim no profile, so `claimed` should cost nothing over `off`; `all` validates
   every resource against its base definition.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bench.corpus import iter_bundles
from bench.ingest import IngestResult, ingest
from bench.report import machine, splice
from bench.server import BENCH_DATABASE, Server, fresh_database, migrate, postgres_version
from fhir_server.fhir import jsonio
from fhir_server.fhir.validation.conformance import BaseConformance
from fhir_server.fhir.validation.validator import Validator

REPO = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench-validation:begin -->"
END = "<!-- bench-validation:end -->"
TARGET_VALIDATION_PER_S = 1000
TARGET_CLAIMED_LOSS = 0.10  # FHIR_VALIDATION=claimed within 10% of off for resources that claim no profile
WRITE_MODES = ("off", "claimed", "off", "claimed", "all")


def validate_in_process(corpus: Path, bundles: int) -> tuple[float, int, dict[str, tuple[int, float]], Counter]:
    """Resources per second, how many, per type (count, mean microseconds), and issues by severity."""
    loaded = [[e["resource"] for e in jsonio.loads(b.body)["entry"]] for b in iter_bundles(corpus, bundles + 1)]
    validator = Validator(BaseConformance())
    for resource in loaded[0]:  # warm-up: compiled definitions and ValueSet expansions
        validator.validate(resource)
    per_type: dict[str, list[float]] = defaultdict(list)
    severities: Counter = Counter()
    started = time.perf_counter()
    for bundle in loaded[1:]:
        for resource in bundle:
            before = time.perf_counter()
            issues = validator.validate(resource)
            per_type[resource["resourceType"]].append(time.perf_counter() - before)
            severities.update(i.severity for i in issues)
    seconds = time.perf_counter() - started
    count = sum(len(b) for b in loaded[1:])
    table = {t: (len(v), sum(v) / len(v) * 1e6) for t, v in per_type.items()}
    return count / seconds, count, table, severities


def writes(corpus: Path, bundles: int, clients: int, workers: int, postgres_url: str, database: str,
           tmp: Path, log: Path) -> list[tuple[str, IngestResult]]:
    runs = []
    for mode in WRITE_MODES:
        with fresh_database("postgres", postgres_url, tmp, database) as database_url:
            migrate(database_url, log)
            with Server(database_url, workers, log, env={"FHIR_VALIDATION": mode}) as server:
                print(f"  FHIR_VALIDATION={mode}: ingesting {bundles} bundles", flush=True)
                done = ingest(server.base_url, iter_bundles(corpus, bundles), clients)
                print(f"    {done.resources_per_s:,.0f} resources/s, {done.failures} failures", flush=True)
                runs.append((mode, done))
    return runs


def render(rate: float, count: int, table: dict[str, tuple[int, float]], severities: Counter,
           runs: list[tuple[str, IngestResult]], facts: list[tuple[str, str]], command: str) -> str:
    lines = [f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Command: `{command}`", ""]
    lines += [f"- {name}: {value}" for name, value in facts] + [""]
    by_mode: dict[str, list[float]] = defaultdict(list)
    for mode, run in runs:
        by_mode[mode].append(run.resources_per_s)
    off, claimed = max(by_mode.get("off", [0])), max(by_mode.get("claimed", [0]))
    loss = 1 - claimed / off if off else None
    lines += ["### Targets", "", "| target | measured | met |", "| --- | --- | --- |",
              f"| validation against base R4 ≥ {TARGET_VALIDATION_PER_S:,} resources/s | {rate:,.0f}/s "
              f"({count:,} Synthea resources, one process) | {'yes' if rate >= TARGET_VALIDATION_PER_S else 'no'} |"]
    if loss is not None:
        lines.append(f"| writes with FHIR_VALIDATION=claimed within {TARGET_CLAIMED_LOSS:.0%} of off | "
                     f"{claimed:,.0f}/s against {off:,.0f}/s ({-loss:+.1%}), best of each | "
                     f"{'yes' if loss <= TARGET_CLAIMED_LOSS else 'no'} |")
    lines += ["", "### Validation in one process, by type (the 10 most frequent)", "",
              "| type | resources | µs per resource |", "| --- | ---: | ---: |"]
    for name, (n, micros) in sorted(table.items(), key=lambda kv: -kv[1][0])[:10]:
        lines.append(f"| {name} | {n:,} | {micros:,.0f} |")
    lines += ["", "Issues found: " + ", ".join(f"{severities[s]:,} {s}" for s in
                                               ("fatal", "error", "warning", "information") if severities[s]), ""]
    if runs:
        lines += ["### Writes by FHIR_VALIDATION (PostgreSQL, in the order run)", "",
                  "| FHIR_VALIDATION | resources | resources/s | failures |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {mode} | {run.resources:,} | {run.resources_per_s:,.0f} | {run.failures} |"
                  for mode, run in runs]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpora/synthea-r4.tar.gz"))
    parser.add_argument("--bundles", type=int, default=60, help="bundles validated in process")
    parser.add_argument("--write-bundles", type=int, default=100, help="bundles ingested per mode; 0 skips")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="maintenance database used to create and drop --database")
    parser.add_argument("--database", default=BENCH_DATABASE, help="the database the writes go to (dropped after)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    corpus = REPO / args.corpus
    if not corpus.is_file():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    load_before = os.getloadavg()[0]
    rate, count, table, severities = validate_in_process(corpus, args.bundles)
    print(f"validated {count:,} resources at {rate:,.0f}/s", flush=True)
    runs: list[tuple[str, IngestResult]] = []
    if args.write_bundles:
        log = REPO / "bench" / "results" / "validation-server.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        with tempfile.TemporaryDirectory(prefix="careweave-bench-") as tmp:
            runs = writes(corpus, args.write_bundles, args.clients, args.workers, args.postgres_url, args.database,
                          Path(tmp), log)
    command = shlex.join([".venv/bin/python", "-m", "bench.validation", *(argv if argv is not None else sys.argv[1:])])
    block = render(rate, count, table, severities, runs, machine(postgres_version(args.postgres_url), load_before),
                   command)
    splice(REPO / args.out, block, BEGIN, END)
    print("\n" + block)
    # Under `all`, Synthea's own errors (an Observation category `vital-sign` for `vital-signs`) are refused,
    # as they should be; a failure under `off` or `claimed` is the server's.
    return 1 if any(run.failures for mode, run in runs if mode != "all") else 0


if __name__ == "__main__":
    sys.exit(main())
