"""Which access tokens are revoked, as each worker knows it (RFC 7009 §2: revocation may take a moment
to reach every part of a server).

Checking the database on every request would double the cost of a read by id. Instead each worker asks
it, at most once a second, for the tokens revoked since it last asked; revocations made through this
worker count at once. So a revoked token stops working here at once, and on other workers within about a
second.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

POLL_SECONDS = 1.0
# Looks back a little further than the last look, for revocations committed late in a transaction that
# started before it.
_OVERLAP = timedelta(seconds=5)


class RevocationList:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._revoked: set[str] = set()
        self._since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
        self._polled = float("-inf")

    def add(self, jtis: list[str]) -> None:
        with self._lock:
            self._revoked.update(jtis)

    def is_revoked(self, jti: str) -> bool:
        if time.monotonic() - self._polled > POLL_SECONDS:
            self._poll()
        return jti in self._revoked

    def _poll(self) -> None:
        with self._lock:
            if time.monotonic() - self._polled <= POLL_SECONDS:
                return  # another thread just did
            now = datetime.now(UTC).replace(tzinfo=None)
            with unit_of_work(self.engine, write=False) as conn:
                self._revoked.update(oauth.revoked_since(conn, self._since))
            self._since = now - _OVERLAP
            self._polled = time.monotonic()
