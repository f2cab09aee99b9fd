"""Read-by-id load at a fixed number of keep-alive connections: wrk when present, else Python processes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.stats import percentile

WRK_SCRIPT = Path(__file__).with_name("pick_ids.lua")
REQUEST_TIMEOUT_S = 5.0
# Time allowed beyond --duration for start-up and the summary before a load run counts as hung.
GRACE_S = 60.0


@dataclass(frozen=True)
class ReadResult:
    connections: int
    requests: int  # completed responses, whatever their status
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-200 responses, timeouts and connection errors

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def find_wrk() -> str | None:
    """The wrk binary, installing Debian's package once if it is missing; None if that fails."""
    if path := shutil.which("wrk"):
        return path
    print("wrk not found; trying `apt-get install -y wrk`", flush=True)
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        print("  could not install wrk (try `apt-get update` first); using the Python load generator")
        return None
    return shutil.which("wrk")


def read_load(wrk: str | None, origin: str, paths_file: Path, connections: int, duration: float, *,
              script: Path = WRK_SCRIPT, headers: dict[str, str] | None = None,
              timeout_s: float = REQUEST_TIMEOUT_S) -> ReadResult:
    """GET random paths from `paths_file` against `origin` for `duration` seconds.

    `script` is the wrk script (it sets its own headers); `headers` are for the Python generator only.
    """
    if wrk:
        return _wrk_load(wrk, origin, paths_file, connections, duration, script, timeout_s)
    return _python_load(origin, paths_file, connections, duration, headers or {}, timeout_s)


def _wrk_load(wrk: str, origin: str, paths_file: Path, connections: int, duration: float,
              script: Path = WRK_SCRIPT, timeout_s: float = REQUEST_TIMEOUT_S) -> ReadResult:
    # One wrk thread drives tens of thousands of requests/s, and the server needs the other cycles.
    command = [wrk, "-t1", f"-c{connections}", f"-d{duration:g}s", f"--timeout={timeout_s:g}s",
               "-s", str(script), origin, "--", str(paths_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout_s + GRACE_S,
                          check=True)
    summary = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
    if summary is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    figures = json.loads(summary.removeprefix("BENCH "))
    return ReadResult(connections, figures["requests"], figures["duration_us"] / 1e6,
                      figures["p50_us"] / 1000, figures["p99_us"] / 1000, figures["errors"])


def _python_load(origin: str, paths_file: Path, connections: int, duration: float,
                 headers: dict[str, str] | None = None, timeout_s: float = REQUEST_TIMEOUT_S) -> ReadResult:
    # Several processes, because one asyncio + httpx loop saturates a core well below the server's rate.
    processes = max(1, min(os.cpu_count() or 1, connections))
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    paths = [line for line in paths_file.read_text().splitlines() if line]
    jobs = [(origin, paths, share, duration, headers or {}, timeout_s) for share in shares]
    # spawn, not fork: the parent runs threads (the RSS sampler) that a fork would copy mid-flight.
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        parts = pool.map_async(_python_worker, jobs).get(timeout=duration + timeout_s + GRACE_S)
    latencies = sorted(ms for part_latencies, _, _ in parts for ms in part_latencies)
    errors = sum(part_errors for _, part_errors, _ in parts)
    # Each process timed its own window; their mean is the span over which the requests completed.
    seconds = sum(part_seconds for _, _, part_seconds in parts) / len(parts)
    return ReadResult(connections, len(latencies), seconds, percentile(latencies, 50),
                      percentile(latencies, 99), errors)


def _python_worker(job: tuple[str, list[str], int, float, dict[str, str], float]) -> tuple[list[float], int, float]:
    return asyncio.run(_python_loop(*job))


async def _python_loop(origin: str, paths: list[str], connections: int, duration: float,
                       extra_headers: dict[str, str] | None = None,
                       timeout_s: float = REQUEST_TIMEOUT_S) -> tuple[list[float], int, float]:
    """Latencies (ms) of completed responses, the error count and the seconds measured."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Accept": "application/fhir+json", **(extra_headers or {})}
    async with httpx.AsyncClient(base_url=origin, limits=limits, headers=headers,
                                 timeout=timeout_s) as client:

        async def connection(end: float) -> None:
            nonlocal errors
            while (started := time.perf_counter()) < end:
                try:
                    response = await client.get(random.choice(paths))
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(connection(started + duration) for _ in range(connections)))
        return latencies, errors, time.perf_counter() - started
