"""Several uvicorn worker processes, each with its own listening socket on one port (SO_REUSEPORT).

uvicorn's own supervisor shares one socket among its workers, and whichever worker wakes first takes each
new connection. Keep-alive clients that connect at once (4 ingest clients, or 32 connections of a load
test) then often land mostly on one worker, which saturates one core while the other idles. With a socket
per worker the kernel spreads new connections over the workers by a hash of their addresses.

The supervisor reserves the port with a bound socket that never listens, starts the workers, replaces any
that dies after it has started, and on SIGTERM or SIGINT passes SIGTERM on so that each worker finishes
its in-flight requests before it exits.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import threading
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("fhir_server.workers")
_spawn = multiprocessing.get_context("spawn")
BACKLOG = 2048


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other SO_REUSEPORT sockets of this user may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    """One worker: its own listening socket, then uvicorn on it until SIGTERM."""
    config = uvicorn.Config(host=host, port=port, **options)
    try:
        sock = reuseport_socket(host, port)
        sock.listen(BACKLOG)
    except OSError as exc:
        logger.error("worker cannot listen on %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)
    uvicorn.Server(config).run(sockets=[sock])


def run(host: str, port: int, workers: int, **options: Any) -> int:
    """Serve with `workers` processes until SIGTERM or SIGINT; the exit status."""
    try:
        reserved = reuseport_socket(host, port)  # fail fast if another program holds the port
    except OSError as exc:
        logger.error("cannot bind %s:%s: %s", host, port, exc)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    processes = [_start(host, port, options) for _ in range(workers)]
    status = 0
    while not stop.wait(0.5):
        for i, process in enumerate(processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker %s failed to start; stopping", process.pid)
                stop.set()
                status = 1
                break
            logger.warning("worker %s exited with status %s; starting another", process.pid, process.exitcode)
            processes[i] = _start(host, port, options)
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
    for process in processes:
        process.join()
    reserved.close()
    return status


def _start(host: str, port: int, options: dict[str, Any]) -> multiprocessing.process.BaseProcess:
    process = _spawn.Process(target=_worker, args=(host, port, options), daemon=False)
    process.start()
    return process
