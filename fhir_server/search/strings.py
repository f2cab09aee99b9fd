"""Text as string search compares it (search.html#string): accents and case do not matter."""

from __future__ import annotations

import unicodedata

# Index values are cut to this many characters, here and in queries alike: B-tree entries have a size
# limit (about 2.7 kB on PostgreSQL), and no real code, identifier or name is this long.
MAX_INDEXED_CHARS = 512


def index_value(value: str | None) -> str | None:
    return value[:MAX_INDEXED_CHARS] if value is not None else None


def normalize(text: str) -> str:
    """NFKD, combining marks dropped, case folded: `Müller` and `MULLER` both become `muller`."""
    if text.isascii():
        return text.casefold()[:MAX_INDEXED_CHARS]
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()[:MAX_INDEXED_CHARS]
