"""Get an access token as the demo's backend client (SMART Backend Services, backend-services.html), the
way any backend would: a private_key_jwt assertion signed with var/demo-backend-key.json, posted to the
running server's token endpoint. Prints the token, for the shell that asked:

    TOKEN=$(.venv/bin/python scripts/demo_token.py)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/fhir/Patient/demo-pat-0001
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import httpx
from joserfc import jwk, jwt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="http://127.0.0.1:8080/fhir", help="the server's FHIR base URL")
    parser.add_argument("--folder", type=Path, default=Path("var"), help="where demo-logins put its files")
    parser.add_argument("--scope", default="system/*.rs")
    args = parser.parse_args()
    logins = json.loads((args.folder / "demo-logins.json").read_text())
    key = jwk.import_key(json.loads((args.folder / "demo-backend-key.json").read_text()))
    client_id = logins["backend"]["client_id"]
    token_url = httpx.get(f"{args.base}/.well-known/smart-configuration").json()["token_endpoint"]
    now = int(time.time())
    assertion = jwt.encode({"alg": "RS384", "kid": key.kid, "typ": "JWT"},
                           {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "iat": now,
                            "jti": uuid.uuid4().hex}, key, algorithms=["RS384"])
    response = httpx.post(token_url, data={
        "grant_type": "client_credentials", "scope": args.scope, "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    if response.status_code != 200:
        print(f"token request refused: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    print(response.json()["access_token"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
