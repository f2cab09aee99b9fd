"""What the whole-corpus operation benchmarks share (`bench.candidates`, `bench.medication_review`,
`bench.measures`): their
command line, a fresh database loaded with the Synthea corpus over HTTP behind a running server, and the
block they write into docs/benchmarks.md with the machine's facts."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import iter_bundles
from bench.ingest import IngestResult, ingest
from bench.report import machine, splice
from bench.server import BENCH_DATABASE, Server, analyze, fresh_database, migrate, postgres_version

REPO = Path(__file__).resolve().parent.parent
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@dataclass(frozen=True)
class Loaded:
    base_url: str
    ingest: IngestResult
    analyze_seconds: float  # VACUUM ANALYZE (PostgreSQL) or ANALYZE (SQLite) after loading


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    found.add_argument("--corpus", type=Path, default=Path("../shared/corpora/synthea-r4.tar.gz"))
    found.add_argument("--bundles", type=int, default=None, help="bundles loaded; all when not given")
    found.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    found.add_argument("--clients", type=int, default=4)
    found.add_argument("--workers", type=int, default=2)
    found.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                       help="maintenance database used to create and drop --database")
    found.add_argument("--database", default=BENCH_DATABASE, help="the database loaded (dropped after)")
    found.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    return found


@contextmanager
def loaded_server(args: argparse.Namespace, corpus: Path, tmp: Path, log: Path) -> Iterator[Loaded]:
    """A server over a fresh database holding the first `--bundles` bundles, its statistics refreshed."""
    with fresh_database(args.backend, args.postgres_url, tmp, args.database) as database_url:
        migrate(database_url, log)
        with Server(database_url, args.workers, log) as server:
            print(f"ingesting {args.bundles or 'all'} bundles into {args.backend}", flush=True)
            result = ingest(server.base_url, iter_bundles(corpus, args.bundles), args.clients)
            print(f"  {result.resources:,} resources at {result.resources_per_s:,.0f}/s, {result.failures} failures",
                  flush=True)
            yield Loaded(server.base_url, result, analyze(database_url))


def run(module: str, args: argparse.Namespace, argv: list[str] | None, begin: str, end: str,
        measure: Callable[[argparse.Namespace, Path, Path, Path], object],
        render: Callable[[object, list[tuple[str, str]], str], str]) -> tuple[object, int]:
    """Measure, render the block and splice it between `begin` and `end`; (the run, 2 when the corpus is
    missing else 0)."""
    corpus = REPO / args.corpus
    if not corpus.is_file():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return None, 2
    load_before = os.getloadavg()[0]
    log = REPO / "bench" / "results" / f"{module.rpartition('.')[2].replace('_', '-')}-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="careweave-bench-") as tmp:
        measured = measure(args, corpus, Path(tmp), log)
    command = shlex.join([".venv/bin/python", "-m", module, *(argv if argv is not None else sys.argv[1:])])
    version = postgres_version(args.postgres_url) if args.backend == "postgres" else "not used"
    block = render(measured, machine(version, load_before), command)
    splice(REPO / args.out, block, begin, end)
    print("\n" + block)
    return measured, 0
