"""Patient/$care-candidates (profiles/OperationDefinition-care-candidates.json) over HTTP, on SQLite and
PostgreSQL: the ranking, scores and reasons of a small world whose members' records are written out here
(ICD-10-CM and SNOMED CT conditions, encounters, medications), each exclusion, the practice filter, count,
asOf moving the windows, GET and POST, refusals, a replaced rules file, a coordinator's token, and 20
Synthea members whose reasons were checked by hand (tests/data/candidates/hand-checked.json)."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import BASE_URL
from fhirjson import FHIR_JSON, expressions
from program_world import BASE, SNOMED, issue_expressions, load, member

from fhir_server.auth import tokens
from fhir_server.auth.clients import register
from fhir_server.auth.keys import KeyRing
from fhir_server.auth.users import add_user
from fhir_server.config import SettingsError, load_settings
from fhir_server.store.db import unit_of_work

ROOT = Path(__file__).resolve().parents[2]
OPERATION = ROOT / "profiles" / "OperationDefinition-care-candidates.json"
RULES = ROOT / "fhir_server" / "care" / "knowledge" / "candidate_rules.json"
HAND_CHECKED = ROOT / "tests" / "data" / "candidates" / "hand-checked.json"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
PROGRAM_SYSTEM = BASE + "CodeSystem/cw-program"
REASON = BASE + "CodeSystem/cw-candidate-reason"
AS_OF = "2026-06-30"


# -- the world ----------------------------------------------------------------------------------------------


def _ref(reference: str) -> dict:
    return {"reference": reference}


def condition(id: str, patient: str, system: str, code: str, status: str | None = "active", **extra) -> dict:
    resource = {"resourceType": "Condition", "id": id, "subject": _ref(f"Patient/{patient}"),
                "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": "2020-03-01", **extra}
    if status is not None:
        resource["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": status}]}
    return resource


def encounter(id: str, patient: str, kind: str, start: str, end: str | None, status: str = "finished",
              **extra) -> dict:
    period = {"start": start, **({"end": end} if end else {})}
    return {"resourceType": "Encounter", "id": id, "status": status, "class": {"system": ACT, "code": kind},
            "subject": _ref(f"Patient/{patient}"), "period": period, **extra}


def medication(id: str, patient: str, rxnorm: str, status: str = "active", authored: str = "2025-01-01") -> dict:
    return {"resourceType": "MedicationRequest", "id": id, "status": status, "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
            "subject": _ref(f"Patient/{patient}"), "authoredOn": authored}


def statement(id: str, patient: str, rxnorm: str, effective: str) -> dict:
    return {"resourceType": "MedicationStatement", "id": id, "status": "active",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}]},
            "subject": _ref(f"Patient/{patient}"), "effectiveDateTime": effective}


def program_episode(id: str, patient: str, status: str, end: str | None = None, reason: str | None = None) -> dict:
    episode = {"resourceType": "EpisodeOfCare", "id": id, "status": status, "patient": _ref(f"Patient/{patient}"),
               "type": [{"coding": [{"system": PROGRAM_SYSTEM, "code": "chronic-care-coordination"}]}],
               "period": {"start": "2025-01-10", **({"end": end} if end else {})}}
    if reason:
        episode["extension"] = [{"url": BASE + "StructureDefinition/disenrollment-reason", "valueCodeableConcept": {
            "coding": [{"system": BASE + "CodeSystem/cw-disenrollment-reason", "code": reason}]}}]
    return episode


def declined_call(id: str, patient: str, sent: str, party: str = "member") -> dict:
    return {"resourceType": "Communication", "id": id, "status": "completed",
            "extension": [{"url": BASE + "StructureDefinition/outreach-call", "extension": [
                {"url": "direction", "valueCode": "outbound"}, {"url": "party", "valueCode": party}]}],
            "statusReason": {"coding": [{"system": BASE + "CodeSystem/cw-outreach-outcome", "code": "declined"}]},
            "category": [{"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call"}]}],
            "subject": _ref(f"Patient/{patient}"), "sent": f"{sent}T10:00:00Z"}


def hospice(code: str) -> dict:
    return {"coding": [{"system": SNOMED, "code": code}]}


def two_groups(patient: str) -> list[dict]:
    """Diabetes and hypertension: enough to qualify, so that only an exclusion keeps the member out."""
    return [condition(f"{patient}-dm", patient, ICD10CM, "E11.9"), condition(f"{patient}-htn", patient, ICD10CM, "I10")]


EXCLUDED = {  # member id: the resources that exclude them
    "x-enrolled": [program_episode("x-enrolled-ep", "x-enrolled", "active")],
    "x-declined": [program_episode("x-declined-ep", "x-declined", "finished", "2026-03-01", "member-request")],
    "x-declined-call": [declined_call("x-declined-call-c", "x-declined-call", "2026-05-01")],
    "x-hospice-episode": [{"resourceType": "EpisodeOfCare", "id": "x-hospice-episode-ep", "status": "active",
                           "patient": _ref("Patient/x-hospice-episode"), "type": [hospice("385763009")]}],
    "x-hospice-encounter": [encounter("x-hospice-encounter-e", "x-hospice-encounter", "HH", "2024-01-01", None,
                                      status="in-progress", type=[hospice("305336008")])],
    "x-hospice-request": [{"resourceType": "ServiceRequest", "id": "x-hospice-request-sr", "status": "active",
                           "intent": "order", "code": hospice("385763009"),
                           "subject": _ref("Patient/x-hospice-request")}],
    "x-hospice-condition": [condition("x-hospice-condition-c", "x-hospice-condition", SNOMED, "170935008")],
    "x-hospice-discharge": [encounter("x-hospice-discharge-e", "x-hospice-discharge", "IMP", "2026-03-20", "2026-04-01",
                                      hospitalization={"dischargeDisposition": {"coding": [
                                          {"system": "http://www.nubc.org/patient-discharge", "code": "51"}]}})],
    "x-deceased": [],
    "x-deceased-flag": [],
}

WORLD = [
    # ann: three groups in ICD-10-CM, two stays, the last ended 9 days ago, seven medications.
    condition("ann-dm", "ann", ICD10CM, "E11.9"), condition("ann-hf", "ann", ICD10CM, "I50.22"),
    condition("ann-ckd", "ann", ICD10CM, "N18.4"),
    encounter("ann-stay1", "ann", "IMP", "2026-06-18T08:00:00-04:00", "2026-06-21T15:00:00-04:00"),
    encounter("ann-stay2", "ann", "IMP", "2025-11-08", "2025-11-10"),
    encounter("ann-stay0", "ann", "IMP", "2025-05-01", "2025-05-03"),  # more than 12 months before
    encounter("ann-visit", "ann", "AMB", "2026-05-01", "2026-05-01"),
    encounter("ann-er-cancelled", "ann", "EMER", "2026-02-02", "2026-02-02", status="cancelled"),
    *[medication(f"ann-rx{i}", "ann", code) for i, code in enumerate(("860975", "314076", "197361", "310965",
                                                                       "1049221"))],
    medication("ann-rx-again", "ann", "314076"),  # the same medication twice counts once
    medication("ann-rx-stopped", "ann", "308136", status="stopped"),
    statement("ann-ms1", "ann", "198211", "2024-06-01"), statement("ann-ms2", "ann", "243670", "2026-02-01"),
    # bob: two groups in SNOMED CT; two medications are too few to count.
    condition("bob-htn", "bob", SNOMED, "38341003"), condition("bob-lipid", "bob", SNOMED, "55822004",
                                                                onsetDateTime="2026-03-01"),
    medication("bob-rx1", "bob", "314076"), medication("bob-rx2", "bob", "197361"),
    # cat: asthma, with three emergency visits in the year (and one before it).
    condition("cat-asthma", "cat", SNOMED, "195967001"),
    *[encounter(f"cat-er{i}", "cat", "EMER", day, day) for i, day in enumerate(
        ("2025-05-01", "2026-01-05", "2026-03-02", "2026-05-20"))],
    # dee: one group only; a resolved and an abated condition do not count.
    condition("dee-dm", "dee", ICD10CM, "E11.65"), condition("dee-htn", "dee", ICD10CM, "I10", status="resolved"),
    condition("dee-copd", "dee", ICD10CM, "J44.9", status=None, abatementDateTime="2024-02-01"),
    # eve: conditions without a clinicalStatus, not abated, count.
    condition("eve-af", "eve", ICD10CM, "I48.0", status=None), condition("eve-cad", "eve", ICD10CM, "I25.10",
                                                                         status=None),
    # fay: Charlson categories that supersede milder ones.
    condition("fay-dm", "fay", ICD10CM, "E11.9"), condition("fay-dmc", "fay", ICD10CM, "E11.22"),
    condition("fay-lung", "fay", ICD10CM, "C34.90"), condition("fay-meta", "fay", ICD10CM, "C78.7"),
    condition("fay-liver", "fay", ICD10CM, "K70.30"), condition("fay-failure", "fay", ICD10CM, "K72.10"),
    # old-decline: left the program at their request more than six months ago; a PCP's refusal is not theirs.
    *two_groups("old-decline"),
    program_episode("old-decline-ep", "old-decline", "finished", "2025-11-15", "member-request"),
    declined_call("old-decline-pcp", "old-decline", "2026-05-01", party="pcp"),
    *[r for id in EXCLUDED for r in two_groups(id)],
    *[r for resources in EXCLUDED.values() for r in resources],
]

ANN = ["3 chronic conditions: diabetes, heart failure, chronic kidney disease", "2 inpatient stays in 12 months",
       "discharged from hospital 9 days ago", "7 active medications", "Charlson comorbidity index 3"]
RANKING = [
    ("ann", 103, ANN),
    ("fay", 53, ["2 chronic conditions: diabetes, chronic kidney disease", "Charlson comorbidity index 11"]),
    ("cat", 28, ["1 chronic condition: asthma", "3 emergency visits in 12 months", "Charlson comorbidity index 1"]),
    ("bob", 20, ["2 chronic conditions: hypertension, hyperlipidemia"]),
    ("eve", 20, ["2 chronic conditions: coronary artery disease, atrial fibrillation"]),
    ("old-decline", 20, ["2 chronic conditions: diabetes, hypertension"]),
]
REASON_CODES = {"chronic condition": "chronic-conditions", "inpatient stay": "inpatient-stays",
                "emergency visit": "emergency-visits", "discharged": "recent-discharge",
                "active medication": "polypharmacy", "Charlson": "charlson-index"}


def _put_all(http, resources: list[dict]) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = http.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


@pytest.fixture
def world(client):
    load(client)  # ann (in-program via her PCP's role), bob (not-in-program), cat (no PCP), dee (never-asked)
    eve = member("eve", None) | {"generalPractitioner": [_ref("Organization/in-program")]}
    others = [member(id, None) for id in ("fay", "old-decline", *EXCLUDED)]
    others[-2]["deceasedDateTime"] = "2026-01-15"
    others[-1]["deceasedBoolean"] = True
    _put_all(client, [eve, *others, *WORLD])
    return client


def _call(http, method: str = "GET", **inputs):
    if method == "GET":
        return http.get("/fhir/Patient/$care-candidates", params=inputs)
    parts = [{"name": name, **_value(name, value)} for name, value in inputs.items()]
    return http.post("/fhir/Patient/$care-candidates", json={"resourceType": "Parameters", "parameter": parts},
                     headers=FHIR_JSON)


def _value(name: str, value) -> dict:
    if name == "practice":
        return {"valueReference": {"reference": value}}
    return {"valueInteger": value} if name == "count" else {"valueDate": value}


def _ranked(response) -> list[tuple[str, float, list[str]]]:
    """(patient id, score, reason texts) of each candidate, in the order given; checks ranks and codings."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Parameters"
    found = []
    for rank, candidate in enumerate((p for p in body["parameter"] if p["name"] == "candidate"), start=1):
        parts = candidate["part"]
        assert [p["name"] for p in parts][:3] == ["patient", "score", "rank"]
        assert parts[2]["valueInteger"] == rank
        reasons = [p["valueCodeableConcept"] for p in parts[3:]]
        assert all(p["name"] == "reason" for p in parts[3:]) and reasons
        for reason in reasons:
            [coding] = reason["coding"]
            expected = next(code for words, code in REASON_CODES.items() if words in reason["text"])
            assert (coding["system"], coding["code"]) == (REASON, expected), reason
        found.append((parts[0]["valueReference"]["reference"].removeprefix("Patient/"), parts[1]["valueDecimal"],
                      [r["text"] for r in reasons]))
    return found


