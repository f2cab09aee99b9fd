"""A real `fhir-server serve` process for tests that need one (multi-worker behaviour, third-party clients)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-m", "typer", "fhir_server.cli", "run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, object]:
    """`fhir-server serve ARGS` in a session of its own (so that teardown can stop its workers too), once
    /readyz answers 200; the process and its open log file."""
    log = open(log_path, "w+")
    proc = subprocess.Popen([*CLI, "serve", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    port = args[args.index("--port") + 1]
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc, log
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("server did not become ready: " + log_path.read_text())


def stop(proc: subprocess.Popen, log) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log.close()
