"""Deterministic demo data for a health plan's chronic-care coordination program (PCMH).

`demo_bundle(members, seed)` returns one FHIR R4 transaction Bundle holding what the program's
records would hold:

- the health plan (Organization, type `pay`) and its primary-care practices (Organization, type
  `prov`), about two thirds of them in the program, recorded with the program-participation
  extension (status and, for participants, the period since they joined);
- PCPs (Practitioner with an NPI, PractitionerRole at a practice with a NUCC taxonomy code) and
  RN care coordinators (Practitioner, PractitionerRole at the plan);
- `members` Patients skewed towards older ages, each attributed to a PCP, with 1-4 chronic
  Conditions, active MedicationRequests that treat them (many members take five or more),
  ambulatory Encounters over the past two years, and the vital signs and labs taken at those
  visits. Some members are out of control (HbA1c > 9 %, BP >= 140/90), as the care-gap
  features need. Each member of a practice in the program is enrolled: an active EpisodeOfCare whose
  care manager is one of the coordinators, taken in turn (which is what lets a coordinator's `user/`
  token reach them); the others are candidates.
- for each enrolled member, the program's work so far: the outreach calls before enrolment (every
  third member was reached at the second try), a care plan the PCP approved a week after enrolment,
  with one goal per condition (due six months later; two in three of those past due were met), and a
  review every 90 days since, each step with its Provenance, so that the program's measures and the
  coordinators' worklists have something to show.

Codes, units and value distributions come from `knowledge/demo_catalog.json`. The same
(members, seed) gives byte-identical JSON: every choice comes from one `random.Random(seed)`,
every date from REFERENCE_DATE, every id and fullUrl from the seed and a stable key. Entries
are PUTs to stable ids, so loading the bundle twice leaves one copy; references between entries
use the `urn:uuid:` fullUrls, which the server rewrites (bundle.html#references).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

from fhir_server.care.careplan import APPROVED, REVIEW_INTERVAL, REVIEWED
from fhir_server.care.outreach import OUTCOME_SYSTEM, OUTCOMES, OUTREACH_CALL, PHONE

DEMO_TAG = {"system": "https://careweave.example.org/fhir/CodeSystem/careweave-tags", "code": "demo"}
REFERENCE_DATE = date(2026, 11, 1)
PARTICIPATION_URL = "https://careweave.example.org/fhir/StructureDefinition/program-participation"
MEMBER_ID_SYSTEM = "https://careweave.example.org/fhir/sid/member-id"
PROGRAM_CODE = {"system": "https://careweave.example.org/fhir/CodeSystem/cw-program",
                "code": "chronic-care-coordination", "display": "Chronic-care coordination program"}
COORDINATORS = 5

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NUCC = "http://nucc.org/provider-taxonomy"
NPI = "http://hl7.org/fhir/sid/us-npi"
THO = "http://terminology.hl7.org/CodeSystem/"
QUALIFICATION = THO + "v2-0360"
CATEGORY_DISPLAY = {"vital-signs": "Vital Signs", "laboratory": "Laboratory"}

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://careweave.example.org/demo")


@cache
def catalog() -> dict:
    """The clinical catalogue the generator draws from (read once; callers must not mutate it)."""
    return json.loads((Path(__file__).parent / "knowledge" / "demo_catalog.json").read_text("utf-8"))


def demo_bundle(members: int = 200, seed: int = 7) -> dict:
    """A FHIR R4 transaction Bundle (dict) holding the whole demo data set."""
    if members < 0:
        raise ValueError("members must not be negative")
    builder = _Builder(seed)
    plan = builder.health_plan()
    pcps = builder.practices_and_pcps()
    builder.coordinators(plan)
    for number in range(1, members + 1):
        builder.member(number, pcps)
    return {"resourceType": "Bundle", "type": "transaction", "entry": builder.entries}


def _coding(system: str, concept: dict) -> dict:
    return {"system": system, "code": concept["code"], "display": concept["display"]}


def _concept(system: str, concept: dict, text: str | None = None) -> dict:
    return {"coding": [_coding(system, concept)], "text": text or concept["display"]}


def _ref(full_url: str) -> dict:
    return {"reference": full_url}


def _days_ago(days: int) -> date:
    return REFERENCE_DATE - timedelta(days=days)


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _npi_check_digit(first_nine: str) -> str:
    """Luhn check digit over '80840' + the first nine digits, as the NPI standard defines it."""
    total = 0
    for position, char in enumerate(reversed("80840" + first_nine)):
        digit = int(char) * (2 if position % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


class _Builder:
    """Collects the bundle's entries; every random choice goes through `self.rng`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.entries: list[dict] = []
        self.npis: set[str] = set()
        self.catalog = catalog()
        self.nurses: list[str] = []  # the coordinators' Practitioner fullUrls
        self.participating: set[str] = set()  # the fullUrls of practices that agreed to take part
        self.plan = ""

    def add(self, resource: dict) -> str:
        """Append `resource` as an idempotent PUT entry; return its fullUrl."""
        rtype, rid = resource["resourceType"], resource["id"]
        full_url = f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{self.seed}/{rtype}/{rid}')}"
        resource["meta"] = {"tag": [dict(DEMO_TAG)]}
        self.entries.append(
            {"fullUrl": full_url, "resource": resource, "request": {"method": "PUT", "url": f"{rtype}/{rid}"}}
        )
        return full_url

    # --- people and places -------------------------------------------------------------------

    def npi(self) -> dict:
        while True:
            first_nine = f"{self.rng.choice('12')}{self.rng.randrange(10**8):08d}"
            if first_nine not in self.npis:
                break
        self.npis.add(first_nine)
        return {"system": NPI, "value": first_nine + _npi_check_digit(first_nine)}

    def name(self, gender: str, suffix: str | None = None) -> list[dict]:
        names = self.catalog["names"]
        name = {"use": "official", "family": self.rng.choice(names["family"]),
                "given": [self.rng.choice(names[gender])]}
        if suffix:
            name["suffix"] = [suffix]
        return [name]

    def address(self, place: dict, use: str, line: str | None = None) -> list[dict]:
        line = line or f"{self.rng.randint(100, 9899)} {self.rng.choice(self.catalog['streets'])}"
        return [{"use": use, "line": [line], "city": place["city"], "state": place["state"],
                 "postalCode": place["postalCode"], "country": "US"}]

    def phone(self, place: dict, use: str) -> list[dict]:
        # 555-0100..0199 is the range reserved for fictional numbers
        return [{"system": "phone", "value": f"({place['area_code']}) 555-01{self.rng.randrange(100):02d}", "use": use}]

    # --- organisations and staff ---------------------------------------------------------------

    def health_plan(self) -> str:
        plan = self.catalog["health_plan"]
        place = self.catalog["places"][plan["place"]]
        self.plan = self.add({
            "resourceType": "Organization", "id": "demo-org-plan", "active": True,
            "type": [_concept(THO + "organization-type", {"code": "pay", "display": "Payer"})],
            "name": plan["name"], "telecom": self.phone(place, "work"),
            "address": self.address(place, "work", plan["line"]),
        })
        return self.plan

    def practices_and_pcps(self) -> list[tuple[str, str]]:
        """Practices, two thirds of them in the program, each with 2-4 PCPs; returns (role, practice) fullUrls."""
        names = self.catalog["practices"]
        participating = set(self.rng.sample(range(len(names)), round(len(names) * 2 / 3)))
        pcps: list[tuple[str, str]] = []
        for index, practice_name in enumerate(names, 1):
            place = self.rng.choice(self.catalog["places"])
            if index - 1 in participating:
                status = [{"url": "status", "valueCode": "agreed"},
                          {"url": "period",
                           "valuePeriod": {"start": _days_ago(self.rng.randint(200, 2500)).isoformat()}}]
            else:
                status = [{"url": "status", "valueCode": "declined"}]
            practice = self.add({
                "resourceType": "Organization", "id": f"demo-org-practice-{index:02d}", "active": True,
                "extension": [{"url": PARTICIPATION_URL, "extension": status}],
                "identifier": [self.npi()],
                "type": [_concept(THO + "organization-type", {"code": "prov", "display": "Healthcare Provider"})],
                "name": practice_name, "telecom": self.phone(place, "work"), "address": self.address(place, "work"),
            })
            if index - 1 in participating:
                self.participating.add(practice)
            for _ in range(self.rng.randint(2, 4)):
                pcps.append((self.pcp(len(pcps) + 1, practice), practice))
        return pcps

    def pcp(self, number: int, practice: str) -> str:
        gender = self.rng.choice(("female", "male"))
        roles = self.catalog["roles"]
        practitioner = self.add({
            "resourceType": "Practitioner", "id": f"demo-pcp-{number:02d}", "active": True,
            "identifier": [self.npi()], "name": self.name(gender, "MD"), "gender": gender,
            "qualification": [{"code": _concept(QUALIFICATION, roles["qualification_md"])}],
        })
        specialty = self.rng.choice(roles["pcp_specialties"])
        return self.add({
            "resourceType": "PractitionerRole", "id": f"demo-pcp-role-{number:02d}", "active": True,
            "practitioner": _ref(practitioner), "organization": _ref(practice), "code": [_concept(NUCC, specialty)],
        })

    def coordinators(self, plan: str) -> None:
        """Telephonic RN care coordinators employed by the plan."""
        roles = self.catalog["roles"]
        place = self.catalog["places"][self.catalog["health_plan"]["place"]]
        for number in range(1, COORDINATORS + 1):
            gender = self.rng.choice(("female", "male"))
            nurse = self.add({
                "resourceType": "Practitioner", "id": f"demo-coordinator-{number:02d}", "active": True,
                "identifier": [self.npi()], "name": self.name(gender, "RN"), "gender": gender,
                "telecom": self.phone(place, "work"),
                "qualification": [{"code": _concept(QUALIFICATION, roles["qualification_rn"])}],
            })
            self.add({
                "resourceType": "PractitionerRole", "id": f"demo-coordinator-role-{number:02d}", "active": True,
                "practitioner": _ref(nurse), "organization": _ref(plan),
                "code": [_concept(SNOMED, roles["care_coordinator"])],
            })
            self.nurses.append(nurse)

    # --- members -------------------------------------------------------------------------------

    def member(self, number: int, pcps: list[tuple[str, str]]) -> None:
        rng, key = self.rng, f"{number:04d}"
        gender = rng.choice(("female", "male"))
        # a chronic-care population: mostly in their sixties and seventies
        age = min(95, max(35, round(rng.gauss(67, 11))))
        birth = _days_ago(age * 365 + rng.randrange(365))
        place = rng.choice(self.catalog["places"])
        role, practice = rng.choice(pcps)
        # multiplying by a number coprime to 10**9 keeps member ids unique yet scattered
        member_id = f"CW{(number * 7_368_787 + self.seed) % 10**9:09d}"
        patient = self.add({
            "resourceType": "Patient", "id": f"demo-pat-{key}", "active": True,
            "identifier": [{"use": "usual",
                            "type": _concept(THO + "v2-0203", {"code": "MB", "display": "Member Number"}),
                            "system": MEMBER_ID_SYSTEM, "value": member_id}],
            "name": self.name(gender), "telecom": self.phone(place, "home"), "gender": gender,
            "birthDate": birth.isoformat(), "address": self.address(place, "home"),
            "generalPractitioner": [_ref(role)],
        })
        conditions = self.conditions(key, patient, birth)
        self.medications(key, patient, role, conditions)
        self.encounters(key, patient, role, practice, gender, conditions)
        if practice in self.participating:  # the program enrols members through practices that agreed
            self.enrolment(number, key, patient, role, conditions)

    def enrolment(self, number: int, key: str, patient: str, pcp: str,
                  conditions: list[tuple[dict, str, date]]) -> None:
        """The member's program episode, managed by the coordinators in turn, and the work that led to it
        and followed it (no random draw, so that the rest of the data set stays as it was)."""
        start = _days_ago(30 + number * 37 % 700)
        nurse = self.nurses[(number - 1) % len(self.nurses)]
        self.add({
            "resourceType": "EpisodeOfCare", "id": f"demo-episode-{key}", "status": "active",
            "type": [{"coding": [PROGRAM_CODE], "text": "Chronic-care coordination program"}],
            "patient": _ref(patient),
            "managingOrganization": _ref(self.plan),
            "period": {"start": start.isoformat()},
            "careManager": _ref(nurse),
        })
        self.outreach_calls(number, key, patient, nurse, start)
        self.care_plan(number, key, patient, pcp, nurse, start + timedelta(days=7), conditions)

    def outreach_calls(self, number: int, key: str, patient: str, nurse: str, enrolled: date) -> None:
        """The calls that reached the member before enrolment (care/outreach.py's Communications)."""
        calls = [("no-answer", 5), ("reached", 2)] if number % 3 == 0 else [("reached", 2)]
        for index, (outcome, days_before) in enumerate(calls, start=1):
            self.add({
                "resourceType": "Communication", "id": f"demo-call-{key}-{index}",
                "status": "completed" if outcome == "reached" else "not-done",
                "statusReason": {"coding": [{"system": OUTCOME_SYSTEM, "code": outcome, "display": OUTCOMES[outcome]}]},
                "category": [{"coding": [OUTREACH_CALL]}], "medium": [{"coding": [PHONE]}],
                "subject": _ref(patient), "recipient": [_ref(patient)], "sender": _ref(nurse),
                "sent": _instant(datetime.combine(enrolled - timedelta(days=days_before), time(15))),
            })

    def care_plan(self, number: int, key: str, patient: str, pcp: str, nurse: str, approved: date,
                  conditions: list[tuple[dict, str, date]]) -> None:
        """The program care plan the PCP approved, a goal per condition, and its reviews every 90 days."""
        goals = []
        for index, (condition, url, _) in enumerate(conditions, start=1):
            due = approved + timedelta(days=180)
            met = due < REFERENCE_DATE and (number + index) % 3 != 0
            achievement = ("achieved", "Achieved") if met else ("in-progress", "In Progress")
            goals.append(self.add({
                "resourceType": "Goal", "id": f"demo-goal-{key}-{index}",
                "lifecycleStatus": "completed" if met else "active",
                "achievementStatus": _concept(THO + "goal-achievement",
                                              {"code": achievement[0], "display": achievement[1]}),
                "description": {"text": f"{condition['snomed']['display']}: under control, as agreed with the PCP"},
                "subject": _ref(patient), "target": [{"dueDate": due.isoformat()}],
                "statusDate": (due if met else approved).isoformat(), "addresses": [_ref(url)],
            }))
        steps = [approved + REVIEW_INTERVAL * n for n in range((REFERENCE_DATE - approved).days // 90 + 1)]
        steps = [day for day in steps if day < REFERENCE_DATE]
        plan = self.add({
            "resourceType": "CarePlan", "id": f"demo-careplan-{key}", "status": "active", "intent": "plan",
            "category": [{"coding": [PROGRAM_CODE]}], "title": "Chronic-care coordination plan",
            "subject": _ref(patient), "period": {"start": approved.isoformat()}, "author": _ref(nurse),
            "addresses": [_ref(url) for _, url, _ in conditions], "goal": [_ref(goal) for goal in goals],
            "note": [{"time": _instant(datetime.combine(day, time(10))), "text": APPROVED if n == 0 else REVIEWED}
                     for n, day in enumerate(steps)],
        })
        for n, day in enumerate(steps):
            self.add({
                "resourceType": "Provenance", "id": f"demo-plan-step-{key}-{n}", "target": [_ref(plan)],
                "recorded": _instant(datetime.combine(day, time(10))),
                "activity": {"coding": [{"system": PROGRAM_CODE["system"],
                                         "code": "plan-approval" if n == 0 else "plan-review"}]},
                "agent": [{"who": _ref(pcp if n == 0 else nurse)}],
            })

    def conditions(self, key: str, patient: str, birth: date) -> list[tuple[dict, str, date]]:
        """1-4 distinct chronic conditions drawn by prevalence; returns (catalogue entry, fullUrl, onset)."""
        rng = self.rng
        pool = list(self.catalog["conditions"])
        earliest = max(birth + timedelta(days=30 * 365), _days_ago(20 * 365))
        chosen = []
        for index in range(1, rng.choices((1, 2, 3, 4), weights=(2, 3, 3, 2))[0] + 1):
            condition = rng.choices(pool, weights=[c["prevalence"] for c in pool])[0]
            pool.remove(condition)
            onset = earliest + timedelta(days=rng.randrange((_days_ago(90) - earliest).days))
            url = self.add({
                "resourceType": "Condition", "id": f"demo-cond-{key}-{index}",
                "clinicalStatus": _concept(THO + "condition-clinical", {"code": "active", "display": "Active"}),
                "verificationStatus": _concept(THO + "condition-ver-status",
                                               {"code": "confirmed", "display": "Confirmed"}),
                "category": [_concept(THO + "condition-category",
                                      {"code": "problem-list-item", "display": "Problem List Item"})],
                "code": {"coding": [_coding(SNOMED, condition["snomed"]), _coding(ICD10CM, condition["icd10cm"])],
                         "text": condition["snomed"]["display"]},
                "subject": _ref(patient), "onsetDateTime": onset.isoformat(),
            })
            chosen.append((condition, url, onset))
        return chosen

    def medications(self, key: str, patient: str, role: str, conditions: list[tuple[dict, str, date]]) -> None:
        """Active orders for each condition, at most one drug per class; a drug lists every condition it treats."""
        rng = self.rng
        held: list[tuple[dict, list[tuple[dict, str, date]]]] = []
        for condition in conditions:
            ckey = condition[0]["key"]
            wanted = rng.randint(*condition[0]["medications_per_member"])
            for medication, reasons in held:
                if ckey in medication["treats"]:
                    reasons.append(condition)
                    wanted -= 1
            classes = [medication["class"] for medication, _ in held]
            candidates = [m for m in self.catalog["medications"] if ckey in m["treats"] and m["class"] not in classes]
            while wanted > 0 and candidates:
                pick = rng.choices(candidates, weights=[m["weight"] for m in candidates])[0]
                held.append((pick, [condition]))
                candidates = [m for m in candidates if m["class"] != pick["class"]]
                wanted -= 1
        for index, (medication, reasons) in enumerate(held, 1):
            # the last renewal falls in the past year, never before the diagnosis it treats
            authored = max(_days_ago(rng.randint(7, 365)), max(onset for _, _, onset in reasons))
            self.add({
                "resourceType": "MedicationRequest", "id": f"demo-medrx-{key}-{index:02d}",
                "status": "active", "intent": "order",
                "medicationCodeableConcept": _concept(RXNORM, medication["rxnorm"], medication["text"]),
                "subject": _ref(patient), "authoredOn": authored.isoformat(), "requester": _ref(role),
                "reasonReference": [_ref(url) for _, url, _ in reasons],
                "dosageInstruction": [{"text": medication["dosage"]}],
            })

    def encounters(self, key: str, patient: str, role: str, practice: str, gender: str,
                   conditions: list[tuple[dict, str, date]]) -> None:
        """3-8 office visits over the past two years, each with its vital signs and any labs drawn."""
        rng = self.rng
        held = {condition[0]["key"] for condition in conditions}
        stature = self.catalog["height_m"][gender]
        height = rng.gauss(stature["mean"], stature["sd"])
        usual = self.usual_values(held, height)
        types = self.catalog["encounter_types"]
        visits = sorted(rng.sample(range(1, 731), rng.randint(3, 8)), reverse=True)
        for index, days in enumerate(visits, 1):
            kind = rng.choices(types, weights=[t["weight"] for t in types])[0]
            day = _days_ago(days)
            # office hours (roughly 08:00-16:45 US Eastern), written in UTC so no zone rules are needed
            start = datetime(day.year, day.month, day.day, rng.randint(13, 20), rng.choice((0, 15, 30, 45)))
            encounter = {
                "resourceType": "Encounter", "id": f"demo-enc-{key}-{index:02d}", "status": "finished",
                "class": {"system": THO + "v3-ActCode", "code": "AMB", "display": "ambulatory"},
                "type": [_concept(SNOMED, kind["snomed"], kind["text"])], "subject": _ref(patient),
                "participant": [{"individual": _ref(role)}],
                "period": {"start": _instant(start), "end": _instant(start + timedelta(minutes=rng.randint(15, 40)))},
                "serviceProvider": _ref(practice),
            }
            if kind["has_reason"]:
                encounter["reasonReference"] = [_ref(rng.choice(conditions)[1])]
            visit = self.add(encounter)
            self.observations(f"{key}-{index:02d}", patient, visit, _instant(start), held, usual, height)

    def usual_values(self, held: set[str], height: float) -> dict[str, float]:
        """Each member's usual value per measured quantity; visits scatter around it."""
        usual = {}
        for observation in self.catalog["observations"]:
            for part in observation.get("components", [observation]):
                if "value" in part:
                    spec = part["value"]
                    # the first condition-specific distribution the member qualifies for wins
                    dist = next((d for d in spec.get("by_condition", []) if d["condition"] in held), spec)
                    value = self.rng.gauss(dist["mean"], dist["sd"])
                    # weight is drawn as a BMI and scaled by stature, so tall and short members both look real
                    scaled = value * height**2 if spec.get("per_height_squared") else value
                    usual[_value_key(observation, part)] = scaled
        return usual

    def measure(self, observation: dict, part: dict, usual: dict[str, float], taken: dict) -> float:
        """One reading: the member's usual value plus visit-to-visit scatter, kept within bounds."""
        spec, key = part["value"], _value_key(observation, part)
        centre = usual[key]
        if "follows" in spec:
            # diastolic moves with the systolic reading, about half as much, around the member's own offset
            centre += spec["slope"] * taken[f"{observation['key']}/{spec['follows']}"]
        value = min(spec["max"], max(spec["min"], self.rng.gauss(centre, spec["visit_sd"])))
        taken[key] = round(value, spec["decimals"]) if spec["decimals"] else round(value)
        return taken[key]

    def observations(self, key: str, patient: str, visit: str, when: str, held: set[str],
                     usual: dict[str, float], height: float) -> None:
        """The visit's vital signs, and the labs drawn for the member's conditions at their usual rate."""
        taken: dict[str, float] = {}
        for observation in self.catalog["observations"]:
            wanted = observation["for_conditions"]
            if wanted and not any(c in held for c in wanted):
                continue
            if self.rng.random() >= observation["frequency"]:
                continue
            category = {"code": observation["category"], "display": CATEGORY_DISPLAY[observation["category"]]}
            resource = {
                "resourceType": "Observation", "id": f"demo-obs-{key}-{observation['key']}", "status": "final",
                "category": [_concept(THO + "observation-category", category)],
                "code": _concept(LOINC, observation["loinc"], observation["text"]),
                "subject": _ref(patient), "encounter": _ref(visit), "effectiveDateTime": when,
            }
            if "components" in observation:
                resource["component"] = [
                    {"code": _concept(LOINC, part["loinc"]),
                     "valueQuantity": _quantity(self.measure(observation, part, usual, taken), part["unit"])}
                    for part in observation["components"]
                ]
            elif "bmi_from" in observation:
                # the catalogue lists the weight before the BMI worked out from it
                resource["valueQuantity"] = _quantity(round(taken[observation["bmi_from"]] / height**2, 1),
                                                      observation["unit"])
            else:
                resource["valueQuantity"] = _quantity(self.measure(observation, observation, usual, taken),
                                                      observation["unit"])
            self.add(resource)


def _value_key(observation: dict, part: dict) -> str:
    return observation["key"] if part is observation else f"{observation['key']}/{part['key']}"


def _quantity(value: float, unit: dict) -> dict:
    return {"value": value, "unit": unit["display"], "system": UCUM, "code": unit["code"]}
