"""A fresh database, `fhir-server migrate` and `fhir-server serve` as a subprocess, and its memory."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import psycopg
from sqlalchemy.engine import make_url

BENCH_DATABASE = "careweave_bench"
FHIR_SERVER = str(Path(sys.executable).with_name("fhir-server"))
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
RSS_INTERVAL_S = 0.5


@contextmanager
def fresh_database(backend: str, postgres_url: str, workdir: Path, name: str = BENCH_DATABASE) -> Iterator[str]:
    """Yield the URL of an empty database; a PostgreSQL one is dropped again afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.sqlite3'}"
        return
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name must be letters, digits and _: {name!r}")
    drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    with _admin_connection(postgres_url) as conn:
        conn.execute(drop)
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connection(postgres_url) as conn:
            conn.execute(drop)


def postgres_version(postgres_url: str) -> str:
    try:
        with _admin_connection(postgres_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        return f"unavailable ({type(exc).__name__})"  # the backend's own error is in the report already
    return str(row[0]) if row else "unknown"


def _admin_connection(postgres_url: str) -> psycopg.Connection:
    # Autocommit: CREATE and DROP DATABASE cannot run inside a transaction.
    conninfo = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)


def analyze(database_url: str) -> float:
    """Refresh the planner's statistics (PostgreSQL: VACUUM ANALYZE; SQLite: ANALYZE); the seconds it took."""
    started = time.perf_counter()
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database or "") as conn:
            conn.execute("ANALYZE")
    else:
        with _admin_connection(database_url) as conn:  # autocommit: VACUUM cannot run in a transaction
            conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


def migrate(database_url: str, log: Path) -> None:
    env = {**os.environ, "FHIR_DATABASE_URL": database_url}
    with log.open("a") as out:
        done = subprocess.run([FHIR_SERVER, "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=300, check=False)  # a failure is reported with the log's tail
    if done.returncode != 0:
        raise RuntimeError(f"fhir-server migrate exited {done.returncode}:\n{_tail(log)}")


class Server:
    """`fhir-server serve` on a free port of 127.0.0.1, in its own process group, stopped on exit."""

    def __init__(self, database_url: str, workers: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.origin}/fhir"
        self._log = log
        env = {**os.environ, "FHIR_DATABASE_URL": database_url, "FHIR_BASE_URL": self.base_url,
               "FHIR_AUTH_MODE": "open", **(env or {})}
        command = [FHIR_SERVER, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", str(workers)]
        with log.open("a") as out:
            # A session of its own, so that workers left behind by a failed shutdown can be found by group.
            self._process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self._process.pid

    def __enter__(self) -> Self:
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"fhir-server serve exited {self._process.returncode}:\n{_tail(self._log)}")
            try:
                if httpx.get(f"{self.origin}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.25)
        raise RuntimeError(f"fhir-server serve not ready after {READY_TIMEOUT_S:g} s:\n{_tail(self._log)}")

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL whatever of the process group is still there after the grace."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"  server did not stop within {STOP_TIMEOUT_S:g} s; killing its process group")
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the group is ours alone: new session, id = our child's
        except ProcessLookupError:
            pass  # every process of the group has exited: the graceful path
        self._process.wait(STOP_TIMEOUT_S)


class RssSampler:
    """Peak of the summed VmRSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    def _sample(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_S):
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self._pid))


def tree_rss_kb(root: int) -> int:
    """Summed VmRSS (kB) of `root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue  # exited while we looked
            # The command name in parentheses may hold spaces; the parent pid is 2nd after the ')'.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += _vmrss_kb(pid)
        stack.extend(children.get(pid, []))
    return total


def _vmrss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass  # exited while we looked
    return 0  # zombies and kernel threads have no VmRSS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