def _total(response) -> int:
    return next(p["valueInteger"] for p in response.json()["parameter"] if p["name"] == "total")


# -- ranking, scores and reasons ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_members_are_ranked_with_their_scores_and_reasons(world, method):
    response = _call(world, method, asOf=AS_OF)
    assert _ranked(response) == RANKING
    assert _total(response) == len(RANKING)
    first = next(p for p in response.json()["parameter"] if p["name"] == "candidate")["part"][0]
    assert first["valueReference"] == {"reference": "Patient/ann", "display": "Ann Rivera"}


@pytest.mark.parametrize("excluded", sorted(EXCLUDED))
def test_each_exclusion_keeps_the_member_out_and_only_it(world, excluded):
    """Without the record that excludes them, the member is a candidate like any other with two groups."""
    assert excluded not in [id for id, _, _ in _ranked(_call(world, asOf=AS_OF))]
    for resource in EXCLUDED[excluded]:
        assert world.delete(f"/fhir/{resource['resourceType']}/{resource['id']}").status_code in (200, 204)
    if excluded.startswith("x-deceased"):
        assert world.put(f"/fhir/Patient/{excluded}", json=member(excluded, None), headers=FHIR_JSON).status_code == 200
    ranked = _ranked(_call(world, asOf=AS_OF))
    assert (excluded, 20, ["2 chronic conditions: diabetes, hypertension"]) in ranked


