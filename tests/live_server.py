"""A real `fhir-server serve` process for tests that need one (multi-worker behaviour, third-party clients)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
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


PASSWORD = "long enough password"


@dataclass(frozen=True)
class SmartSite:
    """A migrated SQLite database for a live server in FHIR_AUTH_MODE=smart on `port`, with a physician
    (`dr1`, password PASSWORD) and Patient `pat1` (Ada Okafor), attributed to them."""

    folder: Path
    port: int
    env: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """`fhir-server ARGS` against this site; its standard output."""
        done = subprocess.run([*CLI, *args], env=self.env, input=stdin, capture_output=True, text=True, check=True)
        return done.stdout

    def serve(self) -> tuple[subprocess.Popen, object]:
        return start(["--port", str(self.port)], self.env, self.folder / "server.log")


def smart_site(folder: Path) -> SmartSite:
    port = free_port()
    site = SmartSite(folder, port, {**os.environ, "FHIR_DATABASE_URL": f"sqlite:///{folder}/smart.sqlite3",
                                    "FHIR_BASE_URL": f"http://127.0.0.1:{port}/fhir", "FHIR_AUTH_MODE": "smart"})
    site.cli("migrate")
    patient = folder / "patient.json"
    patient.write_text(json.dumps({"resourceType": "Patient", "id": "pat1",
                                   "name": [{"family": "Okafor", "given": ["Ada"]}],
                                   "generalPractitioner": [{"reference": "Practitioner/dr1"}]}))
    site.cli("load", str(patient))
    site.cli("users", "add", "--username", "dr1", "--role", "physician", "--practitioner", "Practitioner/dr1",
             stdin=f"{PASSWORD}\n{PASSWORD}\n")
    return site
