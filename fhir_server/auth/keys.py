"""The server's signing keys: RSA keys that sign access and ID tokens (RS256), published as a JWK Set.

Keys live in the database so that every worker signs and verifies with the same set. The newest key
signs; `fhir-server keys rotate` adds a new one and retires the old, which stays published (and accepted)
for `RETIRED_KEY_GRACE`, longer than any token it signed can live.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from datetime import datetime, timedelta

from joserfc import jwk
from sqlalchemy import Engine

from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

ALGORITHM = "RS256"
RETIRED_KEY_GRACE = timedelta(days=1)
_RELOAD_SECONDS = 60.0


def new_key(engine: Engine, now: datetime) -> str:
    """Generate a signing key, make it the one that signs, and retire the previous one; its kid."""
    kid = secrets.token_urlsafe(12)
    key = jwk.RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True)
    with unit_of_work(engine, write=True) as conn:
        oauth.add_signing_key(conn, kid, json.dumps(key.as_dict(private=True)), now)
    return kid


def ensure_key(engine: Engine, now: datetime) -> str | None:
    """Make the first signing key if there is none (at `fhir-server migrate`); its kid, or None."""
    with unit_of_work(engine, write=False) as conn:
        if oauth.signing_keys(conn):
            return None
    return new_key(engine, now)


class KeyRing:
    """The keys as loaded by this process, reloaded every minute and when a token names an unknown kid."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._signing: jwk.RSAKey | None = None
        self._published: dict[str, jwk.RSAKey] = {}

    def _load(self, now: datetime) -> None:
        with unit_of_work(self.engine, write=False) as conn:
            rows = oauth.signing_keys(conn)
        if not rows:
            new_key(self.engine, now)
            with unit_of_work(self.engine, write=False) as conn:
                rows = oauth.signing_keys(conn)
        keys = {r["kid"]: (jwk.import_key(json.loads(r["private_jwk"])), r["retired"]) for r in rows}
        current = next(r["kid"] for r in rows if r["retired"] is None) if any(
            r["retired"] is None for r in rows) else rows[0]["kid"]
        self._signing = keys[current][0]
        self._published = {kid: key for kid, (key, retired) in keys.items()
                           if retired is None or now - retired < RETIRED_KEY_GRACE}
        self._loaded_at = time.monotonic()

    def _fresh(self, now: datetime, *, force: bool = False) -> None:
        with self._lock:
            if force or self._signing is None or time.monotonic() - self._loaded_at > _RELOAD_SECONDS:
                self._load(now)

    def signing_key(self, now: datetime) -> jwk.RSAKey:
        self._fresh(now)
        assert self._signing is not None
        return self._signing

    def verification_keys(self, now: datetime, kid: str | None) -> jwk.KeySet:
        self._fresh(now, force=kid is not None and kid not in self._published and
                    time.monotonic() - self._loaded_at > 1.0)
        return jwk.KeySet(list(self._published.values()))

    def jwks(self, now: datetime) -> dict:
        """The public JWK Set (RFC 7517 §5), for /auth/jwks."""
        self._fresh(now)
        return {"keys": [key.as_dict(private=False) for key in self._published.values()]}
