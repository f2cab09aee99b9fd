"""Bulk loading of files into the server through the same dispatch as HTTP (used by `fhir-server load`).

Transaction and batch Bundles are posted as they are; other Bundles, single resources and NDJSON lines
become batch entries: PUT when the resource has an id (so a reload updates), POST when it has none.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.api.execute import Server, execute
from fhir_server.api.messages import FhirRequest
from fhir_server.fhir import jsonio
from fhir_server.fhir.errors import FhirError
from fhir_server.store.repository import open_repository

NDJSON_CHUNK = 500


@dataclass
class LoadSummary:
    created: int = 0
    updated: int = 0
    failed: int = 0
    unchanged: int = 0
    reasons: list[str] = field(default_factory=list)

    def add_failure(self, where: str, reason: str, count: int = 1) -> None:
        self.failed += count
        if len(self.reasons) < 50:
            self.reasons.append(f"{where}: {reason}")


Failure = tuple[str, str]  # (where, why) for input that cannot even be sent


@dataclass(frozen=True)
class Unit:
    """One request's worth of content: a Bundle to POST to the base, named after where it came from."""

    source: str
    bundle: dict


def _batch(resources: list[dict]) -> dict:
    entries = []
    for resource in resources:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        request = {"method": "PUT", "url": f"{rtype}/{rid}"} if rid else {"method": "POST", "url": f"{rtype}"}
        entries.append({"resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


def _units_from_json(source: str, data: object) -> Iterator[Unit]:
    if isinstance(data, dict) and data.get("resourceType") == "Bundle" and data.get("type") in ("transaction",
                                                                                                 "batch"):
        yield Unit(source, data)
    elif isinstance(data, dict) and data.get("resourceType") == "Bundle":
        yield Unit(source, _batch([e["resource"] for e in data.get("entry", []) if isinstance(e, dict)
                                   and isinstance(e.get("resource"), dict)]))
    elif isinstance(data, dict):
        yield Unit(source, _batch([data]))
    else:
        raise ValueError("not a JSON object")


def _units_from_ndjson(source: str, lines: Iterator[bytes]) -> Iterator[Unit | Failure]:
    """Batches of NDJSON lines; a line that is not a JSON object fails alone."""
    chunk: list[dict] = []
    start = number = 1
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            resource = jsonio.loads(line)
        except jsonio.JSONDecodeError as exc:
            yield (f"{source} line {number}", f"invalid JSON: {exc}")
            continue
        if not isinstance(resource, dict):
            yield (f"{source} line {number}", "not a JSON object")
            continue
        chunk.append(resource)
        if len(chunk) == NDJSON_CHUNK:
            yield Unit(f"{source} lines {start}-{number}", _batch(chunk))
            chunk, start = [], number + 1
    if chunk:
        yield Unit(f"{source} lines {start}-{number}", _batch(chunk))


def _read_member(name: str, data: bytes) -> Iterator[Unit | Failure]:
    if name.endswith(".gz"):
        data, name = gzip.decompress(data), name[:-3]
    if name.endswith(".ndjson"):
        yield from _units_from_ndjson(name, iter(data.splitlines()))
    else:
        yield from _units_from_json(name, jsonio.loads(data))


def units(paths: list[Path]) -> Iterator[Unit | Failure]:
    """Everything to load, file by file; unreadable inputs come out as (source, reason)."""
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                if file.name.endswith((".tar.gz", ".tgz", ".tar")):
                    with tarfile.open(file) as tar:
                        for member in tar:
                            if member.isfile() and member.name.endswith((".json", ".ndjson", ".json.gz")):
                                yield from _read_member(f"{file.name}/{member.name}",
                                                        tar.extractfile(member).read())  # type: ignore[union-attr]
                elif file.name.endswith((".json", ".ndjson", ".json.gz", ".ndjson.gz")):
                    yield from _read_member(str(file), file.read_bytes())
            except (OSError, ValueError, tarfile.TarError) as exc:
                yield (str(file), f"cannot read: {exc}")


def load_unit(server: Server, unit: Unit, summary: LoadSummary) -> None:
    """POST one Bundle in its own database transaction and tally its entries."""
    response = execute(server, FhirRequest("POST", "", [], {"prefer": "return=minimal"}, unit.bundle))
    if response.status >= 400:
        issues = (response.body or {}).get("issue", [{}])
        summary.add_failure(unit.source, issues[0].get("diagnostics", f"HTTP {response.status}"),
                            len(unit.bundle.get("entry", [])) or 1)
        return
    for i, entry in enumerate((response.body or {}).get("entry", [])):
        status = entry["response"]["status"]
        if status.startswith("201"):
            summary.created += 1
        elif status.startswith("2"):
            summary.updated += 1
        else:
            issue = entry["response"].get("outcome", {}).get("issue", [{}])[0]
            summary.add_failure(f"{unit.source} entry {i}", issue.get("diagnostics", status))


# The resource types `fhir-server terminology load` takes from a package (terminology-service.html).
TERMINOLOGY_TYPES = frozenset({"CodeSystem", "ValueSet", "ConceptMap"})
# What `fhir-server ig load` takes from an implementation guide's package: its profiles, extensions and
# terminology. Its SearchParameters are not taken: search's registry holds R4's and profiles/ only.
IG_TYPES = TERMINOLOGY_TYPES | {"StructureDefinition"}
CONFORMANCE_CHUNK = 100


def package_resources(path: Path, types: frozenset[str]) -> Iterator[dict | Failure]:
    """The resources of `types` in an NPM-format FHIR package (a .tgz whose `package/` folder holds one
    resource per JSON file), or in an NDJSON file (.ndjson or .ndjson.gz), in the order they are stored."""
    try:
        if path.name.endswith((".ndjson", ".ndjson.gz")):
            data = path.read_bytes()
            lines = gzip.decompress(data) if path.name.endswith(".gz") else data
            for number, line in enumerate(lines.splitlines(), 1):
                if line.strip():
                    yield from _typed(f"{path.name} line {number}", line, types)
            return
        with tarfile.open(path) as tar:
            for member in tar:
                folder, _, name = member.name.partition("/")
                if (member.isfile() and folder == "package" and "/" not in name and name.endswith(".json")
                        and not name.startswith(".") and name != "package.json"):
                    yield from _typed(f"{path.name}/{member.name}", tar.extractfile(member).read(),  # type: ignore[union-attr]
                                      types)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        yield (str(path), f"cannot read: {exc}")


def merged_resources(paths: list[Path], types: frozenset[str]) -> Iterator[dict | Failure]:
    """The resources of every package in turn, a later package's replacing an earlier one's of the same type
    and id (HL7's terminology package updates many of the R4 specification's own)."""
    latest: dict[tuple[str, str], dict] = {}
    for path in paths:
        for item in package_resources(path, types):
            if isinstance(item, tuple):
                yield item
            else:
                latest[(item["resourceType"], item["id"])] = item
    yield from latest.values()


def _typed(source: str, data: bytes, types: frozenset[str]) -> Iterator[dict | Failure]:
    try:
        resource = jsonio.loads(data)
    except jsonio.JSONDecodeError as exc:
        yield (source, f"invalid JSON: {exc}")
        return
    if isinstance(resource, dict) and resource.get("resourceType") in types:
        if not isinstance(resource.get("id"), str) or not resource["id"]:
            yield (source, "a conformance resource needs an id to be loaded by")
        else:
            yield resource


def changed_units(server: Server, source: str, resources: Iterable[dict | Failure],
                  summary: LoadSummary) -> Iterator[Unit | Failure]:
    """Batches of PUTs of the resources that differ from what is stored (narrative and meta aside), so a
    second load of the same package writes nothing; the rest are counted as unchanged."""
    chunk: list[dict] = []
    for item in resources:
        if isinstance(item, tuple):
            yield item
            continue
        chunk.append(item)
        if len(chunk) == CONFORMANCE_CHUNK:
            yield from _changed(server, source, chunk, summary)
            chunk = []
    if chunk:
        yield from _changed(server, source, chunk, summary)


def _changed(server: Server, source: str, chunk: list[dict], summary: LoadSummary) -> Iterator[Unit]:
    with open_repository(server.engine, write=False, base_url=server.base_url) as repo:
        fresh = [r for r in chunk if not _same(repo, r)]
    summary.unchanged += len(chunk) - len(fresh)
    if fresh:
        yield Unit(f"{source} ({fresh[0]['resourceType']}/{fresh[0]['id']}…)", _batch(fresh))


def _same(repo, resource: dict) -> bool:
    try:
        stored = repo.read(resource["resourceType"], resource["id"]).resource()
    except FhirError:
        return False
    return _essence(stored) == _essence(resource)


def _essence(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k not in ("meta", "text")}
