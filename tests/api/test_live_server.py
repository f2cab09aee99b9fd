"""A real `fhir-server serve --workers 2` process: logs, metrics across workers, graceful shutdown."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from live_server import CLI, free_port, start, stop

SECRET_NAME = "Quokkaworth"  # must never appear in logs


@pytest.fixture
def live(tmp_path):
    port = free_port()
    env = {**os.environ, "FHIR_DATABASE_URL": f"sqlite:///{tmp_path}/live.sqlite3", "FHIR_AUTH_MODE": "open",
           "FHIR_BASE_URL": f"http://127.0.0.1:{port}/fhir", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([*CLI, "migrate"], env=env, check=True, capture_output=True)
    proc, log = start(["--port", str(port), "--workers", "2"], env, tmp_path / "server.log")
    yield f"http://127.0.0.1:{port}", proc, tmp_path / "server.log"
    stop(proc, log)


def test_logs_are_json_with_request_ids_and_no_bodies(live):
    base, proc, log_path = live
    created = httpx.post(base + "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": SECRET_NAME}]},
                         headers={"Content-Type": "application/fhir+json", "X-Request-Id": "trace-123"})
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "trace-123"
    search = httpx.get(base + "/fhir/Patient", params={"_id": created.json()["id"], "_elements": SECRET_NAME})
    assert search.status_code == 200
    httpx.post(base + "/fhir/Patient", content=b'{"resourceType": "Patient", "name": "' + SECRET_NAME.encode() + b'"}',
               headers={"Content-Type": "application/fhir+json"})
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    text = log_path.read_text()
    assert "FHIR_AUTH_MODE=open: NO AUTHENTICATION" in text  # the banner `serve` prints before the logs start
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("!!")]
    records = [json.loads(line) for line in lines]
    assert all("request_id" in r for r in records)
    assert any(r.get("request_id") == "trace-123" and r.get("status") == 201 for r in records)
    assert SECRET_NAME not in log_path.read_text()


def test_metrics_are_summed_over_workers(live):
    base, _, _ = live
    for _ in range(20):
        httpx.get(base + "/fhir/metadata")
    metrics = httpx.get(base + "/metrics").text
    line = next(x for x in metrics.splitlines()
                if x.startswith("fhir_requests_total{") and 'interaction="capabilities"' in x)
    assert float(line.rsplit(" ", 1)[1]) == 20.0


def _wait_until_write_lock_is_held(database: Path) -> None:
    """Return once the server's write transaction holds SQLite's write lock: the request is in flight."""
    for _ in range(2000):
        probe = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return
        finally:
            probe.close()
        time.sleep(0.005)
    pytest.fail("the transaction never started")


def test_sigterm_lets_in_flight_requests_finish(live):
    base, proc, log_path = live
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": f"obs {i}"}},
         "request": {"method": "POST", "url": "Observation"}} for i in range(3000)]}
    result: dict = {}

    def post() -> None:
        result["response"] = httpx.post(base + "/fhir", json=bundle, timeout=120,
                                        headers={"Content-Type": "application/fhir+json"})

    worker = threading.Thread(target=post)
    worker.start()
    _wait_until_write_lock_is_held(log_path.parent / "live.sqlite3")
    proc.send_signal(signal.SIGTERM)  # while the transaction is being processed
    worker.join(timeout=120)
    assert result["response"].status_code == 200
    assert len(result["response"].json()["entry"]) == 3000
    assert proc.wait(timeout=60) == 0


def _workers(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    # multiprocessing's spawn start also runs a resource tracker; the workers are the ones that listen.
    return [int(pid) for pid in children if _sockets_of(int(pid))]


def _sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _established_to(port: int) -> dict[str, int]:
    """inode -> 1 for each ESTABLISHED TCP socket whose local port is `port` (/proc/net/tcp)."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "01":
            found[fields[9]] = 1
    return found


def test_workers_each_take_a_share_of_new_connections(live):
    """Each worker listens on its own socket, so 32 connections opened at once reach both workers."""
    base, proc, _ = live
    port = int(base.rsplit(":", 1)[1])
    clients = [httpx.Client(base_url=base) for _ in range(32)]
    try:
        for client in clients:
            assert client.get("/fhir/metadata").status_code == 200
        established = _established_to(port)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        shares = [len(_sockets_of(pid) & established.keys()) for pid in workers]
        assert sum(shares) == 32
        # Spread by a hash of the client's port: fewer than 4 of 32 on a worker has odds below 1 in 10^5.
        assert min(shares) >= 4, shares
    finally:
        for client in clients:
            client.close()


def test_a_worker_that_dies_is_replaced(live):
    base, proc, _ = live
    first = _workers(proc.pid)
    os.kill(first[0], signal.SIGKILL)
    for _ in range(300):
        current = _workers(proc.pid)
        if len(current) == 2 and first[0] not in current:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no replacement worker: {current}")
    for _ in range(20):  # every connection is answered, whichever worker takes it
        assert httpx.get(base + "/fhir/metadata").status_code == 200


def test_a_port_in_use_stops_the_server_with_status_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "FHIR_DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"}
        done = subprocess.run([*CLI, "serve", "--port", str(port), "--workers", "2"], env=env,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "cannot bind" in done.stderr


def test_served_app_takes_its_startup_objects_out_of_the_collectors_sight(tmp_path, monkeypatch):
    """`serve` builds each worker's app with `served_app`: a full collection then no longer walks the modules
    and definitions (a 65 ms pause per collection under load, docs/benchmarks.md)."""
    import gc

    from fhir_server.app import GC_THRESHOLDS, served_app

    monkeypatch.setenv("FHIR_DATABASE_URL", f"sqlite:///{tmp_path}/heap.sqlite3")
    monkeypatch.setenv("FHIR_AUTH_MODE", "open")
    thresholds = gc.get_threshold()
    try:
        served_app()
        assert gc.get_freeze_count() > 50_000
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
