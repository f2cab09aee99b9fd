"""Patient/[id]/$care-gaps (profiles/OperationDefinition-care-gaps.json) over HTTP, on SQLite and PostgreSQL:
each gap of hand-made members, found when the test is missing or overdue or the last result out of range and
not when it is recent and in range; the boundaries (a due date reached, HbA1c 9.0, blood pressure 139/89 against
140/90, a panel against standalone readings, the influenza season's first and last days); ICD-10-CM and SNOMED CT
conditions; inactive ones ignored; GET and POST; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON, expressions
from program_world import BASE, SNOMED, load, member

ROOT = Path(__file__).resolve().parents[2]
OPERATION = ROOT / "profiles" / "OperationDefinition-care-gaps.json"
CODE_SYSTEM = ROOT / "profiles" / "CodeSystem-cw-care-gap.json"
GAP = BASE + "CodeSystem/cw-care-gap"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
AS_OF = "2026-06-15"  # outside the influenza season, so only the conditions' own gaps show

DIABETES, HYPERTENSION, HEART_FAILURE, CKD = (ICD10CM, "E11.9"), (SNOMED, "59621000"), (ICD10CM, "I50.9"), \
    (SNOMED, "433144002")


# -- the records --------------------------------------------------------------------------------------------


def condition(id: str, patient: str, coded: tuple[str, str], status: str = "active", **extra) -> dict:
    return {"resourceType": "Condition", "id": id, "subject": {"reference": f"Patient/{patient}"},
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
            "code": {"coding": [{"system": coded[0], "code": coded[1]}]}, "onsetDateTime": "2020-03-01", **extra}


def result(id: str, patient: str, code: str, value: float, unit: str, when: str, status: str = "final") -> dict:
    return {"resourceType": "Observation", "id": id, "status": status, "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": when,
            "valueQuantity": {"value": value, "unit": unit}}


def bp_panel(id: str, patient: str, systolic: int, diastolic: int, when: str, code: str = "85354-9") -> dict:
    def part(loinc: str, value: int) -> dict:
        return {"code": {"coding": [{"system": LOINC, "code": loinc}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]"}}

    return {"resourceType": "Observation", "id": id, "status": "final", "subject": {"reference": f"Patient/{patient}"},
            "code": {"coding": [{"system": LOINC, "code": code}]}, "effectiveDateTime": when,
            "component": [part("8480-6", systolic), part("8462-4", diastolic)]}


def flu_shot(id: str, patient: str, when: str, cvx: str = "150", status: str = "completed") -> dict:
    return {"resourceType": "Immunization", "id": id, "status": status, "patient": {"reference": f"Patient/{patient}"},
            "vaccineCode": {"coding": [{"system": CVX, "code": cvx}]}, "occurrenceDateTime": when}


def _put_all(client, *resources: dict) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def _member(client, id: str, *records: dict) -> None:
    _put_all(client, member(id, None), *records)


def _answer(client, patient: str, as_of: str | None = AS_OF, method: str = "GET") -> dict:
    if method == "GET":
        response = client.get(f"/fhir/Patient/{patient}/$care-gaps", params={"asOf": as_of} if as_of else None)
    else:
        parts = [{"name": "asOf", "valueDate": as_of}] if as_of else []
        response = client.post(f"/fhir/Patient/{patient}/$care-gaps", headers=FHIR_JSON,
                               json={"resourceType": "Parameters", "parameter": parts})
    assert response.status_code == 200, response.text
    return response.json()


def _gaps(client, patient: str, as_of: str | None = AS_OF) -> list[dict]:
    """Each gap as {code, condition, due, evidence, lastResult}, in the answer's order."""
    found = []
    for parameter in _answer(client, patient, as_of)["parameter"]:
        if parameter["name"] != "gap":
            continue
        gap = {}
        for part in parameter["part"]:
            value = next(v for k, v in part.items() if k.startswith("value"))
            if part["name"] == "code":
                assert value["system"] == GAP
                value = value["code"]
            gap[part["name"]] = value["reference"] if isinstance(value, dict) else value
        found.append(gap)
    return found


def _codes(client, patient: str, as_of: str = AS_OF) -> list[str]:
    return [gap["code"] for gap in _gaps(client, patient, as_of)]


# -- each gap -----------------------------------------------------------------------------------------------


def test_a_member_without_chronic_conditions_has_no_gaps(client):
    load(client)
    answer = _answer(client, "ann")
    assert answer["parameter"] == [{"name": "summary", "valueString": f"no open care gaps on {AS_OF}"}]
    _put_all(client, condition("asthma", "ann", (ICD10CM, "J45.909")))
    assert _gaps(client, "ann", "2026-11-01") == []  # no influenza gap either: not a condition the rules track