def test_declines_and_hospice_discharges_count_within_their_months(world):
    """asOf 2026-10-01: the member-request disenrolment (2026-03-01) is more than 6 months old; the discharge to
    hospice (2026-04-01) is still within 12 months."""
    ranked = [id for id, _, _ in _ranked(_call(world, asOf="2026-10-01"))]
    assert "x-declined" in ranked and "x-declined-call" not in ranked and "x-hospice-discharge" not in ranked
    ranked = [id for id, _, _ in _ranked(_call(world, asOf="2027-04-02"))]
    assert {"x-declined-call", "x-hospice-discharge"} <= set(ranked)


def test_as_of_moves_every_window(world):
    """On 2025-12-31 ann's latest stay and one medication had not begun, her stay of May 2025 was within the
    year and the discharge of November 2025 more than 30 days back; bob's hyperlipidemia (onset 2026-03) and
    cat's visits of 2026 were still to come."""
    ranked = _ranked(_call(world, asOf="2025-12-31"))
    assert ranked[0] == ("ann", 81, ["3 chronic conditions: diabetes, heart failure, chronic kidney disease",
                                     "2 inpatient stays in 12 months", "6 active medications",
                                     "Charlson comorbidity index 3"])
    assert not {"bob", "cat"} & {id for id, _, _ in ranked}
    ann = _ranked(_call(world, asOf="2026-07-10"))[0]
    assert ann[0] == "ann" and "discharged from hospital 19 days ago" in ann[2]
    ann = _ranked(_call(world, asOf="2026-06-21"))[0]
    assert "discharged from hospital today" in ann[2]
    ann = _ranked(_call(world, asOf="2026-07-22"))[0]
    assert ann[1] == 83 and not any("discharged" in text for text in ann[2])


