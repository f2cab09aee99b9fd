"""The brute-force search reference (tests/search_reference.py) on tiny hand-made resources, one group per
parameter type of docs/search.md. These run without the server."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from search_reference import Reference, matches, parameters_for, search, split_unescaped

BASE = "http://testserver/fhir"
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def match(resource: dict, name: str, value: str) -> bool:
    code, _, modifier = name.partition(":")
    definition = parameters_for(resource["resourceType"])[code]
    return matches(resource, definition, modifier or None, value, base_url=BASE, now=NOW)


PATIENT = {
    "resourceType": "Patient", "id": "p1", "active": True, "gender": "female", "birthDate": "1970-03",
    "meta": {"lastUpdated": "2024-06-01T10:20:30.123+02:00", "tag": [{"system": "http://t", "code": "vip"}],
             "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|3.1.1"],
             "source": "http://ehr.example.org/feeds/adt"},
    "identifier": [{"system": "http://hospital/mrn", "value": "MRN-1",
                    "type": {"text": "Medical record", "coding": [{"system": "http://v2", "code": "MR"}]}},
                   {"value": "no-system"}],
    "name": [{"family": "Müller-Lüdenscheidt", "given": ["Renée", "Zoë"], "prefix": ["Dr."], "text": "Dr Renée"}],
    "telecom": [{"system": "phone", "value": "555-0100"}, {"system": "email", "value": "r@example.org"}],
    "address": [{"line": ["1 Main St, Apt 2"], "city": "Springfield", "postalCode": "01101", "country": "US"}],
    "generalPractitioner": [{"reference": "Practitioner/dr1"}],
    "managingOrganization": {"reference": "http://testserver/fhir/Organization/org1"},
    "link": [{"other": {"reference": "http://elsewhere.org/fhir/Patient/x9"}, "type": "seealso"}],
}


class TestString:
    def test_prefix_ignores_case_and_accents(self):
        assert match(PATIENT, "family", "muller")
        assert match(PATIENT, "family", "MÜLLER-L")
        assert not match(PATIENT, "family", "ller")
        assert match(PATIENT, "given", "zoe")
        assert match(PATIENT, "given", "renee")

    def test_exact_and_contains(self):
        assert match(PATIENT, "family:exact", "Müller-Lüdenscheidt")
        assert not match(PATIENT, "family:exact", "Muller-Ludenscheidt")
        assert not match(PATIENT, "family:exact", "Müller")
        assert match(PATIENT, "family:contains", "LUDEN")
        assert not match(PATIENT, "family:contains", "xyz")

    def test_human_name_and_address_parts(self):
        for value in ("dr.", "renée", "zoë", "müller", "dr ren"):
            assert match(PATIENT, "name", value), value
        for value in ("1 main", "spring", "0110", "us"):
            assert match(PATIENT, "address", value), value
        assert match(PATIENT, "address-city", "SPRING")
        assert not match(PATIENT, "address-city", "01101")

    def test_escaped_comma_is_part_of_the_value_and_comma_is_or(self):
        assert match(PATIENT, "address", r"1 Main St\, Apt")
        assert not match(PATIENT, "address", r"1 Main St\, Flat")
        assert match(PATIENT, "family", "nobody,mül")

    def test_missing(self):
        assert match(PATIENT, "address-state:missing", "true")
        assert match(PATIENT, "address-city:missing", "false")


class TestToken:
    def test_system_and_code_forms(self):
        assert match(PATIENT, "identifier", "http://hospital/mrn|MRN-1")
        assert match(PATIENT, "identifier", "MRN-1")
        assert match(PATIENT, "identifier", "http://hospital/mrn|")
        assert not match(PATIENT, "identifier", "|MRN-1")
        assert match(PATIENT, "identifier", "|no-system")
        assert not match(PATIENT, "identifier", "http://other|MRN-1")
        assert not match(PATIENT, "identifier", "mrn-1")  # codes are case-sensitive

    def test_code_boolean_and_contact_point(self):
        assert match(PATIENT, "gender", "female") and not match(PATIENT, "gender", "male")
        # a code carries the CodeSystem of its required binding (docs/search.md)
        assert match(PATIENT, "gender", "http://hl7.org/fhir/administrative-gender|female")
        assert not match(PATIENT, "gender", "|female")
        assert match(PATIENT, "address-use:missing", "true")
        assert match({**PATIENT, "address": [{"use": "home"}]}, "address-use", "http://hl7.org/fhir/address-use|home")
        assert match(PATIENT, "active", "true") and not match(PATIENT, "active", "false")
        assert match(PATIENT, "phone", "555-0100") and not match(PATIENT, "phone", "r@example.org")
        assert match(PATIENT, "email", "r@example.org")
        assert match(PATIENT, "telecom", "|555-0100")
        assert not match(PATIENT, "telecom", "phone|555-0100")  # a ContactPoint has no token system

    def test_deceased_is_a_boolean_expression(self):
        assert match(PATIENT, "deceased", "false")
        assert match({**PATIENT, "deceasedDateTime": "2020-01-01"}, "deceased", "true")
        assert match({**PATIENT, "deceasedBoolean": True}, "deceased", "true")

    def test_not_includes_resources_without_a_value(self):
        assert not match(PATIENT, "gender:not", "female")
        assert match(PATIENT, "gender:not", "male")
        assert match({"resourceType": "Patient", "id": "x"}, "gender:not", "female")
        assert not match(PATIENT, "gender:not", "male,female")

    def test_text_and_of_type(self):
        assert match(PATIENT, "identifier:text", "medical")
        assert not match(PATIENT, "identifier:text", "MRN")
        assert match(PATIENT, "identifier:of-type", "http://v2|MR|MRN-1")
        assert not match(PATIENT, "identifier:of-type", "http://v2|MR|no-system")
        condition = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
                     "code": {"text": "Type 2 diabetes",
                              "coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                                          "display": "Diabetes mellitus type 2"}]}}
        assert match(condition, "code:text", "type 2")
        assert match(condition, "code:text", "diabetes mell")
        assert not match(condition, "code:text", "mellitus")
        assert match(condition, "code", "http://snomed.info/sct|44054006")

    def test_missing_and_meta(self):
        assert match(PATIENT, "language:missing", "true")
        assert match(PATIENT, "gender:missing", "false")
        assert match(PATIENT, "_tag", "http://t|vip")
        assert match(PATIENT, "_security:missing", "true")
        assert match(PATIENT, "_id", "p1") and match(PATIENT, "_id", "p2,p1") and not match(PATIENT, "_id", "p")


class TestDate:
    def test_stored_date_is_a_range_by_precision(self):
        assert match(PATIENT, "birthdate", "1970-03")
        assert match(PATIENT, "birthdate", "1970")
        assert not match(PATIENT, "birthdate", "1970-03-10")  # March does not lie within one day
        assert match(PATIENT, "birthdate", "ne1970-03-10")
        assert match(PATIENT, "birthdate", "ge1970-03-10") and match(PATIENT, "birthdate", "le1970-03-10")
        assert not match(PATIENT, "birthdate", "gt1970-03") and match(PATIENT, "birthdate", "ge1970-03")
        assert match(PATIENT, "birthdate", "gt1970-02-28") and not match(PATIENT, "birthdate", "gt1970-04-01")
        assert match(PATIENT, "birthdate", "lt1970-03-02") and not match(PATIENT, "birthdate", "lt1970-03-01")
        assert match(PATIENT, "birthdate", "sa1970-02-28") and not match(PATIENT, "birthdate", "sa1970-03-01")
        assert match(PATIENT, "birthdate", "eb1970-04-01") and not match(PATIENT, "birthdate", "eb1970-03-31")

    def test_zones_are_converted_to_utc(self):
        # 2024-06-01T10:20:30.123+02:00 is 08:20:30.123Z
        assert match(PATIENT, "_lastUpdated", "2024-06-01")
        assert match(PATIENT, "_lastUpdated", "eq2024-06-01T08:20:30Z")
        assert match(PATIENT, "_lastUpdated", "lt2024-06-01T08:20:31Z")
        assert not match(PATIENT, "_lastUpdated", "lt2024-06-01T08:20:30Z")
        assert not match(PATIENT, "_lastUpdated", "gt2024-06-01T10:20:30+02:00")  # lies within that second
        assert match(PATIENT, "_lastUpdated", "le2024-06-01T10:20:30+02:00")
        assert match(PATIENT, "_lastUpdated", "gt2024-06-01T10:20:29+02:00")
        assert not match(PATIENT, "_lastUpdated", "ge2024-06-01T08:20:31Z")
        assert match(PATIENT, "_lastUpdated", "eq2024-06-01T04:20:30.123-04:00")

    def test_period_timing_and_choice(self):
        encounter = {"resourceType": "Encounter", "id": "e", "status": "finished",
                     "class": {"code": "AMB"}, "period": {"start": "2020-01-10T09:00:00Z"}}
        assert match(encounter, "date", "gt2021-01-01")  # an open end goes on for ever
        assert not match(encounter, "date", "eq2020-01-10")
        assert match(encounter, "date", "ge2020-01-10") and not match(encounter, "date", "lt2020-01-10")
        closed = {**encounter, "period": {"start": "2020-01-10", "end": "2020-01-12"}}
        assert match(closed, "date", "eq2020-01") and match(closed, "date", "le2020-01-12")
        assert not match(closed, "date", "gt2020-01-12") and match(closed, "date", "gt2020-01-11")
        request = {"resourceType": "MedicationRequest", "id": "m", "status": "active", "intent": "order",
                   "subject": {"reference": "Patient/p1"}, "medicationCodeableConcept": {"text": "x"},
                   "dosageInstruction": [{"timing": {"event": ["2021-05-01", "2021-06-01T10:00:00Z"]}}]}
        assert match(request, "date", "2021-05-01") and match(request, "date", "2021-06-01")
        assert not match(request, "date", "2021-05-15")
        observation = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
                       "effectivePeriod": {"start": "2022-02-02", "end": "2022-02-03"}}
        assert match(observation, "date", "eq2022-02")
        assert not match(observation, "value-date:missing", "false")

    def test_approximately(self):
        # S = 2014: 10 years before NOW, so widened by about a year on each side.
        assert match(PATIENT, "birthdate", "ap1970-03-20")
        assert match({**PATIENT, "birthDate": "2013-06-01"}, "birthdate", "ap2014")
        assert not match({**PATIENT, "birthDate": "2011-06-01"}, "birthdate", "ap2014")

    def test_malformed_date_is_an_error(self):
        with pytest.raises(ValueError):
            match(PATIENT, "birthdate", "1970-3")


OBSERVATION = {
    "resourceType": "Observation", "id": "bp", "status": "final",
    "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "effectiveDateTime": "2023-04-05T10:00:00Z",
    "valueQuantity": {"value": Decimal("100.0"), "unit": "mmHg", "system": "http://unitsofmeasure.org",
                      "code": "mm[Hg]"},
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 142, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 91, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    ],
}


class TestNumberAndQuantity:
    def test_implicit_precision(self):
        assert match(OBSERVATION, "value-quantity", "100")
        assert match(OBSERVATION, "value-quantity", "100.0")
        assert match(OBSERVATION, "value-quantity", "100.00")
        assert not match(OBSERVATION, "value-quantity", "100.04")
        nearby = {**OBSERVATION, "valueQuantity": {"value": Decimal("100.04")}}
        assert match(nearby, "value-quantity", "100.0") and not match(nearby, "value-quantity", "99.9")
        assert match({**OBSERVATION, "valueQuantity": {"value": 104}}, "value-quantity", "1.0e2")  # [95, 105)
        assert match(OBSERVATION, "value-quantity", "ne101")

    def test_comparisons_are_exact(self):
        assert match(OBSERVATION, "value-quantity", "ge100") and not match(OBSERVATION, "value-quantity", "gt100")
        assert match(OBSERVATION, "value-quantity", "lt100.01") and match(OBSERVATION, "value-quantity", "le100")
        assert match(OBSERVATION, "value-quantity", "sa99.9") and match(OBSERVATION, "value-quantity", "eb101")
        assert match(OBSERVATION, "value-quantity", "ap109") and not match(OBSERVATION, "value-quantity", "ap89")

    def test_units(self):
        assert match(OBSERVATION, "value-quantity", "100|http://unitsofmeasure.org|mm[Hg]")
        assert not match(OBSERVATION, "value-quantity", "100|http://other|mm[Hg]")
        assert match(OBSERVATION, "value-quantity", "100||mm[Hg]") and match(OBSERVATION, "value-quantity", "100||mmHg")
        assert not match(OBSERVATION, "value-quantity", "100||kPa")
        assert match(OBSERVATION, "component-value-quantity", "gt141||mm[Hg]")
        assert match(OBSERVATION, "combo-value-quantity", "91") and match(OBSERVATION, "combo-value-quantity", "100")

    def test_range_must_lie_inside_for_eq(self):
        condition = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
                     "onsetRange": {"low": {"value": 40, "unit": "a", "system": "http://unitsofmeasure.org",
                                            "code": "a"},
                                    "high": {"value": 41, "unit": "a", "system": "http://unitsofmeasure.org",
                                             "code": "a"}}}
        assert not match(condition, "onset-age", "40")
        assert match(condition, "onset-age", "4e1")  # [35, 45)
        assert match(condition, "onset-age", "gt40.5") and match(condition, "onset-age", "lt40.5")
        assert match({**condition, "onsetRange": None, "onsetAge": {"value": 3, "code": "a"}}, "onset-age", "3||a")


class TestReference:
    def test_forms(self):
        assert match(OBSERVATION, "subject", "Patient/p1")
        assert match(OBSERVATION, "subject", "p1")
        assert match(OBSERVATION, "subject:Patient", "p1")
        assert not match(OBSERVATION, "subject:Group", "p1")
        assert match(OBSERVATION, "subject", f"{BASE}/Patient/p1")
        assert not match(OBSERVATION, "subject", "http://elsewhere.org/fhir/Patient/p1")
        assert not match(OBSERVATION, "subject", "Group/p1")
        assert match(OBSERVATION, "patient", "Patient/p1")

    def test_absolute_references(self):
        assert match(PATIENT, "organization", "Organization/org1")
        assert match(PATIENT, "organization", "org1")
        assert match(PATIENT, "link", "http://elsewhere.org/fhir/Patient/x9")
        assert not match(PATIENT, "link", "Patient/x9")
        assert not match(PATIENT, "link", "x9")

    def test_resolve_filter_keeps_only_the_named_type(self):
        on_group = {**OBSERVATION, "subject": {"reference": "Group/g1"}}
        assert match(on_group, "subject", "Group/g1")
        assert not match(on_group, "patient", "g1")
        assert match(on_group, "patient:missing", "true") and match(OBSERVATION, "patient:missing", "false")

    def test_identifier_and_missing(self):
        by_identifier = {**OBSERVATION, "subject": {"identifier": {"system": "http://mrn", "value": "7"}}}
        assert match(by_identifier, "subject:identifier", "http://mrn|7")
        assert not match(by_identifier, "subject:identifier", "http://mrn|8")
        assert not match(by_identifier, "subject", "7")
        assert match(by_identifier, "subject:missing", "false")
        assert match({**OBSERVATION, "subject": {"display": "someone"}}, "subject:missing", "true")

    def test_canonical(self):
        plan = {"resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
                "subject": {"reference": "Patient/p1"},
                "instantiatesCanonical": ["http://example.org/PlanDefinition/kd|2.0"]}
        assert match(plan, "instantiates-canonical", "http://example.org/PlanDefinition/kd")
        assert match(plan, "instantiates-canonical", "http://example.org/PlanDefinition/kd|2.0")
        assert not match(plan, "instantiates-canonical", "http://example.org/PlanDefinition/kd|1.0")


class TestUri:
    def test_exact_below_above(self):
        assert match(PATIENT, "_source", "http://ehr.example.org/feeds/adt")
        assert not match(PATIENT, "_source", "http://ehr.example.org/feeds")
        assert match(PATIENT, "_source:below", "http://ehr.example.org/feeds")
        assert not match(PATIENT, "_source:below", "http://ehr.example.org/fee")
        assert match(PATIENT, "_source:above", "http://ehr.example.org/feeds/adt/2024/06")
        assert not match(PATIENT, "_source:above", "http://ehr.example.org/feeds/adtx")
        assert match(PATIENT, "_profile", "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|3.1.1")
        assert match(PATIENT, "_profile:missing", "false")


class TestComposite:
    def test_components_match_on_the_same_element(self):
        assert match(OBSERVATION, "component-code-value-quantity", "http://loinc.org|8480-6$gt140")
        assert not match(OBSERVATION, "component-code-value-quantity", "http://loinc.org|8462-4$gt140")
        assert match(OBSERVATION, "component-code-value-quantity", "8462-4$91||mm[Hg]")
        assert match(OBSERVATION, "code-value-quantity", "http://loinc.org|85354-9$100")
        assert not match(OBSERVATION, "code-value-quantity", "http://loinc.org|8480-6$142")
        assert match(OBSERVATION, "combo-code-value-quantity", "8480-6$142,85354-9$1")
        assert match(OBSERVATION, "combo-code-value-quantity", "85354-9$100")

    def test_concept_date_and_string(self):
        observation = {"resourceType": "Observation", "id": "o", "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org", "code": "X"}]},
                       "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "Y"}]},
                       "component": [{"code": {"coding": [{"code": "C"}]}, "valueDateTime": "2020-02-02"}]}
        assert match(observation, "code-value-concept", "http://loinc.org|X$http://snomed.info/sct|Y")
        assert not match(observation, "code-value-concept", "X$Z")
        assert not match(observation, "code-value-date", "X$2020")
        with_date = {**observation, "valueCodeableConcept": None, "valueDateTime": "2020-02-02T10:00:00Z"}
        assert match(with_date, "code-value-date", "X$2020-02")
        with_string = {**observation, "valueCodeableConcept": None, "valueString": "Positive result"}
        assert match(with_string, "code-value-string", "X$posi")
        assert match(with_string, "value-string", "positive re")

    def test_wrong_number_of_parts_is_an_error(self):
        with pytest.raises(ValueError):
            match(OBSERVATION, "code-value-quantity", "85354-9")


def test_search_ands_parameters_and_ors_values():
    others = [{**PATIENT, "id": "p2", "gender": "male"}, {**PATIENT, "id": "p3", "active": False}]
    resources = [PATIENT, *others, OBSERVATION]
    assert search(resources, "Patient", [("gender", "female")], base_url=BASE) == {"p1", "p3"}
    assert search(resources, "Patient", [("gender", "female"), ("active", "true")], base_url=BASE) == {"p1"}
    assert search(resources, "Patient", [("gender", "male,female"), ("_count", "1")], base_url=BASE) == {
        "p1", "p2", "p3"}
    assert search(resources, "Patient", [("gender", "")], base_url=BASE) == {"p1", "p2", "p3"}
    assert search(resources, "Observation", [("subject", "Patient/p1")], base_url=BASE) == {"bp"}
    reference = Reference(resources, base_url=BASE)
    assert reference.search("Patient", [("family", "mül"), ("_id", "p2,p3")]) == {"p2", "p3"}
    with pytest.raises(NotImplementedError):
        reference.search("Patient", [("_content", "x")])
    with pytest.raises(ValueError):
        reference.search("Patient", [("no-such-parameter", "x")])


def test_escaping():
    assert split_unescaped(r"a\,b,c", ",") == (r"a\,b", "c")
    assert split_unescaped(r"s\|x|c|d", "|", 1) == (r"s\|x", "c|d")
    coded = {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
             "code": {"coding": [{"system": "http://s|x", "code": "a,b$c"}]}}
    assert match(coded, "code", r"http://s\|x|a\,b\$c")
    assert match(coded, "code", r"a\,b\$c")
    assert not match(coded, "code", "a,b")
