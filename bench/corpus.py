"""Stream the Synthea transaction bundles out of the corpus tarball without extracting it."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True)
class Bundle:
    name: str
    body: bytes
    entries: int


def iter_bundles(path: Path, limit: int | None = None) -> Iterator[Bundle]:
    """Yield up to `limit` bundles in archive order, holding one member in memory at a time."""
    count = 0
    # "r|gz" decompresses the stream sequentially: no seeking, no index of members, nothing on disk.
    with tarfile.open(path, mode="r|gz") as archive:
        for member in archive:
            if limit is not None and count >= limit:
                return
            if not (member.isfile() and member.name.endswith(".json")):
                continue
            body = archive.extractfile(member).read()  # type: ignore[union-attr]  # isfile() checked
            count += 1
            yield Bundle(member.name.rsplit("/", 1)[-1], body, len(orjson.loads(body).get("entry", [])))
