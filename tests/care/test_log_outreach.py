"""Patient/[id]/$log-outreach (profiles/OperationDefinition-log-outreach.json), over HTTP on SQLite and
PostgreSQL: the call as a cw-outreach-communication, the member's cw-outreach-task, callbacks as
cw-communication-requests, unable-to-reach, and refusals that write nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fhirjson import FHIR_JSON, expressions

from fhir_server.config import SettingsError, load_settings

BASE = "https://careweave.example.org/fhir/"
OUTCOME_SYSTEM = BASE + "CodeSystem/cw-outreach-outcome"
PROGRAM_SYSTEM = BASE + "CodeSystem/cw-program"
OUTREACH_CALL = BASE + "StructureDefinition/outreach-call"
OPERATION = Path(__file__).resolve().parents[2] / "profiles" / "OperationDefinition-log-outreach.json"
COORDINATOR = "Practitioner/rn1"
WRITTEN = ("Communication", "Task", "CommunicationRequest")
_VALUE = {"party": "valueCode", "outcome": "valueCode", "note": "valueString", "durationSeconds": "valueInteger",
          "callbackAt": "valueDateTime", "coordinator": "valueReference", "contact": "valueReference"}


def _member(id: str, gp: str | None) -> dict:
    """A member meeting cw-member-patient."""
    patient = {"resourceType": "Patient", "id": id,
               "identifier": [{"use": "usual", "type": {"coding": [
                   {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]},
                   "system": BASE + "sid/member-id", "value": f"CW-{id}"}],
               "name": [{"family": "Okafor", "given": ["Grace"]}], "gender": "female", "birthDate": "1953-04-18"}
    if gp:
        patient["generalPractitioner"] = [{"reference": gp}]
    return patient


def _practitioner(id: str, npi: str) -> dict:
    """A practitioner meeting cw-practitioner."""
    return {"resourceType": "Practitioner", "id": id, "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi",
                                                                       "value": npi}],
            "name": [{"family": id.upper(), "given": ["Sam"]}]}


SETUP = [
    {"resourceType": "Organization", "id": "practice1", "name": "Elm Street Family Practice"},
    _practitioner("pcp1", "1234567893"),
    {"resourceType": "PractitionerRole", "id": "pcp1", "active": True,
     "practitioner": {"reference": "Practitioner/pcp1"}, "organization": {"reference": "Organization/practice1"},
     "code": [{"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207Q00000X"}]}]},
    _practitioner("rn1", "1234567802"),
    _practitioner("rn2", "1234567810"),
    _practitioner("spec1", "1234567828"),
    _member("m1", "PractitionerRole/pcp1"),
    _member("m2", None),
]


@pytest.fixture
def http(client) -> TestClient:
    """The API over a database holding the practice, its PCP, two coordinators, a specialist and two members
    (m1 with a PCP, m2 without)."""
    _put_all(client, SETUP)
    return client


def _put_all(client, resources: list[dict]) -> None:
    for resource in resources:
        response = client.put(f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code in (200, 201), response.text


def _log(client, patient: str = "m1", **inputs):
    """POST $log-outreach with the inputs as Parameters (coordinator rn1 unless given or None)."""
    inputs.setdefault("coordinator", COORDINATOR)
    parts = [{"name": name, _VALUE[name]: {"reference": value} if _VALUE[name] == "valueReference" else value}
             for name, value in inputs.items() if value is not None]
    return client.post(f"/fhir/Patient/{patient}/$log-outreach",
                       json={"resourceType": "Parameters", "parameter": parts}, headers=FHIR_JSON)


def _logged(client, patient: str = "m1", **inputs) -> dict:
    """The output Parameters of a call that must succeed, as {name: value}."""
    response = _log(client, patient, **inputs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Parameters"
    return {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in body["parameter"]}


def _read(client, reference: str) -> dict:
    response = client.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.text
    return response.json()


def _total(client, resource_type: str) -> int:
    return client.get(f"/fhir/{resource_type}", params={"_summary": "count"}).json()["total"]


def _counts(client) -> dict[str, int]:
    return {t: _total(client, t) for t in WRITTEN}


def _outcome(resource: dict, element: str) -> str:
    return resource[element]["coding"][0]["code"]


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def _past_call(id: str, sent: datetime, party: str = "member", outcome: str = "no-answer") -> dict:
    """A call logged earlier, written as cw-outreach-communication describes it."""
    reached = outcome in ("reached", "declined", "callback-requested")
    return {"resourceType": "Communication", "id": id, "meta": {"profile": [BASE + "StructureDefinition/"
                                                                            "cw-outreach-communication"]},
            "extension": [{"url": OUTREACH_CALL, "extension": [{"url": "direction", "valueCode": "outbound"},
                                                               {"url": "party", "valueCode": party}]}],
            "status": "completed" if reached else "not-done",
            "statusReason": {"coding": [{"system": OUTCOME_SYSTEM, "code": outcome}]},
            "category": [{"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call"}]}],
            "medium": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                                    "code": "PHONE"}]}],
            "subject": {"reference": "Patient/m1"}, "sent": _instant(sent),
            "recipient": [{"reference": "Patient/m1" if party == "member" else "PractitionerRole/pcp1"}],
            "sender": {"reference": COORDINATOR}}


def _assert_meets_claimed_profile(client, resource: dict) -> None:
    """The resource as stored claims its program profile and $validate finds no error in it."""
    assert any(p.startswith(BASE + "StructureDefinition/") for p in resource["meta"]["profile"]), resource
    response = client.post(f"/fhir/{resource['resourceType']}/$validate", json=resource, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    errors = [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")]
    assert errors == [], errors


# -- the call and the Task ------------------------------------------------------------------------------------------


def test_a_member_call_that_reaches_the_member_completes_the_outreach(http):
    out = _logged(http, party="member", outcome="reached", note="Explained the program; she will think it over.",
                  durationSeconds=420)
    assert (out["status"], out["attempts"]) == ("completed", 0) and "communicationRequest" not in out
    call = _read(http, out["communication"]["reference"])
    assert call["status"] == "completed"
    assert call["statusReason"]["coding"] == [{"system": OUTCOME_SYSTEM, "code": "reached", "display": "Reached"}]
    assert call["category"][0]["coding"][0]["code"] == "outreach-call"
    assert call["medium"][0]["coding"][0]["code"] == "PHONE"
    assert call["subject"] == {"reference": "Patient/m1"} and call["recipient"] == [{"reference": "Patient/m1"}]
    assert call["sender"] == {"reference": COORDINATOR} and call["sent"].endswith("Z")
    assert call["payload"] == [{"contentString": "Explained the program; she will think it over."}]
    assert call["partOf"] == [out["task"]]
    assert call["extension"] == [{"url": OUTREACH_CALL, "extension": [
        {"url": "direction", "valueCode": "outbound"}, {"url": "party", "valueCode": "member"},
        {"url": "duration", "valueDuration": {"value": 420, "unit": "s", "system": "http://unitsofmeasure.org",
                                              "code": "s"}}]}]
    task = _read(http, out["task"]["reference"])
    assert (task["status"], task["intent"], _outcome(task, "businessStatus")) == ("completed", "order", "reached")
    assert task["code"]["coding"][0]["code"] == "outreach-call" and task["for"] == {"reference": "Patient/m1"}
    assert task["owner"] == {"reference": COORDINATOR} and task["authoredOn"] == call["sent"]
    assert task["lastModified"] == call["sent"]
    assert task["output"] == [{"type": {"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call",
                                                    "display": "Outreach call"}]},
                               "valueReference": out["communication"]}]
    assert task["note"] == [{"authorReference": {"reference": COORDINATOR}, "time": call["sent"],
                             "text": "member call, reached: Explained the program; she will think it over."}]
    for resource in (call, task):
        _assert_meets_claimed_profile(http, resource)


def test_a_pcp_call_goes_to_the_members_general_practitioner(http):
    out = _logged(http, party="pcp", outcome="voicemail")
    call = _read(http, out["communication"]["reference"])
    assert call["recipient"] == [{"reference": "PractitionerRole/pcp1"}] and "payload" not in call
    assert call["extension"][0]["extension"][1] == {"url": "party", "valueCode": "pcp"}
    assert (call["status"], out["status"], out["attempts"]) == ("not-done", "in-progress", 0)
    _assert_meets_claimed_profile(http, call)


def test_a_specialist_call_goes_to_the_contact(http):
    out = _logged(http, party="specialist", outcome="reached", contact="Practitioner/spec1")
    call = _read(http, out["communication"]["reference"])
    assert call["recipient"] == [{"reference": "Practitioner/spec1"}]
    assert call["extension"][0]["extension"][1] == {"url": "party", "valueCode": "specialist"}
    _assert_meets_claimed_profile(http, call)


@pytest.mark.parametrize(("outcome", "call_status", "task_status"), [
    ("reached", "completed", "completed"),
    ("declined", "completed", "completed"),
    ("callback-requested", "completed", "in-progress"),
    ("no-answer", "not-done", "in-progress"),
    ("voicemail", "not-done", "in-progress"),
    ("wrong-number", "not-done", "in-progress"),
])
def test_each_outcome_sets_the_call_and_the_task(http, outcome, call_status, task_status):
    """Calls that spoke with the party are completed (cw-call-1); reached and declined end the outreach."""
    out = _logged(http, party="member", outcome=outcome)
    call, task = _read(http, out["communication"]["reference"]), _read(http, out["task"]["reference"])
    assert (call["status"], _outcome(call, "statusReason")) == (call_status, outcome)
    assert (task["status"], _outcome(task, "businessStatus"), out["status"]) == (task_status, outcome, task_status)
    assert out["attempts"] == (1 if call_status == "not-done" else 0)
    for resource in (call, task):
        _assert_meets_claimed_profile(http, resource)


def test_the_open_task_gathers_the_calls_until_one_reaches_the_party(http):
    first = _logged(http, party="member", outcome="no-answer")
    second = _logged(http, party="pcp", outcome="voicemail", note="Left a message with the front desk.")
    third = _logged(http, party="member", outcome="voicemail", coordinator=None)  # the Task's owner calls
    assert first["task"] == second["task"] == third["task"]
    assert [o["attempts"] for o in (first, second, third)] == [1, 1, 2]
    last = _logged(http, party="member", outcome="declined", coordinator="Practitioner/rn2")
    assert last["task"] == first["task"] and (last["status"], last["attempts"]) == ("completed", 0)
    task = _read(http, first["task"]["reference"])
    calls = [first, second, third, last]
    assert [o["valueReference"] for o in task["output"]] == [c["communication"] for c in calls]
    assert [n["text"] for n in task["note"]] == ["member call, no answer",
                                                 "pcp call, voicemail left: Left a message with the front desk.",
                                                 "member call, voicemail left", "member call, declined"]
    assert task["owner"] == {"reference": COORDINATOR}  # the one who started; rn2 only made the last call
    assert _outcome(task, "businessStatus") == "declined" and task["meta"]["versionId"] == "4"
    senders = [_read(http, c["communication"]["reference"])["sender"]["reference"] for c in calls]
    assert senders == [COORDINATOR, COORDINATOR, COORDINATOR, "Practitioner/rn2"]
    # The outreach is over: the next call starts a new Task.
    assert _logged(http, party="member", outcome="no-answer")["task"] != first["task"]


def test_a_task_without_a_profile_claim_is_taken_up_and_claims_it(http):
    _put_all(http, [{"resourceType": "Task", "id": "out1", "status": "on-hold", "intent": "order",
                     "statusReason": {"text": "member in hospital until Friday"},
                     "code": {"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call"}]},
                     "for": {"reference": "Patient/m1"}, "authoredOn": "2026-01-20T09:00:00Z",
                     "owner": {"reference": "Practitioner/rn2"}}])
    out = _logged(http, party="member", outcome="voicemail", coordinator=None)
    assert out["task"] == {"reference": "Task/out1"} and out["status"] == "in-progress"
    task = _read(http, "Task/out1")
    assert task["meta"]["profile"] == [BASE + "StructureDefinition/cw-outreach-task"]
    assert "statusReason" not in task  # it explained the hold, which is over
    assert _read(http, out["communication"]["reference"])["sender"] == {"reference": "Practitioner/rn2"}
    _assert_meets_claimed_profile(http, task)


# -- callbacks ------------------------------------------------------------------------------------------------------


def test_a_callback_is_scheduled_and_replaced(http):
    first_at = _instant(_ago(-2))
    first = _logged(http, party="member", outcome="callback-requested", callbackAt=first_at,
                    note="Call after her dialysis session.")
    request = _read(http, first["communicationRequest"]["reference"])
    assert (request["status"], request["occurrenceDateTime"]) == ("active", first_at)
    assert request["subject"] == {"reference": "Patient/m1"} and request["recipient"] == [{"reference": "Patient/m1"}]
    assert request["requester"] == {"reference": COORDINATOR} and request["reasonCode"][0]["text"] == "callback"
    assert request["payload"] == [{"contentString": "Call back: Call after her dialysis session."}]
    task = _read(http, first["task"]["reference"])
    assert task["focus"] == first["communicationRequest"]
    assert task["restriction"]["period"]["start"] == first_at and task["status"] == "in-progress"
    _assert_meets_claimed_profile(http, request)

    second_at = "2099-03-01T10:30:00-05:00"
    second = _logged(http, party="member", outcome="no-answer", callbackAt=second_at)
    assert second["task"] == first["task"] and second["communicationRequest"] != first["communicationRequest"]
    assert _read(http, first["communicationRequest"]["reference"])["status"] == "completed"
    replacement = _read(http, second["communicationRequest"]["reference"])
    assert replacement["status"] == "active" and replacement["replaces"] == [first["communicationRequest"]]
    task = _read(http, first["task"]["reference"])
    assert task["focus"] == second["communicationRequest"] and task["restriction"]["period"]["start"] == second_at
    for resource in (replacement, task, _read(http, first["communicationRequest"]["reference"])):
        _assert_meets_claimed_profile(http, resource)

    done = _logged(http, party="member", outcome="reached")
    assert "communicationRequest" not in done and done["status"] == "completed"
    assert _read(http, second["communicationRequest"]["reference"])["status"] == "completed"
    assert _total(http, "CommunicationRequest") == 2


def test_a_callback_keeps_the_care_plan_request_the_task_was_for(http):
    plan_request = {"resourceType": "CommunicationRequest", "id": "cr1", "status": "active",
                    "subject": {"reference": "Patient/m1"}, "payload": [{"contentString": "Ask about the foot exam."}],
                    "authoredOn": "2026-02-05", "requester": {"reference": COORDINATOR},
                    "recipient": [{"reference": "PractitionerRole/pcp1"}]}
    task = {"resourceType": "Task", "id": "out1", "status": "ready", "intent": "order",
            "code": {"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call"}]},
            "focus": {"reference": "CommunicationRequest/cr1"}, "for": {"reference": "Patient/m1"},
            "authoredOn": "2026-02-05T09:00:00Z", "owner": {"reference": COORDINATOR}}
    _put_all(http, [plan_request, task])
    out = _logged(http, party="pcp", outcome="voicemail", callbackAt="2099-01-05T09:00:00Z")
    callback = _read(http, out["communicationRequest"]["reference"])
    assert callback["basedOn"] == [{"reference": "CommunicationRequest/cr1"}] and "replaces" not in callback
    assert callback["recipient"] == [{"reference": "PractitionerRole/pcp1"}]
    assert _read(http, "CommunicationRequest/cr1")["status"] == "active"  # not a callback: left as it is
    assert _read(http, "Task/out1")["focus"] == out["communicationRequest"]


def test_a_callback_after_the_tasks_deadline_is_refused(http):
    _put_all(http, [{"resourceType": "Task", "id": "out1", "status": "in-progress", "intent": "order",
                     "code": {"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call"}]},
                     "for": {"reference": "Patient/m1"}, "authoredOn": "2026-01-20T09:00:00Z",
                     "owner": {"reference": COORDINATOR}, "restriction": {"period": {"end": "2099-02-20"}}}])
    before = _counts(http)
    late = _log(http, party="member", outcome="voicemail", callbackAt="2099-02-21T09:00:00Z")
    assert late.status_code == 422 and expressions(late) == ["callbackAt"]
    assert _counts(http) == before
    on_the_day = _logged(http, party="member", outcome="voicemail", callbackAt="2099-02-20T16:00:00Z")
    assert _read(http, "Task/out1")["restriction"]["period"] == {"start": "2099-02-20T16:00:00Z", "end": "2099-02-20"}
    assert on_the_day["communicationRequest"]


# -- unable to reach ------------------------------------------------------------------------------------------------


def test_the_member_is_unable_to_reach_after_the_attempts_spanning_thirty_days(http):
    first = _ago(40)
    _put_all(http, [_past_call("c1", first), _past_call("c2", _ago(20), outcome="voicemail")])
    out = _logged(http, party="member", outcome="no-answer", callbackAt=_instant(_ago(-3)))
    assert (out["status"], out["attempts"]) == ("failed", 3)
    task = _read(http, out["task"]["reference"])
    assert task["status"] == "failed" and task["businessStatus"]["coding"] == [
        {"system": OUTCOME_SYSTEM, "code": "unable-to-reach", "display": "Unable to reach"}]
    today = datetime.now(UTC).date().isoformat()
    assert task["statusReason"] == {"text": f"3 calls without reaching the member between "
                                            f"{first.date().isoformat()} and {today}"}
    call = _read(http, out["communication"]["reference"])
    assert (call["status"], _outcome(call, "statusReason")) == ("not-done", "no-answer")  # the call's own outcome
    callback = _read(http, out["communicationRequest"]["reference"])
    assert callback["status"] == "revoked"  # the outreach stopped: the callback planned with it is given up
    for resource in (task, call, callback):
        _assert_meets_claimed_profile(http, resource)
    # A later outreach starts over, with a new Task and a new count.
    again = _logged(http, party="member", outcome="no-answer")
    assert again["task"] != out["task"] and (again["status"], again["attempts"]) == ("in-progress", 1)


def test_an_active_callback_is_revoked_when_the_member_is_unable_to_reach(http):
    scheduled = _logged(http, party="member", outcome="voicemail", callbackAt=_instant(_ago(-1)))
    _put_all(http, [_past_call("c1", _ago(45))])
    out = _logged(http, party="member", outcome="no-answer")
    assert (out["status"], out["attempts"]) == ("failed", 3)
    assert _read(http, scheduled["communicationRequest"]["reference"])["status"] == "revoked"


def test_attempts_within_thirty_days_do_not_make_the_member_unable_to_reach(http):
    _put_all(http, [_past_call("c1", _ago(29)), _past_call("c2", _ago(10))])
    out = _logged(http, party="member", outcome="no-answer")
    assert (out["status"], out["attempts"]) == ("in-progress", 3)
    assert _outcome(_read(http, out["task"]["reference"]), "businessStatus") == "no-answer"


def test_failed_calls_to_the_pcp_do_not_count(http):
    _put_all(http, [_past_call("c1", _ago(60), "pcp"), _past_call("c2", _ago(40), "pcp", "voicemail")])
    pcp = _logged(http, party="pcp", outcome="no-answer")
    assert (pcp["status"], pcp["attempts"]) == ("in-progress", 0)
    member = _logged(http, party="member", outcome="no-answer")
    assert (member["status"], member["attempts"]) == ("in-progress", 1)


def test_the_count_starts_again_after_the_member_was_reached(http):
    _put_all(http, [_past_call("c1", _ago(60)), _past_call("c2", _ago(50), outcome="callback-requested"),
                    _past_call("c3", _ago(40))])
    out = _logged(http, party="member", outcome="no-answer")
    assert (out["status"], out["attempts"]) == ("in-progress", 2)


def test_the_number_of_attempts_is_a_setting(http, served):
    _put_all(http, [_past_call("c1", _ago(35))])
    out = _logged(served(outreach_attempts=2), party="member", outcome="no-answer")
    assert (out["status"], out["attempts"]) == ("failed", 2)
    _put_all(http, [_member("m3", None)])
    _put_all(http, [{**_past_call("c2", _ago(35)), "subject": {"reference": "Patient/m3"},
                     "recipient": [{"reference": "Patient/m3"}]}])
    assert _logged(http, "m3", party="member", outcome="no-answer")["status"] == "in-progress"  # 3 by default


def test_the_setting_is_read_from_fhir_outreach_attempts(monkeypatch):
    monkeypatch.setenv("FHIR_OUTREACH_ATTEMPTS", "5")
    assert load_settings().outreach_attempts == 5
    monkeypatch.setenv("FHIR_OUTREACH_ATTEMPTS", "0")
    with pytest.raises(SettingsError, match="FHIR_OUTREACH_ATTEMPTS"):
        load_settings()
    monkeypatch.delenv("FHIR_OUTREACH_ATTEMPTS")
    assert load_settings().outreach_attempts == 3


# -- refusals -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("patient", "inputs", "status", "expression"), [
    ("nobody", {"party": "member", "outcome": "reached"}, 404, None),
    ("m1", {"outcome": "reached"}, 400, "party"),
    ("m1", {"party": "member"}, 400, "outcome"),
    ("m1", {"party": "caregiver", "outcome": "reached"}, 400, "party"),
    ("m1", {"party": "member", "outcome": "busy"}, 400, "outcome"),
    ("m1", {"party": "member", "outcome": "contact-made"}, 400, "outcome"),
    ("m1", {"party": "member", "outcome": "unable-to-reach"}, 400, "outcome"),
    ("m1", {"party": "member", "outcome": "voicemail", "callbackAt": "2020-01-01T09:00:00Z"}, 400, "callbackAt"),
    ("m1", {"party": "member", "outcome": "voicemail", "callbackAt": "2099-01-01T09:00:00"}, 400, "callbackAt"),
    ("m1", {"party": "member", "outcome": "voicemail", "callbackAt": "2099-01-01"}, 400, "callbackAt"),
    ("m1", {"party": "member", "outcome": "voicemail", "durationSeconds": -5}, 400, "durationSeconds"),
    ("m1", {"party": "specialist", "outcome": "reached"}, 400, "contact"),
    ("m1", {"party": "member", "outcome": "reached", "contact": "Practitioner/spec1"}, 400, "contact"),
    ("m1", {"party": "member", "outcome": "reached", "coordinator": "Patient/m1"}, 400, "coordinator"),
    ("m1", {"party": "member", "outcome": "reached", "coordinator": "Practitioner/nobody"}, 422, "coordinator"),
    ("m1", {"party": "specialist", "outcome": "reached", "contact": "Organization/nowhere"}, 422, "contact"),
    ("m2", {"party": "pcp", "outcome": "reached"}, 422, "party"),
    ("m1", {"party": "member", "outcome": "reached", "coordinator": None}, 422, "coordinator"),
])
def test_refusals_write_nothing(http, patient, inputs, status, expression):
    before = _counts(http)
    response = _log(http, patient, **inputs)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    if expression:
        assert expressions(response) == [expression]
    assert _counts(http) == before


def test_a_patient_who_is_not_a_program_member_is_refused(http):
    """Communication.subject must be a cw-member-patient (the profile's targetProfile): the write fails."""
    _put_all(http, [{"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe"}]}])
    response = _log(http, "p1", party="member", outcome="reached")
    assert response.status_code == 422 and expressions(response)[0] == "Communication.subject.reference"
    assert _counts(http) == dict.fromkeys(WRITTEN, 0)


