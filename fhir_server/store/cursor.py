"""Opaque `_cursor` values for keyset paging (search.html#paging): the sort keys, type and id of a page's
edge row, and the direction to go from it."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from fhir_server.fhir.errors import bad_request
from fhir_server.search.parse import SortKey


def encode(keys: list, resource_type: str, id: str, backwards: bool) -> str:
    values = [x.isoformat() if isinstance(x, datetime) else x for x in keys]
    payload = json.dumps(["b" if backwards else "a", *values, resource_type, id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode(text: str, sort: tuple[SortKey, ...]) -> tuple[list, bool]:
    """(sort key values + [type, id], backwards); a 400 for a cursor this search did not make."""
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        direction, *values = data
        if direction not in ("a", "b") or len(values) != len(sort) + 2:
            raise ValueError
        keys = [datetime.fromisoformat(x) if k.type == "date" and isinstance(x, str) else x
                for k, x in zip(sort, values, strict=False)]
        if not all(isinstance(x, str) for x in values[-2:]):
            raise ValueError
        return [*keys, *values[-2:]], direction == "b"
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise bad_request("_cursor is not a cursor from this search's links", "_cursor") from None