# -- inputs ---------------------------------------------------------------------------------------------------


def test_count_keeps_the_best_and_the_total_counts_all(world):
    response = _call(world, asOf=AS_OF, count=2)
    assert [id for id, _, _ in _ranked(response)] == ["ann", "fay"] and _total(response) == 6
    response = _call(world, "POST", asOf=AS_OF, count=0)
    assert _ranked(response) == [] and _total(response) == 6


@pytest.mark.parametrize(("practice", "members"), [
    ("Organization/in-program", ["ann", "eve"]),  # ann by her PCP's PractitionerRole, eve by the practice itself
    ("Organization/not-in-program", ["bob"]),
    ("Organization/never-asked", []),
])
def test_practice_keeps_its_members(world, practice, members):
    for method in ("GET", "POST"):
        assert [id for id, _, _ in _ranked(_call(world, method, asOf=AS_OF, practice=practice))] == members


def test_the_default_day_is_today(world):
    """Without asOf, every window ends today (UTC)."""
    today = datetime.now(UTC).date()
    assert _ranked(_call(world)) == _ranked(_call(world, asOf=today.isoformat()))


@pytest.mark.parametrize(("inputs", "status", "name"), [
    ({"count": "abc"}, 400, "count"),
    ({"count": "-1"}, 400, "count"),
    ({"count": "1001"}, 400, "count"),
    ({"asOf": "2026-13-01"}, 400, "asOf"),
    ({"asOf": "2026-06"}, 400, "asOf"),
    ({"asOf": "yesterday"}, 400, "asOf"),
    ({"practice": "Patient/ann"}, 400, "practice"),
    ({"practice": "in-program"}, 400, "practice"),
    ({"practice": "Organization/nowhere"}, 422, "practice"),
    ({"region": "north"}, 400, "region"),
])
def test_bad_inputs_are_refused_naming_the_input(world, inputs, status, name):
    response = world.get("/fhir/Patient/$care-candidates", params=inputs)
    assert response.status_code == status, response.text
    assert expressions(response) == [name]