def test_diabetes_without_an_hba1c(client):
    _member(client, "dm", condition("dm-icd", "dm", DIABETES))
    assert _gaps(client, "dm") == [{"code": "diabetes-hba1c-missing", "condition": "Condition/dm-icd", "due": AS_OF,
                                    "evidence": "no HbA1c on record"}]
    # Six months to the day: due today, so open.
    _put_all(client, result("a1c-old", "dm", "4548-4", 7.1, "%", "2025-12-15T09:30:00Z"))
    assert _gaps(client, "dm") == [{"code": "diabetes-hba1c-missing", "condition": "Condition/dm-icd",
                                    "due": "2026-06-15", "evidence": "no HbA1c since 2025-12-15",
                                    "lastResult": "Observation/a1c-old"}]
    _put_all(client, result("a1c-newer", "dm", "17856-6", 7.0, "%", "2025-12-16"))
    assert _gaps(client, "dm") == []
    answer = _answer(client, "dm")
    assert answer["parameter"] == [{"name": "summary", "valueString": f"no open care gaps on {AS_OF}"}]


@pytest.mark.parametrize(("value", "gap"), [(9.0, False), (9.1, True), (12, True), (6.5, False)])
def test_diabetes_with_a_last_hba1c_above_9(client, value, gap):
    _member(client, "dm", condition("dm-snomed", "dm", (SNOMED, "44054006")),
            result("a1c-high-earlier", "dm", "4548-4", 10.4, "%", "2026-02-01"),
            result("a1c", "dm", "4549-2", value, "%", "2026-05-02"))
    expected = [{"code": "diabetes-hba1c-poor-control", "condition": "Condition/dm-snomed", "due": "2026-08-02",
                 "evidence": f"last HbA1c {value}% on 2026-05-02", "lastResult": "Observation/a1c"}]
    assert _gaps(client, "dm") == (expected if gap else [])


def test_results_that_do_not_stand_or_are_after_as_of_do_not_count(client):
    _member(client, "dm", condition("dm", "dm", DIABETES),
            result("a1c-error", "dm", "4548-4", 7.0, "%", "2026-06-01", status="entered-in-error"),
            result("a1c-pending", "dm", "4548-4", 7.0, "%", "2026-06-01", status="preliminary"),
            result("a1c-later", "dm", "4548-4", 7.0, "%", "2026-06-20"))
    assert _codes(client, "dm") == ["diabetes-hba1c-missing"]
    assert _codes(client, "dm", "2026-06-20") == []


@pytest.mark.parametrize(("readings", "evidence"), [
    ([bp_panel("bp", "htn", 139, 89, "2026-05-20")], None),
    ([bp_panel("bp", "htn", 140, 89, "2026-05-20")], "140/89"),
    ([bp_panel("bp", "htn", 139, 90, "2026-05-20")], "139/90"),
    ([bp_panel("bp", "htn", 150, 95, "2026-05-20", code="55284-4")], "150/95"),
    # The last reading counts: a high one before it does not.
    ([bp_panel("bp-high", "htn", 165, 100, "2026-04-01"), bp_panel("bp", "htn", 128, 78, "2026-05-20")], None),
    # Standalone systolic and diastolic readings taken together are one blood pressure.
    ([result("bp", "htn", "8480-6", 141, "mm[Hg]", "2026-05-20T10:00:00Z"),
      result("bp-dia", "htn", "8462-4", 85, "mm[Hg]", "2026-05-20T10:00:00Z")], "141/85"),
    ([result("bp", "htn", "8480-6", 139, "mm[Hg]", "2026-05-20T10:00:00Z"),
      result("bp-dia", "htn", "8462-4", 89, "mm[Hg]", "2026-05-20T10:00:00Z")], None),
    ([bp_panel("bp-high", "htn", 150, 95, "2026-05-20T08:00:00Z"),
      result("bp", "htn", "8480-6", 132, "mm[Hg]", "2026-05-20T10:00:00Z"),
      result("bp-dia", "htn", "8462-4", 84, "mm[Hg]", "2026-05-20T10:00:00Z")], None),
])
def test_hypertension_with_a_last_blood_pressure_of_140_90_or_more(client, readings, evidence):
    _member(client, "htn", condition("htn", "htn", HYPERTENSION), *readings)
    expected = [{"code": "hypertension-bp-uncontrolled", "condition": "Condition/htn", "due": "2026-06-20",
                 "evidence": f"last blood pressure {evidence} mmHg on 2026-05-20", "lastResult": "Observation/bp"}]
    assert _gaps(client, "htn") == (expected if evidence else [])


