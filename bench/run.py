"""`make bench`: ingest the Synthea corpus and load read-by-id on each backend, then write the report.

Per backend: a fresh database, `fhir-server migrate`, `fhir-server serve` on 127.0.0.1, the ingest, one
read run per concurrency level, the server's peak RSS; then the server is stopped and the database dropped.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from bench.corpus import iter_bundles
from bench.ingest import ingest
from bench.load import find_wrk, read_load
from bench.report import BackendResult, machine, render, splice
from bench.server import RssSampler, Server, fresh_database, migrate, postgres_version

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"  # server logs; ignored by git
BACKENDS = ("sqlite", "postgres")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=_backends, default=list(BACKENDS), help="sqlite,postgres")
    parser.add_argument("--bundles", type=_positive, default=None, help="ingest only the first N (default all)")
    parser.add_argument("--clients", type=_positive, default=4, help="concurrent ingest clients")
    parser.add_argument("--duration", type=_positive, default=20, help="seconds per read level")
    parser.add_argument("--levels", type=_levels, default=[1, 8, 32], help="read connections, e.g. 1,8,32")
    parser.add_argument("--workers", type=_positive, default=2, help="server worker processes")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="maintenance database used to create and drop careweave_bench")
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpora/synthea-r4.tar.gz"),
                        help="Synthea R4 bundles (tar.gz); relative paths are from the repo root")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"),
                        help="report to update between its bench markers; relative to the repo root")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto",
                        help="auto: wrk if present or installable, else Python processes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM as an exception, so that the servers are stopped and the database dropped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    corpus = REPO / args.corpus
    if not corpus.is_file():
        print(f"corpus not found: {corpus}", file=sys.stderr)
        return 2
    wrk = find_wrk() if args.load_generator != "python" else None
    if args.load_generator == "wrk" and wrk is None:
        print("wrk is not available", file=sys.stderr)
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="careweave-bench-") as tmp:
        results = [_run_backend(backend, args, corpus, Path(tmp), wrk) for backend in args.backends]
    pg_version = postgres_version(args.postgres_url) if "postgres" in args.backends else "not used"
    settings = (f"bundles: {args.bundles or 'all'}, ingest clients: {args.clients}, server workers: {args.workers}, "
                f"seconds per read level: {args.duration}, "
                f"load generator: {'wrk' if wrk else 'Python (asyncio + httpx)'}")
    command = shlex.join([".venv/bin/python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])])
    block = render(results, machine(pg_version, load_before), command, settings, whole_corpus=args.bundles is None)
    splice(REPO / args.out, block)
    print("\n" + block)
    failed = any(r.error or (r.ingest and r.ingest.failures) for r in results)
    return 1 if failed else 0


def _run_backend(backend: str, args: argparse.Namespace, corpus: Path, tmp: Path,
                 wrk: str | None) -> BackendResult:
    result = BackendResult(backend)
    log = RESULTS / f"{backend}-server.log"
    log.write_text("")
    print(f"== {backend}: server log in {log.relative_to(REPO)}", flush=True)
    # One backend failing (say PostgreSQL down) must not lose the other's figures: record and go on.
    try:
        with fresh_database(backend, args.postgres_url, tmp) as database_url:
            migrate(database_url, log)
            with Server(database_url, args.workers, log) as server, RssSampler(server.pid) as rss:
                print(f"  ingesting with {args.clients} clients into {server.base_url}", flush=True)
                result.ingest = done = ingest(server.base_url, iter_bundles(corpus, args.bundles), args.clients)
                print(f"  ingested {done.resources:,} resources from {done.ok_bundles} of {done.bundles} bundles "
                      f"in {done.seconds:.1f} s; {len(done.patient_ids)} Patient ids", flush=True)
                paths = tmp / f"{backend}-patients.txt"
                paths.write_text("".join(f"/fhir/Patient/{pid}\n" for pid in done.patient_ids))
                for level in args.levels if done.patient_ids else []:
                    print(f"  reading Patient by id: {level} connections, {args.duration} s", flush=True)
                    result.reads.append(read_load(wrk, server.origin, paths, level, args.duration))
                result.peak_rss_mb = rss.peak_mb
    except Exception as exc:  # noqa: BLE001  # reported in the document and the exit status
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return result


def _backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in BACKENDS for name in names):
        raise argparse.ArgumentTypeError(f"choose from {','.join(BACKENDS)}")
    return names


def _levels(text: str) -> list[int]:
    return [_positive(part) for part in text.split(",")]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
