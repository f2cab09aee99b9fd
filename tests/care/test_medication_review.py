"""Patient/[id]/$medication-review (profiles/OperationDefinition-medication-review.json) over HTTP, on SQLite
and PostgreSQL: hand-made members with known answers for each interaction we encode (the ONC high-priority
classes and the chronic-care pairs from FDA labels), duplication, polypharmacy, monitoring gaps, metformin
with a low eGFR and drugs that call for care at 65 and over; reconciliation by ingredient; persisting
(once, cited by the care plan); the refusals; and the ingredient map's coverage of the Synthea corpus."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPORA
from fhirjson import FHIR_JSON
from program_world import count, load, operation

RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ROOT = Path(__file__).resolve().parents[2]
CORPUS = CORPORA / "synthea-r4.tar.gz"
EGFR = "33914-3"


def _rx(code: str) -> dict:
    return {"coding": [{"system": RX, "code": code}]}


def _request(member: str, n: int, code: str, status: str = "active") -> dict:
    return {"resourceType": "MedicationRequest", "id": f"{member}-rx{n}", "status": status, "intent": "order",
            "subject": {"reference": f"Patient/{member}"}, "medicationCodeableConcept": _rx(code)}


def _statement(member: str, n: int, code: str, status: str = "active") -> dict:
    return {"resourceType": "MedicationStatement", "id": f"{member}-ms{n}", "status": status,
            "subject": {"reference": f"Patient/{member}"}, "medicationCodeableConcept": _rx(code)}


def _lab(member: str, n: int, loinc: str, value: float, days_ago: int) -> dict:
    when = (datetime.now(UTC) - timedelta(days=days_ago)).replace(microsecond=0).isoformat()
    return {"resourceType": "Observation", "id": f"{member}-lab{n}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": f"Patient/{member}"}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": "mL/min/{1.73_m2}"}}


def _put(client, *resources: dict) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def _member(client, member: str, *codes: str, born: str = "1980-05-01", extra: tuple[dict, ...] = ()) -> None:
    _put(client, {"resourceType": "Patient", "id": member, "birthDate": born},
         *(_request(member, n, code) for n, code in enumerate(codes)), *extra)


def _review(client, member: str, *parts: dict) -> dict:
    response = operation(client, f"Patient/{member}/$medication-review", *parts)
    assert response.status_code == 200, response.text
    return response.json()


def _issues(answer: dict) -> dict[str, dict]:
    """The answer's DetectedIssues by identifier value (knowledge entry : ingredient keys)."""
    return {p["resource"]["identifier"][0]["value"]: p["resource"] for p in answer["parameter"] if p["name"] == "issue"}


def _finding(entry: str, *keys: str) -> str:
    return f"{entry}:{'+'.join(sorted(keys))}"


def _summary(answer: dict) -> str:
    return next(p["valueString"] for p in answer["parameter"] if p["name"] == "summary")


# (knowledge entry, the member's medication codes, the ingredient RxCUIs the finding names). Codes are the
# corpus's clinical drugs where it has one, else the ingredient's own RxCUI.
INTERACTIONS = [
    ("onc-amphetamine-maoi", ["1091392", "8123"], ["6901", "8123"]),
    ("onc-atazanavir-ppi", ["343047", "7646"], ["343047", "7646"]),
    ("onc-febuxostat-thiopurine", ["73689", "1256"], ["73689", "1256"]),
    ("onc-ssri-maoi", ["328670", "8123"], ["36437", "8123"]),
    ("onc-irinotecan-cyp3a4", ["51499", "6135"], ["51499", "6135"]),
    ("onc-opioid-maoi", ["861467", "9639"], ["6754", "9639"]),
    ("onc-tca-maoi", ["704", "10734"], ["704", "10734"]),
    ("onc-qt-qt", ["5093", "1740467"], ["5093", "26225"]),
    ("onc-inducer-protease-inhibitor", ["308971", "343047"], ["2002", "343047"]),
    ("onc-statin-cyp3a4", ["316672", "21212"], ["36567", "21212"]),
    ("onc-ergot-cyp3a4", ["4025", "85762"], ["4025", "85762"]),
    ("onc-tizanidine-cyp1a2", ["57258", "2551"], ["57258", "2551"]),
    ("onc-tranylcypromine-procarbazine", ["10734", "8702"], ["10734", "8702"]),
    ("onc-triptan-maoi", ["37418", "8123"], ["37418", "8123"]),
    ("anticoagulant-nsaid", ["855332", "849574"], ["11289", "7258"]),
    ("anticoagulant-antiplatelet", ["1364430", "309362"], ["1364430", "32968"]),
    ("raas-potassium", ["29046", "9997"], ["29046", "9997"]),
    ("dual-raas", ["833036", "52175"], ["1998", "52175"]),
    ("digoxin-amiodarone", ["197604", "834357"], ["3407", "703"]),
    ("digoxin-verapamil", ["197604", "897718"], ["3407", "11170"]),
    ("digoxin-clarithromycin", ["3407", "21212"], ["3407", "21212"]),
    ("clopidogrel-omeprazole", ["309362", "7646"], ["32968", "7646"]),
    ("opioid-benzodiazepine", ["1049221", "563026"], ["7804", "3322"]),
    ("simvastatin-amlodipine", ["312961", "197361"], ["36567", "17767"]),
    ("simvastatin-amiodarone-verapamil", ["312961", "897718"], ["36567", "11170"]),
    ("methotrexate-trimethoprim", ["105586", "10829"], ["6851", "10829"]),
    ("lithium-renal", ["42351", "316049"], ["42351", "5487"]),
    ("ssri-serotonergic", ["406022", "10689"], ["4493", "10689"]),
    ("pde5-nitrate", ["136411", "705129"], ["136411", "4917"]),
]


