from fhirjson import FHIR_JSON


def test_create_then_read(client):
    created = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=FHIR_JSON)
    assert created.status_code == 201
    rid = created.json()["id"]
    read = client.get(f"/fhir/Patient/{rid}")
    assert read.status_code == 200
    assert read.json()["gender"] == "female"
    assert read.headers["etag"] == 'W/"1"'