def test_bad_inputs_in_a_post_are_refused_too(world):
    response = _call(world, "POST", count=5000)
    assert response.status_code == 400 and issue_expressions(response) == ["count"]
    response = _call(world, "POST", practice="Practitioner/dr-in")
    assert response.status_code == 400 and issue_expressions(response) == ["practice"]


def test_it_is_a_type_level_operation_only(world):
    assert world.get("/fhir/Patient/ann/$care-candidates").status_code == 404


# -- the rules file -----------------------------------------------------------------------------------------


def test_a_program_replaces_the_rules_with_its_own_file(world, served, tmp_path):
    """One chronic group qualifies; chronic conditions weigh 7 and Charlson nothing."""
    rules = json.loads(RULES.read_text())
    rules["qualification"]["anyOf"] = [{"chronicConditions": 1}]
    rules["chronicConditions"]["weight"] = 7
    rules["charlson"]["weight"] = 0
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    ranked = _ranked(_call(served(candidate_rules=str(path)), asOf=AS_OF))
    assert ("dee", 7, ["1 chronic condition: diabetes"]) in ranked
    assert ("fay", 14, ["2 chronic conditions: diabetes, chronic kidney disease", "Charlson comorbidity index 11"]) \
        in ranked
    assert _ranked(_call(world, asOf=AS_OF)) == RANKING  # the shipped rules are unchanged


def test_a_rules_file_that_cannot_be_used_stops_the_start_or_is_a_server_error_naming_it(world, served, tmp_path):
    path = tmp_path / "broken.json"
    rules = json.loads(RULES.read_text())
    rules["qualification"]["anyOf"] = [{"hospitalDays": 3}]
    path.write_text(json.dumps(rules))
    with pytest.raises(SettingsError, match=r"FHIR_CANDIDATE_RULES: .*broken\.json.*hospitalDays"):
        served(candidate_rules=str(path))
    # A ValueSet the rules name is looked up per call (it may be stored later): a 500 naming it.
    rules = json.loads(RULES.read_text())
    rules["chronicConditions"]["groups"][0]["valueSet"] = "https://example.org/fhir/ValueSet/nothing"
    path.write_text(json.dumps(rules))
    response = _call(served(candidate_rules=str(path)), asOf=AS_OF)
    assert response.status_code == 500 and "https://example.org/fhir/ValueSet/nothing" in response.text


