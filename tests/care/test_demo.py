"""The demo data generator: deterministic, valid R4, internally linked, and clinically useful."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from fhir_server.care.demo import DEMO_TAG, PARTICIPATION_URL, REFERENCE_DATE, catalog, demo_bundle
from fhir_server.fhir.models import ID_PATTERN, validate_resource


@pytest.fixture(scope="module")
def bundle() -> dict:
    return demo_bundle(members=50, seed=7)


def _resources(bundle: dict, resource_type: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def _references(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            if key == "reference" and isinstance(child, str):
                yield child
            else:
                yield from _references(child)
    elif isinstance(value, list):
        for child in value:
            yield from _references(child)


def _canonical(bundle: dict) -> str:
    return json.dumps(bundle, sort_keys=True)


def test_same_seed_gives_byte_identical_json() -> None:
    assert _canonical(demo_bundle(12, seed=3)) == _canonical(demo_bundle(12, seed=3))


def test_output_does_not_depend_on_the_process_hash_seed() -> None:
    # string hashing is salted per process; a set iterated anywhere would show up here
    script = (
        "import hashlib, json; from fhir_server.care.demo import demo_bundle; "
        "print(hashlib.sha256(json.dumps(demo_bundle(12, seed=3), sort_keys=True).encode()).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                       env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert digests == {hashlib.sha256(_canonical(demo_bundle(12, seed=3)).encode()).hexdigest()}


def test_different_seeds_differ() -> None:
    assert _canonical(demo_bundle(12, seed=3)) != _canonical(demo_bundle(12, seed=4))


@pytest.mark.parametrize("members", [0, 1, 13])
def test_member_count_is_honoured(members: int) -> None:
    assert len(_resources(demo_bundle(members), "Patient")) == members


def test_negative_member_count_is_refused() -> None:
    with pytest.raises(ValueError):
        demo_bundle(-1)


def test_every_resource_is_valid_r4(bundle: dict) -> None:
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        validate_resource(entry["resource"])


def test_entries_are_tagged_idempotent_puts(bundle: dict) -> None:
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert ID_PATTERN.match(resource["id"])
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert re.fullmatch(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            entry["fullUrl"])
        assert resource["meta"]["tag"] == [DEMO_TAG]


def test_ids_and_full_urls_are_unique(bundle: dict) -> None:
    keys = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"]]
    assert len(keys) == len(set(keys))
    assert len({e["fullUrl"] for e in bundle["entry"]}) == len(bundle["entry"])


def test_every_reference_points_at_an_entry(bundle: dict) -> None:
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    references = list(_references([e["resource"] for e in bundle["entry"]]))
    assert references
    assert all(reference in full_urls for reference in references)


def test_references_point_at_the_right_types(bundle: dict) -> None:
    type_of = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    for request in _resources(bundle, "MedicationRequest"):
        assert type_of[request["requester"]["reference"]] == "PractitionerRole"
        assert {type_of[r["reference"]] for r in request["reasonReference"]} == {"Condition"}
    for patient in _resources(bundle, "Patient"):
        assert type_of[patient["generalPractitioner"][0]["reference"]] == "PractitionerRole"
    for observation in _resources(bundle, "Observation"):
        assert type_of[observation["encounter"]["reference"]] == "Encounter"


def test_practices_participating_and_not(bundle: dict) -> None:
    statuses = collections.Counter()
    for organization in _resources(bundle, "Organization"):
        kinds = {c["code"] for t in organization["type"] for c in t["coding"]}
        if "prov" in kinds:
            [participation] = [x for x in organization["extension"] if x["url"] == PARTICIPATION_URL]
            statuses[next(x["valueCode"] for x in participation["extension"] if x["url"] == "status")] += 1
        else:
            assert kinds == {"pay"}
    assert statuses["agreed"] > statuses["declined"] > 0


def test_npis_are_ten_digits_and_pass_the_luhn_check(bundle: dict) -> None:
    npis = [i["value"] for r in bundle["entry"] for i in r["resource"].get("identifier", [])
            if i["system"] == "http://hl7.org/fhir/sid/us-npi"]
    assert len(npis) == len(set(npis)) > len(_resources(bundle, "Practitioner"))
    for npi in npis:
        assert re.fullmatch(r"[12]\d{9}", npi)
        digits = [int(d) for d in "80840" + npi]
        # standard Luhn validation: double every second digit from the right
        total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
        assert total % 10 == 0


def test_coordinators_are_nurses_at_the_plan(bundle: dict) -> None:
    type_of = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    coordinator_roles = [r for r in _resources(bundle, "PractitionerRole")
                         if r["code"][0]["coding"][0]["system"] == "http://snomed.info/sct"]
    assert len(coordinator_roles) == 5
    for role in coordinator_roles:
        assert type_of[role["organization"]["reference"]]["type"][0]["coding"][0]["code"] == "pay"
        nurse = type_of[role["practitioner"]["reference"]]
        assert nurse["qualification"][0]["code"]["coding"][0]["code"] == "RN"


def test_some_members_are_out_of_control_or_on_many_medicines(bundle: dict) -> None:
    medicines = collections.Counter(r["subject"]["reference"] for r in _resources(bundle, "MedicationRequest")
                                    if r["status"] == "active")
    high_a1c, high_bp = set(), set()
    for observation in _resources(bundle, "Observation"):
        code = observation["code"]["coding"][0]["code"]
        if code == "4548-4" and observation["valueQuantity"]["value"] > 9:
            high_a1c.add(observation["subject"]["reference"])
        if code == "85354-9":
            systolic, diastolic = (c["valueQuantity"]["value"] for c in observation["component"])
            assert diastolic < systolic
            if systolic >= 140 or diastolic >= 90:
                high_bp.add(observation["subject"]["reference"])
    assert high_a1c and high_bp
    assert any(count >= 5 for count in medicines.values())


def test_every_diabetic_lab_belongs_to_a_diabetic(bundle: dict) -> None:
    diabetics = {c["subject"]["reference"] for c in _resources(bundle, "Condition")
                 if c["code"]["coding"][0]["code"] == "44054006"}
    a1c_subjects = {o["subject"]["reference"] for o in _resources(bundle, "Observation")
                    if o["code"]["coding"][0]["code"] == "4548-4"}
    assert a1c_subjects and a1c_subjects <= diabetics


def test_nothing_happens_after_the_reference_date(bundle: dict) -> None:
    limit = REFERENCE_DATE.isoformat()
    for resource in (e["resource"] for e in bundle["entry"]):
        for field in ("birthDate", "onsetDateTime", "authoredOn", "effectiveDateTime"):
            if field in resource:
                assert resource[field][:10] < limit
        if resource["resourceType"] == "Encounter":
            assert resource["period"]["start"] < resource["period"]["end"] < limit


def test_catalog_is_self_consistent() -> None:
    data = catalog()
    assert data["sources"]
    conditions = {c["key"] for c in data["conditions"]}
    for medication in data["medications"]:
        assert set(medication["treats"]) <= conditions
        assert medication["rxnorm"]["code"].isdigit()
    for observation in data["observations"]:
        assert set(observation["for_conditions"]) <= conditions
        assert re.fullmatch(r"\d{1,5}-\d", observation["loinc"]["code"])
    # every condition can be treated by something, so every member with a condition gets orders
    assert conditions == {key for m in data["medications"] for key in m["treats"]}


def test_the_members_of_practices_in_the_program_are_enrolled_with_a_coordinator() -> None:
    bundle = demo_bundle(30)
    coordinators = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["id"].startswith("demo-coordinator-")
                    and e["resource"]["resourceType"] == "Practitioner"}
    urls = {e["resource"]["resourceType"] + "/" + e["resource"]["id"]: e["fullUrl"] for e in bundle["entry"]}
    agreed = {urls["Organization/" + o["id"]] for o in _resources(bundle, "Organization")
              if any(p.get("valueCode") == "agreed" for x in o.get("extension", []) for p in x["extension"])}
    practice_of = {urls["PractitionerRole/" + r["id"]]: r["organization"]["reference"]
                   for r in _resources(bundle, "PractitionerRole")}
    patients = {urls["Patient/" + p["id"]] for p in _resources(bundle, "Patient")
                if practice_of[p["generalPractitioner"][0]["reference"]] in agreed}
    episodes = _resources(bundle, "EpisodeOfCare")
    assert 0 < len(patients) < 30
    assert {e["patient"]["reference"] for e in episodes} == patients
    assert all(e["status"] == "active" and e["careManager"]["reference"] in coordinators for e in episodes)
    assert {e["careManager"]["reference"] for e in episodes} == coordinators  # each has members


def test_enrolled_members_have_the_programs_work_so_far(bundle: dict) -> None:
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    plans = {p["subject"]["reference"]: p for p in _resources(bundle, "CarePlan")}
    calls = collections.defaultdict(list)
    for call in _resources(bundle, "Communication"):
        calls[call["subject"]["reference"]].append(call)
    steps = collections.defaultdict(list)
    for provenance in _resources(bundle, "Provenance"):
        steps[provenance["target"][0]["reference"]].append(provenance["activity"]["coding"][0]["code"])
    plan_url = {urls[u]["id"]: u for u in urls if urls[u]["resourceType"] == "CarePlan"}
    episodes = _resources(bundle, "EpisodeOfCare")
    assert episodes and len(plans) == len(episodes)
    for episode in episodes:
        member, start = episode["patient"]["reference"], episode["period"]["start"]
        assert [c["statusReason"]["coding"][0]["code"] for c in calls[member]][-1] == "reached"
        assert all(c["sent"][:10] < start and c["sender"] == episode["careManager"] for c in calls[member])
        plan = plans[member]
        assert plan["period"]["start"] > start and plan["goal"]
        assert {urls[g["reference"]]["resourceType"] for g in plan["goal"]} == {"Goal"}
        assert steps[plan_url[plan["id"]]][0] == "plan-approval"
        assert set(steps[plan_url[plan["id"]]][1:]) <= {"plan-review"}
        assert [n["text"] for n in plan["note"]][0] == "Approved"
    achieved = [g for g in _resources(bundle, "Goal") if g["achievementStatus"]["coding"][0]["code"] == "achieved"]
    assert 0 < len(achieved) < len(_resources(bundle, "Goal"))