def test_hypertension_without_a_blood_pressure_in_12_months(client):
    _member(client, "htn", condition("htn", "htn", (ICD10CM, "I10")))
    assert _gaps(client, "htn") == [{"code": "hypertension-bp-missing", "condition": "Condition/htn", "due": AS_OF,
                                     "evidence": "no blood pressure on record"}]
    _put_all(client, result("bp", "htn", "8480-6", 122, "mm[Hg]", "2025-06-15"),
             result("bp-dia", "htn", "8462-4", 76, "mm[Hg]", "2025-06-15"))
    assert _gaps(client, "htn") == [{"code": "hypertension-bp-missing", "condition": "Condition/htn",
                                     "due": "2026-06-15", "evidence": "no blood pressure since 2025-06-15",
                                     "lastResult": "Observation/bp"}]
    assert _gaps(client, "htn", "2026-06-14") == []


def test_heart_failure_without_a_weight_in_30_days_or_an_ejection_fraction(client):
    _member(client, "hf", condition("hf", "hf", HEART_FAILURE))
    assert _gaps(client, "hf") == [
        {"code": "heart-failure-weight-missing", "condition": "Condition/hf", "due": AS_OF,
         "evidence": "no body weight on record"},
        {"code": "heart-failure-ef-missing", "condition": "Condition/hf", "due": AS_OF,
         "evidence": "no ejection fraction on record"}]
    # An ejection fraction years ago is enough; a weight 30 days old is due today.
    _put_all(client, result("ef", "hf", "10230-1", 35, "%", "2022-01-10"),
             result("weight", "hf", "29463-7", 82.5, "kg", "2026-05-16"))
    assert _gaps(client, "hf") == [{"code": "heart-failure-weight-missing", "condition": "Condition/hf",
                                    "due": "2026-06-15", "evidence": "no body weight since 2026-05-16",
                                    "lastResult": "Observation/weight"}]
    assert _gaps(client, "hf", "2026-06-14") == []


def test_ckd_without_an_egfr_or_urine_albumin_in_12_months(client):
    _member(client, "ckd", condition("ckd", "ckd", CKD),
            result("egfr", "ckd", "33914-3", 48, "mL/min/{1.73_m2}", "2025-09-01"),
            result("uacr-old", "ckd", "9318-7", 45, "mg/g", "2025-03-01"))
    assert _gaps(client, "ckd") == [{"code": "ckd-uacr-missing", "condition": "Condition/ckd", "due": "2026-03-01",
                                     "evidence": "no urine albumin/creatinine ratio since 2025-03-01",
                                     "lastResult": "Observation/uacr-old"}]
    _put_all(client, result("uacr", "ckd", "14959-1", 30, "mg/g", "2026-01-05"))
    assert _gaps(client, "ckd") == []
    assert _codes(client, "ckd", "2026-09-01") == ["ckd-egfr-missing", "influenza-vaccine-missing"]


def test_icd10_and_snomed_conditions_and_only_active_ones(client):
    _member(client, "mix",
            condition("a-resolved-dm", "mix", DIABETES, status="resolved"),
            condition("b-refuted-htn", "mix", HYPERTENSION, verificationStatus={
                "coding": [{"system": VERIFICATION, "code": "refuted"}]}),
            condition("c-future-hf", "mix", HEART_FAILURE, onsetDateTime="2026-07-01"),
            condition("d-ckd-icd", "mix", (ICD10CM, "N18.31")),
            condition("e-ckd-snomed", "mix", CKD))
    gaps = _gaps(client, "mix")
    assert [(g["code"], g["condition"]) for g in gaps] == [
        ("ckd-egfr-missing", "Condition/d-ckd-icd"), ("ckd-uacr-missing", "Condition/d-ckd-icd")]
    _put_all(client, condition("d-ckd-icd", "mix", (ICD10CM, "N18.31"), status="inactive"))
    assert {g["condition"] for g in _gaps(client, "mix")} == {"Condition/e-ckd-snomed"}
    assert "heart-failure-ef-missing" in _codes(client, "mix", "2026-07-01")


