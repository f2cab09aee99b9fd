"""Measure/[id]/$evaluate-measure (measure-operation-evaluate-measure.html) for CMS122, CMS165 and CMS50 over
HTTP, on SQLite and PostgreSQL: hand-made members with known answers (tests/data/measures/, one file per
measure), each checked alone (an individual report) and together (summary and subject-list reports, the
practice stratifier, the `practice` and `subject` inputs); and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhirjson import FHIR_JSON
from program_world import load

DATA = Path(__file__).resolve().parents[1] / "data" / "measures"
CASES = {path.stem: json.loads(path.read_text()) for path in sorted(DATA.glob("cms*.json"))}
POPULATIONS = ("initial-population", "denominator", "denominator-exclusion", "numerator")
PERIOD = {"periodStart": "2026-01-01", "periodEnd": "2026-12-31"}


def _load(client, measure: str) -> list[dict]:
    load(client)
    cases = CASES[measure]["cases"]
    resources = [r for case in cases for r in case["resources"]]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return cases


def _evaluate(client, measure: str, **params: str) -> dict:
    response = client.get(f"/fhir/Measure/{measure}/$evaluate-measure", params={**PERIOD, **params})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["resourceType"] == "MeasureReport" and report["status"] == "complete"
    assert report["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    return report


def _counts(group: dict) -> dict[str, int]:
    return {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}


@pytest.mark.parametrize("measure", sorted(CASES))
def test_each_member_lands_in_the_populations_the_measure_puts_them_in(client, measure):
    cases = _load(client, measure)
    wrong = {}
    for case in cases:
        report = _evaluate(client, measure, subject=f"Patient/{case['id']}")
        assert report["type"] == "individual" and report["subject"] == {"reference": f"Patient/{case['id']}"}
        counts = _counts(report["group"][0])
        found = sorted(code for code, n in counts.items() if n == 1)
        if found != sorted(case["populations"]):
            wrong[case["id"]] = (found, case["populations"], case["about"])
        assert set(counts.values()) <= {0, 1}
        if case["populations"]:
            assert report["evaluatedResource"], case["id"]
    assert wrong == {}


@pytest.mark.parametrize("measure", sorted(CASES))
def test_summary_counts_scores_and_practice_strata(client, measure):
    cases = _load(client, measure)
    report = _evaluate(client, measure, reportType="population")
    assert report["type"] == "summary" and "subject" not in report
    [group] = report["group"]
    codes = [p["code"]["coding"][0]["code"] for p in group["population"]]
    expected = {code: sum(code in c["populations"] for c in cases) for code in codes}
    assert _counts(group) == expected
    assert group["measureScore"]["value"] == pytest.approx(
        round(expected["numerator"] / (expected["denominator"] - expected.get("denominator-exclusion", 0)), 4))
    [stratifier] = group["stratifier"]
    assert stratifier["code"] == [{"text": "practice"}]
    strata = {s["value"]["text"]: _counts(s) for s in stratifier["stratum"]}
    practices = sorted({c["practice"] for c in cases if c["populations"]})
    assert sorted(strata) == practices
    for practice in practices:
        members = [c for c in cases if c["practice"] == practice]
        assert strata[practice] == {code: sum(code in c["populations"] for c in members) for code in codes}
    assert report["improvementNotation"]["coding"][0]["code"] == ("decrease" if measure == "cms122" else "increase")


def test_subject_list_names_the_members_of_each_population(client):
    cases = _load(client, "cms122")
    report = _evaluate(client, "cms122", reportType="subject-list")
    assert report["type"] == "subject-list"
    lists = {item["id"]: item for item in report["contained"]}
    for population in report["group"][0]["population"]:
        code = population["code"]["coding"][0]["code"]
        listed = lists[population["subjectResults"]["reference"][1:]]
        assert listed["resourceType"] == "List" and listed["mode"] == "snapshot"
        members = [e["item"]["reference"] for e in listed.get("entry", [])]
        assert members == sorted(f"Patient/{c['id']}" for c in cases if code in c["populations"])
        assert population["count"] == len(members)


def test_practice_and_group_subject_narrow_the_members(client):
    cases = _load(client, "cms165")
    report = _evaluate(client, "cms165", practice="Organization/not-in-program")
    assert _counts(report["group"][0]) == {"initial-population": 1, "denominator": 1, "denominator-exclusion": 0,
                                           "numerator": 1}
    group = {"resourceType": "Group", "id": "pair", "type": "person", "actual": True, "member": [
        {"entity": {"reference": "Patient/m165-controlled"}}, {"entity": {"reference": "Patient/m165-uncontrolled"}},
        {"entity": {"reference": "Patient/m165-esrd"}, "inactive": True}]}
    assert client.put("/fhir/Group/pair", json=group, headers=FHIR_JSON).status_code == 201
    report = _evaluate(client, "cms165", subject="Group/pair")
    assert report["type"] == "summary"
    assert _counts(report["group"][0]) == {"initial-population": 2, "denominator": 2, "denominator-exclusion": 0,
                                           "numerator": 1}
    assert report["group"][0]["measureScore"]["value"] == 0.5
    by_pcp = _evaluate(client, "cms165", practitioner="Practitioner/dr-out")
    assert _counts(by_pcp["group"][0])["initial-population"] == 1
    assert len(cases) == 14


def test_post_with_parameters_and_partial_period_dates(client):
    _load(client, "cms50")
    response = client.post("/fhir/Measure/cms50/$evaluate-measure", headers=FHIR_JSON, json={
        "resourceType": "Parameters", "parameter": [{"name": "periodStart", "valueDate": "2026"},
                                                    {"name": "periodEnd", "valueDate": "2026-12"},
                                                    {"name": "reportType", "valueCode": "summary"}]})
    assert response.status_code == 200, response.text
    assert response.json()["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert _counts(response.json()["group"][0]) == {"initial-population": 4, "denominator": 4, "numerator": 1}


def test_a_stored_measure_replaces_the_shipped_one_and_one_without_logic_is_refused(client):
    shipped = client.get("/fhir/Measure/cms50/$evaluate-measure", params=PERIOD)
    assert shipped.status_code == 200
    own = {"resourceType": "Measure", "id": "cqlonly", "url": "http://example.org/Measure/cqlonly", "status": "active"}
    assert client.put("/fhir/Measure/cqlonly", json=own, headers=FHIR_JSON).status_code == 201
    refused = client.get("/fhir/Measure/cqlonly/$evaluate-measure", params=PERIOD)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["code"] == "not-supported"


@pytest.mark.parametrize(("params", "status", "where"), [
    ({"periodEnd": "2026-12-31"}, 400, "periodStart"),
    ({"periodStart": "2026-01-01"}, 400, "periodEnd"),
    ({**PERIOD, "periodStart": "2026-13-01"}, 400, "periodStart"),
    ({**PERIOD, "periodStart": "01/01/2026"}, 400, "periodStart"),
    ({"periodStart": "2026-06-01", "periodEnd": "2026-05-31"}, 400, "periodEnd"),
    ({**PERIOD, "reportType": "everything"}, 400, "reportType"),
    ({**PERIOD, "reportType": "subject"}, 400, "subject"),
    ({**PERIOD, "reportType": "individual", "subject": "Group/pair"}, 400, "subject"),
    ({**PERIOD, "subject": "Organization/in-program"}, 400, "subject"),
    ({**PERIOD, "subject": "Patient/nobody"}, 422, "subject"),
    ({**PERIOD, "practice": "Organization/nowhere"}, 422, "practice"),
    ({**PERIOD, "lastReceivedOn": "2026-12-01"}, 422, "lastReceivedOn"),
    ({**PERIOD, "measure": "cms122"}, 400, "measure"),
])
def test_refusals_name_the_input(client, params, status, where):
    load(client)
    response = client.get("/fhir/Measure/cms122/$evaluate-measure", params=params)
    assert response.status_code == status, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert where in outcome["issue"][0].get("expression", []), outcome


def test_unknown_measure_is_404(client):
    response = client.get("/fhir/Measure/cms999/$evaluate-measure", params=PERIOD)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_the_capability_statement_lists_the_operation(client):
    measure = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == "Measure")
    assert {"name": "evaluate-measure",
            "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure"} in measure["operation"]


def _errors(outcome: dict) -> list[dict]:
    return [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]


@pytest.mark.parametrize("measure", sorted(p.stem.removeprefix("Measure-") for p in
                                           (DATA.parents[2] / "profiles").glob("Measure-*.json")))
def test_shipped_measures_and_their_reports_are_valid_r4(client, measure):
    shipped = json.loads((DATA.parents[2] / "profiles" / f"Measure-{measure}.json").read_text())
    checked = client.post("/fhir/Measure/$validate", json=shipped, headers=FHIR_JSON)
    assert checked.status_code == 200 and _errors(checked.json()) == [], checked.text
    load(client)
    for report_type in ("population", "subject-list"):  # over the program world: groups with and without strata
        report = _evaluate(client, measure, reportType=report_type)
        checked = client.post("/fhir/MeasureReport/$validate", json=report, headers=FHIR_JSON)
        assert checked.status_code == 200 and _errors(checked.json()) == [], checked.text
