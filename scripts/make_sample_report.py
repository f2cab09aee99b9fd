"""Make docs/images/pcp-report-sample.png: the first page of a `$pcp-report` PDF for one Synthea member.

The member is the living one of the shared Synthea corpus (../shared/corpora/synthea-r4.tar.gz) with the
most active chronic conditions the program follows, then the most active prescriptions (or the bundle
named with --bundle). It is loaded into a temporary SQLite server run in this
process, in open mode; a small program world (the health plan, a coordinator, a practice that takes part
and its PCP) is added so that the member can be enrolled, and `Patient/[id]/$pcp-report` is called. The
PDF's first page is rendered with pypdfium2 and written as a PNG.

    .venv/bin/python scripts/make_sample_report.py [--bundle NAME] [--dpi 80] [--out docs/images/...]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pypdfium2
from fastapi.testclient import TestClient

from fhir_server.app import create_app
from fhir_server.config import AuthMode, Settings
from fhir_server.store.db import make_engine
from fhir_server.store.migrate import upgrade

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpora" / "synthea-r4.tar.gz"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
BASE = "https://careweave.example.org/fhir/"
NPI = "http://hl7.org/fhir/sid/us-npi"
SNOMED = "http://snomed.info/sct"
# SNOMED CT codes Synthea records for the conditions the program follows: hypertension, diabetes, heart
# failure, coronary disease, chronic kidney disease, COPD.
CHRONIC = {"59621000", "44054006", "88805009", "53741008", "431855005", "433144002", "185086009", "87433001"}


def world() -> list[dict]:
    """The health plan and its coordinator; a practice that takes part in the program, and its PCP."""
    def person(id: str, family: str, given: str, npi: str, **extra) -> dict:
        return {"resourceType": "Practitioner", "id": id, "identifier": [{"system": NPI, "value": npi}],
                "name": [{"family": family, "given": [given]}], **extra}

    def role(id: str, practitioner: str, organization: str, code: dict) -> dict:
        return {"resourceType": "PractitionerRole", "id": id, "active": True,
                "practitioner": {"reference": f"Practitioner/{practitioner}"},
                "organization": {"reference": f"Organization/{organization}"}, "code": [{"coding": [code]}]}

    return [
        {"resourceType": "Organization", "id": "plan", "active": True, "name": "Health plan"},
        {"resourceType": "Organization", "id": "practice", "active": True, "name": "Riverside Family Practice",
         "identifier": [{"system": NPI, "value": "1234567893"}],
         "extension": [{"url": BASE + "StructureDefinition/program-participation", "extension": [
             {"url": "status", "valueCode": "agreed"}, {"url": "period", "valuePeriod": {"start": "2025-01-01"}}]}]},
        person("coordinator", "Nurse", "Alex", "1497758544", telecom=[
            {"system": "phone", "value": "555-0100"}, {"system": "email", "value": "alex.nurse@plan.example"}]),
        role("coordinator-role", "coordinator", "plan", {"system": SNOMED, "code": "768820003",
                                                         "display": "Care coordinator"}),
        person("pcp", "Doctor", "Sam", "1528366920"),
        role("pcp-role", "pcp", "practice", {"system": "http://nucc.org/provider-taxonomy", "code": "207Q00000X",
                                             "display": "Family Medicine"}),
    ]


def pick(corpus: Path, name: str | None) -> tuple[str, bytes]:
    """The bundle named; else, of the living members with an active chronic condition the program follows, the
    one with the most such conditions, then the most active prescriptions (the first of equals): the richest
    report."""
    best: tuple[tuple[int, int], str, bytes] | None = None
    with tarfile.open(corpus, "r|gz") as archive:
        for member in archive:
            if not (member.isfile() and member.name.endswith(".json")):
                continue
            body = archive.extractfile(member).read()  # type: ignore[union-attr]  # isfile() checked
            label = member.name.rsplit("/", 1)[-1]
            if name is not None:
                if label == name:
                    return label, body
                continue
            resources = [e["resource"] for e in json.loads(body)["entry"]]
            patient = next((r for r in resources if r["resourceType"] == "Patient"), None)
            if patient is None or "deceasedDateTime" in patient:
                continue  # the practitioners' and hospitals' bundles; the members who died
            chronic = {c.get("code") for r in resources if r["resourceType"] == "Condition"
                       and "abatementDateTime" not in r for c in r["code"].get("coding", [])} & CHRONIC
            rank = (len(chronic), sum(1 for r in resources
                                      if r["resourceType"] == "MedicationRequest" and r["status"] == "active"))
            if chronic and (best is None or rank > best[0]):
                best = (rank, label, body)
    if best is None:
        raise SystemExit(f"no suitable bundle in {corpus}" + (f" named {name}" if name else ""))
    return best[1], best[2]


def report(bundle: bytes, folder: Path) -> bytes:
    """Load the member and the world, enrol the member, and make the report: the PDF."""
    settings = Settings(database_url=f"sqlite:///{folder}/sample.sqlite3", base_url="http://sample/fhir",
                        log_level="WARNING", auth_mode=AuthMode.open)
    upgrade(make_engine(settings.database_url))
    with TestClient(create_app(settings), base_url="http://sample") as client:
        loaded = client.post("/fhir", content=bundle, headers=FHIR_JSON)
        loaded.raise_for_status()
        patient_ref = next(e["response"]["location"] for e in loaded.json()["entry"]
                           if e["response"]["location"].startswith("Patient/")).split("/_history")[0]
        client.post("/fhir", headers=FHIR_JSON, json={"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in world()]}).raise_for_status()
        patient = client.get(f"/fhir/{patient_ref}").json()
        # A program member (cw-member-patient) has the plan's member id and a practice.
        patient["identifier"] = [{"system": BASE + "sid/member-id", "value": "M-0001"}, *patient["identifier"]]
        patient["generalPractitioner"] = [{"reference": "PractitionerRole/pcp-role"}]
        client.put(f"/fhir/{patient_ref}", json=patient, headers=FHIR_JSON).raise_for_status()
        agreed = (datetime.now(UTC) - timedelta(days=14)).date().isoformat()
        _ok(client.post(f"/fhir/{patient_ref}/$enroll", headers=FHIR_JSON, json={
            "resourceType": "Parameters", "parameter": [
                {"name": "coordinator", "valueReference": {"reference": "Practitioner/coordinator"}},
                {"name": "pcp", "valueReference": {"reference": "Practitioner/pcp"}},
                {"name": "agreement", "valueBoolean": True}, {"name": "agreementDate", "valueDate": agreed}]}))
        made = client.post(f"/fhir/{patient_ref}/$pcp-report", headers=FHIR_JSON,
                           json={"resourceType": "Parameters", "parameter": [{"name": "format", "valueCode": "pdf"}]})
        made.raise_for_status()
        return made.content


def _ok(response):
    """The response, or stop with its OperationOutcome's diagnostics (never a resource body)."""
    if response.status_code >= 400:
        issues = [i.get("diagnostics", "") for i in response.json().get("issue", [])]
        raise SystemExit(f"{response.request.method} {response.request.url.path}: {response.status_code} {issues}")
    return response


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--bundle", help="a bundle's file name in the corpus (default: the first that fits)")
    parser.add_argument("--dpi", type=int, default=80)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "pcp-report-sample.png")
    args = parser.parse_args()
    if not args.corpus.is_file():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 1
    name, bundle = pick(args.corpus, args.bundle)
    with tempfile.TemporaryDirectory() as folder:
        pdf = report(bundle, Path(folder))
    document = pypdfium2.PdfDocument(pdf)
    image = document[0].render(scale=args.dpi / 72).to_pil().convert("L")
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png.getvalue())
    print(f"{args.out}: page 1 of {len(document)} of the report for {name}, {len(png.getvalue()) // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
