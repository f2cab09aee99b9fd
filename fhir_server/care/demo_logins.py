"""Sign-ins for the demo that `make run` serves in FHIR_AUTH_MODE=smart: a coordinator, a physician and an
administrator, linked to the demo data's Practitioners, and a backend client with a key of its own.

Passwords are random and never printed: they are kept, with the backend client's id, in
`demo-logins.json`, and its private key in `demo-backend-key.json`, both readable by their owner only,
in the folder given (the demo's `var/`). Run again, it adds only what is missing.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwk
from sqlalchemy import Engine

from fhir_server.auth.clients import register
from fhir_server.auth.users import add_user
from fhir_server.store import oauth
from fhir_server.store.db import unit_of_work

# username, role, Practitioner: the first coordinator manages a fifth of the members (care/demo.py); the
# first PCP's patients are those whose generalPractitioner is their role.
USERS = (("coordinator", "coordinator", "Practitioner/demo-coordinator-01"),
         ("physician", "physician", "Practitioner/demo-pcp-01"),
         ("admin", "admin", None))
BACKEND_SCOPE = "system/*.rs"


@dataclass(frozen=True)
class DemoLogins:
    logins: Path  # demo-logins.json
    key: Path  # demo-backend-key.json
    added: tuple[str, ...]  # what this run created
    missing_passwords: tuple[str, ...]  # users that exist but whose password this folder does not hold


def ensure_demo_logins(engine: Engine, folder: Path) -> DemoLogins:
    folder.mkdir(parents=True, exist_ok=True)
    logins, key_file = folder / "demo-logins.json", folder / "demo-backend-key.json"
    saved = json.loads(logins.read_text()) if logins.exists() else {"users": {}}
    added, missing = [], []
    for username, role, practitioner in USERS:
        with unit_of_work(engine, write=False) as conn:
            exists = oauth.find_user(conn, username) is not None
        if exists:
            if username not in saved["users"]:
                missing.append(username)
            continue
        password = secrets.token_urlsafe(15)
        add_user(engine, username=username, password=password, role=role, practitioner=practitioner)
        saved["users"][username] = {"password": password, "role": role, "practitioner": practitioner}
        added.append(username)
    with unit_of_work(engine, write=False) as conn:
        known = saved.get("backend") and oauth.find_client(conn, saved["backend"]["client_id"])
    if not known or not key_file.exists():
        key = jwk.RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "alg": "RS384", "use": "sig"},
                                      private=True)
        client_id = register(engine, client_type="backend", name="Demo backend service", scope=BACKEND_SCOPE,
                             jwks={"keys": [key.as_dict(private=False)]}).client_id
        _write_private(key_file, json.dumps(key.as_dict(private=True)))
        saved["backend"] = {"client_id": client_id, "scope": BACKEND_SCOPE, "key_file": key_file.name}
        added.append("backend client")
    _write_private(logins, json.dumps(saved, indent=2))
    return DemoLogins(logins, key_file, tuple(added), tuple(missing))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords or a private key)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text + "\n")
    path.chmod(0o600)