@pytest.mark.parametrize(("entry", "codes", "keys"), INTERACTIONS, ids=[i[0] for i in INTERACTIONS])
def test_each_interaction_is_found(client, entry, codes, keys):
    _member(client, "m", *codes)
    issues = _issues(_review(client, "m"))
    issue = issues[_finding(entry, *keys)]
    assert issue["code"]["coding"][0]["code"] == "DRG" and issue["status"] == "final"
    assert issue["severity"] in ("high", "moderate")
    assert {r["reference"] for r in issue["implicated"]} == {"MedicationRequest/m-rx0", "MedicationRequest/m-rx1"}
    assert "Source:" in issue["detail"]


def test_unrelated_medicines_give_no_interaction(client):
    _member(client, "m", "313782", "308182")  # acetaminophen, amoxicillin
    answer = _review(client, "m")
    assert _issues(answer) == {}
    assert _summary(answer) == "2 ingredients from 2 records; 0 unmapped; issues: none"


def test_two_statins_are_a_duplication(client):
    _member(client, "m", "259255", "316672")  # atorvastatin, simvastatin
    issue = _issues(_review(client, "m"))[_finding("class-statin", "83367", "36567")]
    assert issue["code"]["coding"][0]["code"] == "DUPTHPY"


def test_a_drug_without_its_recent_lab_is_a_monitoring_gap(client):
    _member(client, "gap", "860975")  # metformin, never an eGFR
    _member(client, "old", "860975", extra=(_lab("old", 0, EGFR, 70, 400),))
    _member(client, "recent", "860975", extra=(_lab("recent", 0, EGFR, 70, 30),))
    gap = _finding("metformin-egfr/eGFR", "6809")
    assert _issues(_review(client, "gap"))[gap]["code"]["coding"][0]["code"] == "LAB"
    assert gap in _issues(_review(client, "old"))
    assert _issues(_review(client, "recent")) == {}


def test_metformin_with_an_egfr_under_30(client):
    _member(client, "low", "860975", extra=(_lab("low", 0, EGFR, 45, 200), _lab("low", 1, "62238-1", 25, 20)))
    _member(client, "fine", "860975", extra=(_lab("fine", 0, EGFR, 25, 200), _lab("fine", 1, EGFR, 45, 20)))
    issue = _issues(_review(client, "low"))[_finding("metformin-egfr-below-30", "6809")]
    assert issue["severity"] == "high" and "25" in issue["detail"]
    assert _issues(_review(client, "fine")) == {}


def test_a_high_risk_drug_at_65_and_over(client):
    _member(client, "older", "563026", born="1950-03-01")  # diazepam
    _member(client, "younger", "563026", born="1990-03-01")
    issue = _issues(_review(client, "older"))[_finding("older-benzodiazepine", "3322")]
    assert issue["code"]["coding"][0]["code"] == "AGE" and issue["severity"] == "high"
    assert _issues(_review(client, "younger")) == {}


def test_five_ingredients_are_polypharmacy(client):
    five = ["313782", "308182", "311372", "745679", "904419"]
    _member(client, "five", *five)
    _member(client, "four", *five[:4])
    answer = _review(client, "five")
    issue = _issues(answer)[_finding("polypharmacy", "161", "723", "28889", "435", "46041")]
    assert issue["code"]["coding"][0]["code"] == "DACT" and len(issue["implicated"]) == 5
    assert _summary(answer).endswith("issues: 1 polypharmacy")
    assert _issues(_review(client, "four")) == {}


