"""Tables of the authorization server: registered clients, signing keys, issued tokens and the client
assertion ids already seen (SMART App Launch, client-confidential-asymmetric.html and backend-services.html)."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import Boolean, Column, DateTime, String, Table, Text, delete, insert, select, true, update
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
    Column("launch_uri", String(2000)),  # where an EHR launch opens the app
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
    Column("grant_id", String(64), index=True),  # the refresh-token family it came from, if any
    Column("revoked_at", DateTime, index=True),  # workers poll for revocations since their last look
)
assertion_table = Table(
    # Client assertion ids seen, kept until the assertion expires: a replay is refused (RFC 7523 §3).
    "oauth_assertion", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", DateTime, nullable=False, index=True),
)
user_table = Table(
    "app_user", metadata,
    Column("username", String(100), primary_key=True),
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("role", String(20), nullable=False),  # coordinator | physician | admin
    Column("practitioner", String(100)),  # Practitioner/ID: the user's fhirUser
    Column("created", DateTime, nullable=False),
)
pending_table = Table(
    # An authorization request between its pages (login, patient picker, consent), keyed by a random id
    # held in the browser's cookie.
    "oauth_pending", metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("request", Text, nullable=False),  # the validated authorize parameters, as JSON
    Column("username", String(100)),
    Column("patient", String(64)),
    Column("expires_at", DateTime, nullable=False, index=True),
)
code_table = Table(
    # Authorization codes, by the SHA-256 of the code: single use, a minute long (app-launch.html).
    "oauth_code", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(100), nullable=False),
    Column("redirect_uri", String(2000), nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("patient", String(64)),
    Column("nonce", String(255)),  # OpenID Connect: echoed in the id_token
    Column("encounter", String(64)),
    Column("need_patient_banner", Boolean, nullable=False),
    Column("expires_at", DateTime, nullable=False, index=True),
    Column("used", Boolean, nullable=False),
)
launch_table = Table(
    # EHR launch contexts (app-launch.html#launch-app-ehr-launch): opaque, single use, five minutes long,
    # bound to one client and one signed-in user.
    "oauth_launch", metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(100), nullable=False),
    Column("patient", String(64)),
    Column("encounter", String(64)),
    Column("expires_at", DateTime, nullable=False),
    Column("used", Boolean, nullable=False),
)
refresh_table = Table(
    # Refresh tokens by their SHA-256. Each use replaces the token with a new one of the same family
    # (`grant_id`); a used token presented again revokes the whole family (a stolen token, or its thief's).
    "oauth_refresh", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("grant_id", String(64), nullable=False, index=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(100), nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient", String(64)),
    Column("encounter", String(64)),  # the launch context, given again with each refreshed token
    Column("need_patient_banner", Boolean, nullable=False, server_default=true()),
    Column("expires_at", DateTime, nullable=False),
    Column("used", Boolean, nullable=False),
    Column("revoked", Boolean, nullable=False),
)
OAUTH_TABLES = (client_table, signing_key_table, token_table, assertion_table, user_table, pending_table,
                code_table, refresh_table, launch_table)


def save_launch(conn: Connection, launch: dict) -> None:
    conn.execute(insert(launch_table), {**launch, "used": False})


def use_launch(conn: Connection, id: str, client_id: str, now: datetime) -> dict | None:
    """The launch context, taken once: None if unknown, another client's, expired or used."""
    row = conn.execute(select(launch_table).where(launch_table.c.id == id)).first()
    if row is None or row.client_id != client_id or row.expires_at <= now or row.used:
        return None
    return dict(row._mapping) if _use_once(conn, launch_table.c.id, id) else None


def _use_once(conn: Connection, key, value: str) -> bool:
    """Mark the row whose `key` column is `value` used; False if it already was (another request won)."""
    table = key.table
    done = conn.execute(update(table).where(key == value, table.c.used.is_(False)).values(used=True))
    return done.rowcount == 1


