"""Resource -> index rows, filled at write time (search.html#token).

Only the `identifier` token is indexed until the search issue generalises this to every SearchParameter's
FHIRPath expression; the row shape is already the one the token table of that design uses.
"""

from __future__ import annotations

from dataclasses import dataclass

# Index values are cut to this many characters, here and in queries alike: B-tree entries have a size
# limit (about 2.7 kB on PostgreSQL), and no real code or identifier is this long.
MAX_INDEXED_CHARS = 512


def index_value(value: str | None) -> str | None:
    return value[:MAX_INDEXED_CHARS] if value is not None else None


@dataclass(frozen=True)
class TokenRow:
    param: str
    system: str | None
    code: str | None


def token_rows(resource: dict) -> list[TokenRow]:
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # a few types (e.g. Bundle, QuestionnaireResponse) have 0..1 identifier
        identifiers = [identifiers]
    if not isinstance(identifiers, list):
        return []
    rows = {
        TokenRow("identifier", index_value(ident.get("system")), index_value(ident.get("value")))
        for ident in identifiers
        if isinstance(ident, dict) and (ident.get("system") or ident.get("value"))
    }
    return sorted(rows, key=lambda r: (r.system or "", r.code or ""))