def test_the_rules_file_is_read_from_fhir_candidate_rules(monkeypatch, tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(RULES.read_text())
    monkeypatch.setenv("FHIR_CANDIDATE_RULES", str(path))
    assert load_settings().candidate_rules == str(path)
    monkeypatch.setenv("FHIR_CANDIDATE_RULES", str(tmp_path / "missing.json"))
    with pytest.raises(SettingsError, match="FHIR_CANDIDATE_RULES"):
        load_settings()
    monkeypatch.delenv("FHIR_CANDIDATE_RULES")
    assert load_settings().candidate_rules is None


def test_every_rules_section_names_its_source_and_licence():
    rules = json.loads(RULES.read_text())
    sections = [name for name, value in rules.items() if isinstance(value, dict)]
    assert sections == ["chronicConditions", "utilisation", "recentDischarge", "polypharmacy", "charlson",
                        "qualification", "exclusions"]
    for name in sections:
        assert rules[name]["source"] and rules[name]["licence"], name


def test_the_group_value_sets_hold_icd10cm_subcodes_and_synthea_snomed_codes(client):
    """Spot checks written out by hand: what Synthea records and the common ICD-10-CM subcodes."""
    expected = {
        "diabetes": {(ICD10CM, "E11.9"), (ICD10CM, "E11.65"), (ICD10CM, "E11.22"), (ICD10CM, "E10.9"),
                     (SNOMED, "44054006"), (SNOMED, "127013003"), (SNOMED, "368581000119106")},
        "hypertension": {(ICD10CM, "I10"), (ICD10CM, "I13.10"), (SNOMED, "38341003"), (SNOMED, "59621000")},
        "heart-failure": {(ICD10CM, "I50.22"), (ICD10CM, "I11.0"), (SNOMED, "88805009"), (SNOMED, "84114007")},
        "copd": {(ICD10CM, "J44.9"), (ICD10CM, "J43.9"), (SNOMED, "185086009"), (SNOMED, "87433001")},
        "asthma": {(ICD10CM, "J45.909"), (SNOMED, "195967001"), (SNOMED, "233678006")},
        "ckd": {(ICD10CM, "N18.4"), (ICD10CM, "N18.6"), (SNOMED, "431855005"), (SNOMED, "46177005")},
        "coronary-artery-disease": {(ICD10CM, "I25.10"), (ICD10CM, "I21.4"), (SNOMED, "53741008")},
        "depression": {(ICD10CM, "F32.9"), (ICD10CM, "F33.1"), (SNOMED, "370143000")},
        "hyperlipidemia": {(ICD10CM, "E78.5"), (ICD10CM, "E78.2"), (SNOMED, "55822004"), (SNOMED, "302870006")},
        "atrial-fibrillation": {(ICD10CM, "I48.91"), (ICD10CM, "I48.0"), (SNOMED, "49436004")},
    }
    for group, codes in expected.items():
        response = client.get("/fhir/ValueSet/$expand", params={"url": f"{BASE}ValueSet/cw-chronic-{group}"})
        assert response.status_code == 200, response.text
        members = {(c["system"], c["code"]) for c in response.json()["expansion"]["contains"]}
        assert codes <= members, (group, codes - members)
        assert (ICD10CM, "O24.410") not in members and (ICD10CM, "I48.92") not in members


# -- the grant ----------------------------------------------------------------------------------------------


def test_a_coordinator_ranks_only_the_members_they_may_read(world, smart, engine):
    """A coordinator's `user/` token reaches the members whose CareTeam has them (store/access.py)."""
    _put_all(world, [{"resourceType": "CareTeam", "id": f"team-{p}", "status": "active",
                      "subject": _ref(f"Patient/{p}"), "participant": [{"member": _ref("Practitioner/rn")}]}
                     for p in ("cat", "bob", "dee")])
    username = "nurse-" + secrets.token_hex(4)
    add_user(engine, username=username, password="correct horse battery", role="coordinator",
             practitioner="Practitioner/rn")
    app = register(engine, client_type="public", name="Worklist", scope="user/*.rs",
                   redirect_uris=["http://127.0.0.1:9999/callback"]).client_id
    key = KeyRing(engine).signing_key(datetime.now(UTC).replace(tzinfo=None))
    with unit_of_work(engine, write=True) as conn:
        token, _ = tokens.issue(conn, key, issuer=BASE_URL, client_id=app, scope="user/*.rs",
                                lifetime=timedelta(minutes=5), subject=username)
    response = smart.get("/fhir/Patient/$care-candidates", params={"asOf": AS_OF},
                         headers={"Authorization": f"Bearer {token}"})
    assert [(id, score) for id, score, _ in _ranked(response)] == [("cat", 28), ("bob", 20)]
    assert _total(response) == 2


# -- 20 Synthea members checked by hand ---------------------------------------------------------------------


def test_twenty_synthea_members_get_the_reasons_checked_by_hand(client):
    checked = json.loads(HAND_CHECKED.read_text())
    assert len(checked["members"]) == 20
    _put_all(client, [r for m in checked["members"] for r in m["resources"]])
    ranked = {id: (score, reasons) for id, score, reasons in _ranked(_call(client, asOf=checked["asOf"],
                                                                           count=1000))}
    for checked_member in checked["members"]:
        found = ranked.get(checked_member["patient"], (None, []))
        assert found[1] == checked_member["reasons"], (checked_member["patient"], checked_member["note"])
        if checked_member["reasons"]:
            assert found[0] == checked_member["score"], checked_member["patient"]


# -- the definition -------------------------------------------------------------------------------------------


def test_the_operation_definition_is_valid_and_listed(client):
    definition = json.loads(OPERATION.read_text())
    response = client.post("/fhir/OperationDefinition/$validate", json=definition, headers=FHIR_JSON)
    assert response.status_code == 200
    assert [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")] == []
    assert {p["name"] for p in definition["parameter"] if p["use"] == "in"} == {"practice", "count", "asOf"}
    patient = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "care-candidates", "definition": definition["url"]} in patient["operation"]