def find_user(conn: Connection, username: str) -> dict | None:
    row = conn.execute(select(user_table).where(user_table.c.username == username)).first()
    return dict(row._mapping) if row else None


def add_user(conn: Connection, user: dict) -> None:
    conn.execute(insert(user_table), user)


def save_pending(conn: Connection, pending: dict) -> None:
    conn.execute(insert(pending_table), {**pending, "request": json.dumps(pending["request"])})


def find_pending(conn: Connection, id: str, now: datetime) -> dict | None:
    row = conn.execute(select(pending_table).where(pending_table.c.id == id,
                                                   pending_table.c.expires_at > now)).first()
    if row is None:
        return None
    return {**row._mapping, "request": json.loads(row.request)}


def update_pending(conn: Connection, id: str, **values) -> None:
    conn.execute(update(pending_table).where(pending_table.c.id == id).values(**values))


def delete_pending(conn: Connection, id: str) -> None:
    conn.execute(delete(pending_table).where(pending_table.c.id == id))


def sweep_pending(conn: Connection, now: datetime) -> None:
    """Forget authorization requests that were never finished."""
    conn.execute(delete(pending_table).where(pending_table.c.expires_at < now))


def save_code(conn: Connection, code: dict) -> None:
    conn.execute(insert(code_table), {**code, "used": False})


def find_code(conn: Connection, code_hash: str) -> dict | None:
    row = conn.execute(select(code_table).where(code_table.c.code_hash == code_hash)).first()
    return dict(row._mapping) if row else None


def use_code(conn: Connection, code_hash: str) -> bool:
    """Mark a code used; False if it already was."""
    return _use_once(conn, code_table.c.code_hash, code_hash)


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


def record_token(conn: Connection, jti: str, client_id: str, scope: str, expires_at: datetime,
                 grant_id: str | None = None) -> None:
    conn.execute(insert(token_table), {"jti": jti, "client_id": client_id, "scope": scope,
                                       "expires_at": expires_at, "revoked": False, "grant_id": grant_id})


def save_refresh(conn: Connection, row: dict) -> None:
    conn.execute(insert(refresh_table), {**row, "used": False, "revoked": False})


def find_refresh(conn: Connection, token_hash: str) -> dict | None:
    row = conn.execute(select(refresh_table).where(refresh_table.c.token_hash == token_hash)).first()
    return dict(row._mapping) if row else None


def use_refresh(conn: Connection, token_hash: str) -> bool:
    """Mark a refresh token used; False if it already was."""
    return _use_once(conn, refresh_table.c.token_hash, token_hash)


def registered_origins(conn: Connection) -> frozenset[str]:
    """The origins (scheme://host:port) of every registered redirect URI, for CORS."""
    origins = set()
    for (uris,) in conn.execute(select(client_table.c.redirect_uris)):
        for uri in json.loads(uris):
            parts = urlsplit(uri)
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return frozenset(origins)


def revoke_grant(conn: Connection, grant_id: str, now: datetime) -> list[str]:
    """Revoke a refresh-token family and every access token issued from it; their jtis."""
    conn.execute(update(refresh_table).where(refresh_table.c.grant_id == grant_id).values(revoked=True))
    conn.execute(update(token_table).where(token_table.c.grant_id == grant_id, token_table.c.revoked.is_(False))
                 .values(revoked=True, revoked_at=now))
    return [row.jti for row in conn.execute(select(token_table.c.jti).where(token_table.c.grant_id == grant_id))]


def revoke_token(conn: Connection, jti: str, now: datetime) -> None:
    conn.execute(update(token_table).where(token_table.c.jti == jti, token_table.c.revoked.is_(False))
                 .values(revoked=True, revoked_at=now))


def revoked_since(conn: Connection, since: datetime) -> list[str]:
    return [row.jti for row in conn.execute(select(token_table.c.jti).where(token_table.c.revoked_at >= since))]


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
