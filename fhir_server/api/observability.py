"""Request ids, structured JSON logs and Prometheus metrics.

Logs carry the request id on every line and never a resource body, a query string or a header value:
search parameters and bodies are health information.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import threading
import time
import traceback
from contextvars import ContextVar

import orjson
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

request_id: ContextVar[str] = ContextVar("request_id", default="-")
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

REQUESTS = Counter("fhir_requests_total", "FHIR requests by interaction, resource type and status",
                   ["interaction", "resource_type", "status"])
LATENCY = Histogram("fhir_request_duration_seconds", "FHIR request latency by interaction", ["interaction"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
POOL_IN_USE = Gauge("fhir_db_pool_connections_in_use", "Database connections checked out of the pool",
                    multiprocess_mode="livesum")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "request_id": request_id.get(),
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            # The exception's type and frames only: messages of driver errors can quote statement values.
            exc_type, exc = record.exc_info[0], record.exc_info[1]
            entry["error"] = exc_type.__name__ if exc_type else "unknown"
            orig = getattr(exc, "orig", None)  # the driver's error: its SQLSTATE and class say what failed
            if orig is not None:
                entry["driver_error"] = type(orig).__name__
                entry["sqlstate"] = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
            entry["trace"] = "".join(traceback.format_tb(record.exc_info[2]))
        return orjson.dumps(entry).decode()


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


class AccessLog:
    """The one line per request, in the same JSON shape as every other log line.

    Written straight to stderr rather than through a LogRecord and handler chain, which cost about a tenth
    of a read by id; it obeys the level of its logger like any other line.
    """

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self._lock = threading.Lock()

    def write(self, **fields: object) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        entry = {"ts": _timestamp(time.time()), "level": "INFO", "logger": self.logger.name,
                 "request_id": request_id.get(), "msg": "request", **fields}
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            sys.stderr.flush()  # keep order with lines written through logging's text stream
            sys.stderr.buffer.write(line)
            sys.stderr.buffer.flush()


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # it logs query strings; we log our own line
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz checks the revision on every call
    logging.getLogger("authlib").setLevel(logging.INFO)  # its debug lines print issued tokens whole


def new_request_id(incoming: str | None) -> str:
    """Honour a well-formed X-Request-Id from a proxy, else make one."""
    if incoming and _INCOMING_ID.match(incoming):
        return incoming
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


# A random prefix per process and a counter: unique like a UUID, without a getrandom() call per request,
# which showed as 6% of a worker's samples under search load.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()


class RequestIdMiddleware:
    """ASGI middleware: sets the request id for the request's logs and echoes it as X-Request-Id.

    Plain ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a stream per request.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = new_request_id(incoming)
        token = request_id.set(rid)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def observe(interaction: str, resource_type: str, status: int, seconds: float, pool_in_use: int) -> None:
    REQUESTS.labels(interaction, resource_type or "-", str(status)).inc()
    LATENCY.labels(interaction).observe(seconds)
    POOL_IN_USE.set(pool_in_use)


def metrics_text() -> bytes:
    """The exposition text; in multi-worker mode, summed over every worker process."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