def test_records_are_reconciled_by_ingredient(client):
    contained = {"resourceType": "MedicationRequest", "id": "m-rx-contained", "status": "active", "intent": "order",
                 "subject": {"reference": "Patient/m"}, "medicationReference": {"reference": "#amlo"},
                 "contained": [{"resourceType": "Medication", "id": "amlo", "code": _rx("197361")}]}
    medication = {"resourceType": "Medication", "id": "simva", "code": _rx("312961")}
    referenced = {"resourceType": "MedicationStatement", "id": "m-ms-ref", "status": "intended",
                  "subject": {"reference": "Patient/m"}, "medicationReference": {"reference": "Medication/simva"}}
    _member(client, "m", "316672", extra=(_statement("m", 0, "316672"), _statement("m", 1, "197361", "completed"),
                                          contained, medication, referenced))
    answer = _review(client, "m")
    medicines = {p["part"][0]["valueCodeableConcept"]["coding"][0]["code"]:
                 sorted(s["valueReference"]["reference"] for s in p["part"][1:])
                 for p in answer["parameter"] if p["name"] == "medication"}
    assert medicines == {
        "36567": ["MedicationRequest/m-rx0", "MedicationStatement/m-ms-ref", "MedicationStatement/m-ms0"],
        "17767": ["MedicationRequest/m-rx-contained"]}
    assert _finding("simvastatin-amlodipine", "36567", "17767") in _issues(answer)


def test_an_unmapped_code_is_reported(client):
    _member(client, "m", "999999999")
    answer = _review(client, "m")
    [unmapped] = [p for p in answer["parameter"] if p["name"] == "unmapped"]
    assert unmapped["part"][0]["valueReference"] == {"reference": "MedicationRequest/m-rx0"}
    assert "999999999" in unmapped["part"][1]["valueString"]
    assert _summary(answer) == "0 ingredients from 0 records; 1 unmapped; issues: none"


def test_persisting_twice_writes_once_and_the_care_plan_cites_the_issues(client):
    load(client)
    enrolled = operation(client, "Patient/ann/$enroll",
                         {"name": "coordinator", "valueReference": {"reference": "Practitioner/rn"}},
                         {"name": "pcp", "valueReference": {"reference": "Practitioner/dr-in"}},
                         {"name": "agreement", "valueBoolean": True},
                         {"name": "agreementDate", "valueDateTime": "2026-11-20"})
    assert enrolled.status_code == 200, enrolled.text
    plan = next(p["valueReference"]["reference"] for p in enrolled.json()["parameter"] if p["name"] == "carePlan")
    _put(client, _request("ann", 0, "855332"), _request("ann", 1, "849574"))  # warfarin, naproxen
    persist = {"name": "persist", "valueBoolean": True}
    assert _issues(_review(client, "ann")) and count(client, "DetectedIssue") == 0  # without persist: nothing
    first = _issues(_review(client, "ann", persist))
    assert all(issue.get("id") for issue in first.values())
    second = _issues(_review(client, "ann", persist))
    assert {v: i["id"] for v, i in second.items()} == {v: i["id"] for v, i in first.items()}
    assert count(client, "DetectedIssue", patient="Patient/ann") == len(first)
    cited = [r["reference"] for r in client.get(f"/fhir/{plan}").json()["supportingInfo"]]
    assert sorted(cited) == sorted(f"DetectedIssue/{i['id']}" for i in first.values())


def test_persisting_without_a_care_plan_writes_the_issues(client):
    _member(client, "m", "855332", "849574")
    issues = _issues(_review(client, "m", {"name": "persist", "valueBoolean": True}))
    assert set(issues) == {_finding("anticoagulant-nsaid", "11289", "7258"), _finding("warfarin-inr/INR", "11289")}
    assert count(client, "DetectedIssue") == 2


def test_refusals(client):
    assert operation(client, "Patient/nobody/$medication-review").status_code == 404
    _member(client, "m")
    assert operation(client, "Patient/m/$medication-review",
                     {"name": "persist", "valueString": "maybe"}).status_code == 400
    assert operation(client, "Patient/m/$medication-review", {"name": "since", "valueString": "x"}).status_code == 400
    assert client.get("/fhir/Patient/m/$medication-review").status_code == 405


@pytest.mark.skipif(not CORPUS.exists(), reason=f"shared corpus missing: {CORPUS} (../shared is absent)")
def test_every_corpus_medication_code_maps_to_ingredients():
    spec = importlib.util.spec_from_file_location("make_ingredient_map", ROOT / "scripts" / "make_ingredient_map.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    mapped = json.loads(script.OUT.read_text(encoding="utf-8"))["codes"]
    codes = script.corpus_codes(CORPUS)
    assert len(codes) == 123
    assert sorted(set(codes) - set(mapped)) == []
    assert all(mapped[code]["ingredients"] for code in codes)