def test_an_undeclared_input_is_refused(http):
    body = {"resourceType": "Parameters", "parameter": [{"name": "party", "valueCode": "member"},
                                                       {"name": "outcome", "valueCode": "reached"},
                                                       {"name": "mood", "valueString": "cheerful"}]}
    response = http.post("/fhir/Patient/m1/$log-outreach", json=body, headers=FHIR_JSON)
    assert response.status_code == 400 and expressions(response) == ["mood"]


def test_a_failure_after_the_call_was_written_rolls_everything_back(http):
    """The open Task breaks its profile once claimed (intent plan): the 422 comes after the Communication and
    the callback were written, and neither stays."""
    _put_all(http, [{"resourceType": "Task", "id": "out1", "status": "in-progress", "intent": "plan",
                     "code": {"coding": [{"system": PROGRAM_SYSTEM, "code": "outreach-call"}]},
                     "for": {"reference": "Patient/m1"}, "authoredOn": "2026-01-20T09:00:00Z"}])
    before = _counts(http)
    response = _log(http, party="member", outcome="voicemail", callbackAt="2099-01-05T09:00:00Z")
    assert response.status_code == 422, response.text
    assert "Task.intent" in expressions(response)
    assert _counts(http) == before and _read(http, "Task/out1")["meta"]["versionId"] == "1"


def test_get_is_not_allowed(http):
    response = http.get("/fhir/Patient/m1/$log-outreach", params={"party": "member", "outcome": "reached"})
    assert response.status_code == 405
    assert _counts(http) == dict.fromkeys(WRITTEN, 0)


# -- the definition -------------------------------------------------------------------------------------------------


def test_the_operation_definition_is_valid_and_listed(client):
    definition = json.loads(OPERATION.read_text())
    response = client.post("/fhir/OperationDefinition/$validate", json=definition, headers=FHIR_JSON)
    assert response.status_code == 200
    assert [i for i in response.json()["issue"] if i["severity"] in ("error", "fatal")] == []
    inputs = {p["name"] for p in definition["parameter"] if p["use"] == "in"}
    assert inputs == set(_VALUE)
    patient = next(r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "log-outreach", "definition": definition["url"]} in patient["operation"]
