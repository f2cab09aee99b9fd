"""A scaled corpus: copies of the Synthea patient bundles with fresh ids, streamed, deterministic by seed.

Copy k (k = 1, 2, ...) of a patient bundle is the bundle with
- every UUID replaced by a new one: fullUrls (`urn:uuid:...`), resource ids, every `urn:uuid:` reference
  (they point at fullUrls of the same bundle, so one mapping per bundle keeps them consistent), and the
  identifiers that are UUIDs (the Patient's Synthea id and medical record number, the Organizations' Synthea
  ids, the ExplanationOfBenefits' claim ids, which repeat their Claim's UUID);
- the Patient's names perturbed (the copy number appended to each family name: `Koepp` -> `Koepp3`, digits
  that Synthea's own names never end in) and its SSN, driver's licence and passport numbers redrawn.

Clinical content (codes, dates, values) is kept, so copies add volume with the original distributions.
Copies come in passes over the archive: copy 1 of every patient bundle, then copy 2, ..., until at least
`target_resources` resources have been produced. The two bundles with no Patient (Synthea's hospital and
practitioner lists) are not copied: each patient bundle carries its own Organizations and Practitioners.
"""

from __future__ import annotations

import random
import re
import tarfile
import uuid
from collections.abc import Iterator
from hashlib import blake2b
from pathlib import Path

import orjson

from bench.corpus import Bundle

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
URN_UUID = "urn:uuid:"
URN_UUID_BYTES = URN_UUID.encode()
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
DL_SYSTEM = "urn:oid:2.16.840.1.113883.4.3.25"
PASSPORT_SYSTEM = "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber"


def scaled_bundles(corpus_path: Path, target_resources: int, seed: int) -> Iterator[bytes]:
    """Transaction bundles (JSON bytes) copied from the corpus until `target_resources` are reached."""
    for bundle in iter_scaled(corpus_path, target_resources, seed):
        yield bundle.body


def iter_scaled(corpus_path: Path, target_resources: int, seed: int) -> Iterator[Bundle]:
    """As scaled_bundles, as `Bundle`s (name, body, entry count) for bench.ingest."""
    produced = 0
    copy = 0
    while produced < target_resources:
        copy += 1
        copied_any = False
        for index, (name, body) in enumerate(_members(corpus_path)):
            if produced >= target_resources:
                return
            bundle = orjson.loads(body)
            if not any(e.get("resource", {}).get("resourceType") == "Patient" for e in bundle.get("entry", [])):
                continue  # Synthea's hospital and practitioner lists
            copied, entries = copy_bundle(bundle, seed=seed, copy=copy, index=index)
            copied_any = True
            produced += entries
            yield Bundle(f"copy{copy}-{name}", copied, entries)
        if not copied_any:
            raise ValueError(f"{corpus_path}: no bundle with a Patient to copy")


def copy_bundle(bundle: dict | bytes, *, seed: int, copy: int, index: int) -> tuple[bytes, int]:
    """One copy of one bundle: (compact JSON, number of entries).

    Pure: the same arguments give the same bytes. A parsed `bundle` is modified in place.
    """
    if isinstance(bundle, (bytes, str)):
        bundle = orjson.loads(bundle)
    rng = random.Random(_derive(seed, copy, index))
    fresh: dict[str, str] = {}

    def new_uuid(old: str) -> str:
        if (new := fresh.get(old)) is None:
            new = fresh[old] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return new

    entries = bundle.get("entry", [])
    for entry in entries:
        # In entry order first, so that a bundle's new ids do not depend on where references point.
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url.startswith(URN_UUID):
            new_uuid(full_url[len(URN_UUID):])
    for entry in entries:
        resource = entry.get("resource", {})
        if isinstance(resource.get("id"), str):
            resource["id"] = new_uuid(resource["id"])
        # Identifiers holding UUIDs: a Patient's Synthea id and MRN, an Organization's Synthea id, an
        # ExplanationOfBenefit's claim id (its Claim's UUID). Mapped like the ids, so they stay consistent.
        for identifier in resource.get("identifier", []) if isinstance(resource.get("identifier"), list) else []:
            value = identifier.get("value") if isinstance(identifier, dict) else None
            if isinstance(value, str) and UUID_TEXT.fullmatch(value):
                identifier["value"] = new_uuid(value)
        if resource.get("resourceType") == "Patient":
            _perturb_patient(resource, copy, rng)
    # Every other UUID is a `urn:uuid:` fullUrl or reference in Synthea's bundles: rewritten on the compact
    # text, which is much faster than walking the resources (every reference element of every type).
    head, *rest = orjson.dumps(bundle).split(URN_UUID_BYTES)
    parts = [head]
    for part in rest:
        parts.append(new_uuid(part[:36].decode()).encode() + part[36:])
    return URN_UUID_BYTES.join(parts), len(entries)


def _perturb_patient(patient: dict, copy: int, rng: random.Random) -> None:
    for name in patient.get("name", []):
        if isinstance(name.get("family"), str):
            name["family"] = f"{name['family']}{copy}"
        name.pop("text", None)  # would still spell the original name
    for identifier in patient.get("identifier", []):
        system = identifier.get("system")
        if system == SSN_SYSTEM:
            identifier["value"] = f"999-{rng.randrange(100):02d}-{rng.randrange(10000):04d}"
        elif system == DL_SYSTEM:
            identifier["value"] = f"S{rng.randrange(10**8):08d}"
        elif system == PASSPORT_SYSTEM:
            identifier["value"] = f"X{rng.randrange(10**8):08d}X"


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the archive's JSON members, in order, one in memory at a time."""
    with tarfile.open(path, mode="r|gz") as archive:
        for member in archive:
            if member.isfile() and member.name.endswith(".json"):
                yield member.name.rsplit("/", 1)[-1], archive.extractfile(member).read()  # type: ignore[union-attr]


def _derive(seed: int, copy: int, index: int) -> int:
    digest = blake2b(f"careweave-scale:{seed}:{copy}:{index}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big")
