"""Tables of the authorization server: registered clients, signing keys, issued tokens and the client
assertion ids already seen (SMART App Launch, client-confidential-asymmetric.html and backend-services.html)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, String, Table, Text, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from fhir_server.store.tables import metadata

client_table = Table(
    "oauth_client", metadata,
    Column("client_id", String(64), primary_key=True),
    # public | confidential-symmetric | confidential-asymmetric | backend
    Column("client_type", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    Column("scope", Text, nullable=False),  # the most the client may be granted
    Column("redirect_uris", Text, nullable=False),  # a JSON array
    Column("jwks", Text),  # a JWK Set registered by value, as JSON
    Column("jwks_url", String(2000)),  # or by URL
    Column("secret_hash", String(200)),
    Column("created", DateTime, nullable=False),
)
signing_key_table = Table(
    "oauth_signing_key", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_jwk", Text, nullable=False),
    Column("created", DateTime, nullable=False),
    Column("retired", DateTime),  # no longer signs; still published until its tokens have expired
)
token_table = Table(
    "oauth_token", metadata,
    Column("jti", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("scope", Text, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
    Column("revoked", Boolean, nullable=False, default=False),
)
assertion_table = Table(
    # Client assertion ids seen, kept until the assertion expires: a replay is refused (RFC 7523 §3).
    "oauth_assertion", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", DateTime, nullable=False, index=True),
)
OAUTH_TABLES = (client_table, signing_key_table, token_table, assertion_table)


def find_client(conn: Connection, client_id: str) -> dict | None:
    row = conn.execute(select(client_table).where(client_table.c.client_id == client_id)).first()
    if row is None:
        return None
    client = dict(row._mapping)
    client["redirect_uris"] = json.loads(client["redirect_uris"])
    client["jwks"] = json.loads(client["jwks"]) if client["jwks"] else None
    return client


def add_client(conn: Connection, client: dict) -> None:
    conn.execute(insert(client_table), {**client, "redirect_uris": json.dumps(client["redirect_uris"]),
                                        "jwks": json.dumps(client["jwks"]) if client["jwks"] else None})


def signing_keys(conn: Connection) -> list[dict]:
    """Every key, newest first."""
    rows = conn.execute(select(signing_key_table).order_by(signing_key_table.c.created.desc()))
    return [dict(r._mapping) for r in rows]


def add_signing_key(conn: Connection, kid: str, private_jwk: str, now: datetime) -> None:
    conn.execute(update(signing_key_table).where(signing_key_table.c.retired.is_(None)).values(retired=now))
    conn.execute(insert(signing_key_table), {"kid": kid, "private_jwk": private_jwk, "created": now})


def record_token(conn: Connection, jti: str, client_id: str, scope: str, expires_at: datetime) -> None:
    conn.execute(insert(token_table), {"jti": jti, "client_id": client_id, "scope": scope,
                                       "expires_at": expires_at, "revoked": False})


def revoke_token(conn: Connection, jti: str) -> None:
    conn.execute(update(token_table).where(token_table.c.jti == jti).values(revoked=True))


def token_is_live(conn: Connection, jti: str) -> bool:
    """Issued here and not revoked (expiry is in the token itself)."""
    row = conn.execute(select(token_table.c.revoked).where(token_table.c.jti == jti)).first()
    return row is not None and not row.revoked


def first_use_of_assertion(conn: Connection, client_id: str, jti: str, expires_at: datetime,
                           now: datetime) -> bool:
    """Record a client assertion's jti; False if it was seen before (a replay)."""
    conn.execute(delete(assertion_table).where(assertion_table.c.expires_at < now))
    try:
        with conn.begin_nested():
            conn.execute(insert(assertion_table), {"client_id": client_id, "jti": jti, "expires_at": expires_at})
    except IntegrityError:
        return False
    return True
