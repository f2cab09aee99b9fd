"""`make bench`: ingest the Synthea corpus and load read-by-id on each backend, then write the report.

Per backend: a fresh database, `fhir-server migrate`, `fhir-server serve` on 127.0.0.1, the ingest, one
read run per concurrency level, the server's peak RSS; then the server is stopped and the database dropped.

With search (by default on PostgreSQL only): after the reads, VACUUM ANALYZE and the search workload
(bench/search.py) on the corpus; then scaled copies of the corpus (bench/scale.py) are ingested into the same
database until it holds --scale resources, VACUUM ANALYZE again, and the search workload again.
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

from bench.bearer import backend_token
from bench.corpus import iter_bundles
from bench.ingest import ingest
from bench.load import ReadResult, find_wrk, read_load
from bench.report import TARGET_READ_CONNECTIONS, BackendResult, machine, render, splice
from bench.scale import iter_scaled
from bench.search import SearchRun, run_search
from bench.server import BENCH_DATABASE, RssSampler, Server, analyze, fresh_database, migrate, postgres_version

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
    parser.add_argument("--search", action=argparse.BooleanOptionalAction, default=None,
                        help="run the search workload (default: on PostgreSQL only)")
    parser.add_argument("--scale", type=_non_negative, default=1_000_000,
                        help="with search: load scaled copies until the database holds N resources, then search "
                             "again (default 1,000,000; 0 skips)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the scaled copies and the search requests")
    parser.add_argument("--search-duration", type=_positive, default=None,
                        help="seconds per search kind and level (default: --duration)")
    parser.add_argument("--database", default=BENCH_DATABASE,
                        help="PostgreSQL database to create and drop (default careweave_bench)")
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
    searched = [b for b in args.backends if _search_on(args, b)]
    if searched:
        settings += (f", search on: {','.join(searched)}, seconds per search kind and level: "
                     f"{args.search_duration or args.duration}, scale to: "
                     f"{f'{args.scale:,} resources' if args.scale else 'off'}, seed: {args.seed}")
    command = shlex.join([".venv/bin/python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])])
    block = render(results, machine(pg_version, load_before), command, settings, whole_corpus=args.bundles is None)
    splice(REPO / args.out, block)
    print("\n" + block)
    failed = any(r.error or (r.ingest and r.ingest.failures) or (r.scaled_ingest and r.scaled_ingest.failures)
                 or any(run.error for run in r.searches) for r in results)
    return 1 if failed else 0


def _search_on(args: argparse.Namespace, backend: str) -> bool:
    return args.search if args.search is not None else backend == "postgres"


def _run_backend(backend: str, args: argparse.Namespace, corpus: Path, tmp: Path,
                 wrk: str | None) -> BackendResult:
    result = BackendResult(backend)
    log = RESULTS / f"{backend}-server.log"
    log.write_text("")
    print(f"== {backend}: server log in {log.relative_to(REPO)}", flush=True)
    # One backend failing (say PostgreSQL down) must not lose the other's figures: record and go on.
    try:
        with fresh_database(backend, args.postgres_url, tmp, args.database) as database_url:
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
                if done.patient_ids and backend == "postgres":
                    result.bearer_read = _bearer_read(database_url, args, paths, log, wrk)
                if _search_on(args, backend):
                    _search_phases(result, args, corpus, server, database_url, tmp / backend, wrk)
                result.peak_rss_mb = rss.peak_mb
    except Exception as exc:  # noqa: BLE001  # reported in the document and the exit status
        traceback.print_exc()
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return result


def _bearer_read(database_url: str, args: argparse.Namespace, paths: Path, log: Path,
                 wrk: str | None) -> ReadResult:
    """Read-by-id at 32 connections in FHIR_AUTH_MODE=smart with a backend client's bearer token, on a
    second server over the same database (the first one idles meanwhile)."""
    level = TARGET_READ_CONNECTIONS
    with Server(database_url, args.workers, log, env={"FHIR_AUTH_MODE": "smart"}) as smart:
        token = backend_token(database_url, smart.origin)
        print(f"  reading Patient by id with a bearer token (smart mode): {level} connections, {args.duration} s",
              flush=True)
        os.environ["BENCH_BEARER"] = token  # read by bench/pick_ids.lua; never on a command line
        try:
            return read_load(wrk, smart.origin, paths, level, args.duration,
                             headers={"Authorization": f"Bearer {token}"})
        finally:
            del os.environ["BENCH_BEARER"]


def _search_phases(result: BackendResult, args: argparse.Namespace, corpus: Path, server: Server,
                   database_url: str, workdir: Path, wrk: str | None) -> None:
    """Search on the corpus; then scaled copies on top, up to --scale resources, and search again."""
    assert result.ingest is not None
    total = result.ingest.resources
    _search_once(result, args, server, database_url, workdir, wrk, "corpus", total)
    if not args.scale or args.scale <= total:
        return
    print(f"  ingesting scaled copies (seed {args.seed}) with {args.clients} clients up to {args.scale:,} "
          f"resources", flush=True)
    result.scale_seed = args.seed
    result.scaled_ingest = done = ingest(server.base_url, iter_scaled(corpus, args.scale - total, args.seed),
                                         args.clients)
    total += done.resources
    print(f"  ingested {done.resources:,} scaled resources from {done.ok_bundles} of {done.bundles} bundles "
          f"in {done.seconds:.1f} s ({done.resources_per_s:,.0f}/s); {total:,} in the database", flush=True)
    _search_once(result, args, server, database_url, workdir, wrk, "corpus and scaled copies", total)


def _search_once(result: BackendResult, args: argparse.Namespace, server: Server, database_url: str,
                 workdir: Path, wrk: str | None, label: str, total: int) -> None:
    print(f"  {'VACUUM ANALYZE' if database_url.startswith('postgresql') else 'ANALYZE'} ({total:,} resources)",
          flush=True)
    result.analyze_seconds.append(analyze(database_url))
    try:
        result.searches.append(run_search(server.base_url, wrk, args.levels, args.search_duration or args.duration,
                                          workdir / f"search-{len(result.searches)}", label=label,
                                          resources=total, seed=args.seed))
    except Exception as exc:  # noqa: BLE001  # reported; the next data set may still be measured
        traceback.print_exc()
        result.searches.append(SearchRun(label, total, error=f"{type(exc).__name__}: {_first_line(exc)}"))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else ""


def _backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in BACKENDS for name in names):
        raise argparse.ArgumentTypeError(f"choose from {','.join(BACKENDS)}")
    return names


def _levels(text: str) -> list[int]:
    return [_positive(part) for part in text.split(",")]


def _non_negative(text: str) -> int:
    return 0 if text.strip() == "0" else _positive(text.replace("_", "").replace(",", ""))


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