# -- the influenza season -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("as_of", "shot", "since"), [
    ("2026-08-01", None, "2026-08-01"),
    ("2026-08-01", "2026-07-31", "2026-08-01"),  # last season's
    ("2026-08-01", "2026-08-01", None),
    ("2026-12-07", "2026-09-10", None),
    ("2027-03-31", None, "2026-08-01"),
    ("2027-03-31", "2026-10-02", None),
    ("2027-04-01", None, None),  # out of season
    ("2026-07-31", None, None),
])
def test_influenza_vaccine_this_season(client, as_of, shot, since):
    records = [flu_shot("flu", "dm", shot)] if shot else []
    _member(client, "dm", condition("dm", "dm", DIABETES), result("a1c", "dm", "4548-4", 6.8, "%", as_of), *records)
    expected = [{"code": "influenza-vaccine-missing", "condition": "Condition/dm", "due": f"{since[:4]}-10-31",
                 "evidence": f"no influenza vaccine since {since}"}] if since else []
    assert _gaps(client, "dm", as_of) == expected


def test_only_influenza_vaccines_given_count(client):
    _member(client, "dm", condition("dm", "dm", DIABETES), result("a1c", "dm", "4548-4", 6.8, "%", "2026-11-01"),
            flu_shot("pneumococcal", "dm", "2026-10-01", cvx="133"),
            flu_shot("not-given", "dm", "2026-10-01", status="not-done"))
    assert _codes(client, "dm", "2026-11-01") == ["influenza-vaccine-missing"]
    _put_all(client, flu_shot("flu", "dm", "2026-10-20T14:00:00-05:00", cvx="197"))
    assert _codes(client, "dm", "2026-11-01") == []


# -- the answer and the refusals ----------------------------------------------------------------------------


def test_get_and_post_give_the_same_answer_with_a_summary(client):
    _member(client, "many", condition("dm", "many", DIABETES), condition("htn", "many", HYPERTENSION),
            result("a1c", "many", "4548-4", 9.6, "%", "2026-03-02"), bp_panel("bp", "many", 128, 80, "2026-06-01"))
    answer = _answer(client, "many", "2026-10-01")
    assert answer == _answer(client, "many", "2026-10-01", method="POST")
    assert answer["parameter"][-1] == {"name": "summary", "valueString": (
        "3 open care gaps on 2026-10-01: Diabetes: no HbA1c in 6 months (no HbA1c since 2026-03-02); "
        "Diabetes: last HbA1c above 9% (last HbA1c 9.6% on 2026-03-02); "
        "No influenza vaccine this season (no influenza vaccine since 2026-08-01)")}
    displays = {c["code"]: c["display"] for c in json.loads(CODE_SYSTEM.read_text())["concept"]}
    for gap in answer["parameter"][:-1]:
        coding = gap["part"][0]["valueCoding"]
        assert displays[coding["code"]] == coding["display"]
    # A Parameters body to $validate is its inputs, so the answer goes in as the `resource` input.
    response = client.post("/fhir/Parameters/$validate", headers=FHIR_JSON, json={
        "resourceType": "Parameters", "parameter": [{"name": "resource", "resource": answer}]})
    assert [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")] == []


def test_as_of_defaults_to_today(client):
    _member(client, "dm", condition("dm", "dm", DIABETES))
    assert "diabetes-hba1c-missing" in [g["code"] for g in _gaps(client, "dm", None)]


def test_refusals(client):
    load(client)
    assert client.get("/fhir/Patient/nobody/$care-gaps").status_code == 404
    for bad in ("2026-13-01", "2026-06", "yesterday", "2026-06-15T00:00:00Z"):
        response = client.get("/fhir/Patient/ann/$care-gaps", params={"asOf": bad})
        assert response.status_code == 400, bad
        assert expressions(response) == ["asOf"]
    response = client.get("/fhir/Patient/ann/$care-gaps", params={"count": "3"})
    assert response.status_code == 400 and expressions(response) == ["count"]
    response = client.post("/fhir/Patient/ann/$care-gaps", headers=FHIR_JSON, json={
        "resourceType": "Parameters", "parameter": [{"name": "persist", "valueBoolean": True}]})
    assert response.status_code == 400 and expressions(response) == ["persist"]
    assert client.get("/fhir/Patient/$care-gaps").status_code == 404  # an instance operation only


def test_the_operation_definition_is_valid_and_listed(client):
    definition = json.loads(OPERATION.read_text())
    response = client.post("/fhir/OperationDefinition/$validate", json=definition, headers=FHIR_JSON)
    assert response.status_code == 200
    assert [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")] == []
    assert {p["name"] for p in definition["parameter"] if p["use"] == "in"} == {"asOf"}
    patient = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "care-gaps", "definition": definition["url"]} in patient["operation"]
