"""A member's medication review (`Patient/[id]/$medication-review`, docs/clinical-knowledge.md).

The active medicines of the record, prescribed (MedicationRequest, status active) or reported by the member
or claims (MedicationStatement, active or intended), are reconciled into one list by RxNorm ingredient:
a clinical drug code maps to its ingredients through knowledge/ingredient_map.json, and a code that is
itself an ingredient we know maps to itself. The list is then checked against the knowledge files:
interactions, the same class twice, polypharmacy, labs the labels ask for with no recent result, a lab
value under a drug's limit (metformin and eGFR), and drugs that call for care at 65 and over. Each
finding is a DetectedIssue (detectedissue.html) coded from v3 ActCode, whose identifier names the knowledge
entry and the ingredients, so that persisting the same finding twice writes it once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import combinations
from pathlib import Path

from fhir_server.care.program import BASE, PROGRAM, PROGRAM_SYSTEM, instant, now, search
from fhir_server.fhir.errors import FhirError
from fhir_server.store.repository import Repository

KNOWLEDGE = Path(__file__).with_name("knowledge")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
FINDING_SYSTEM = BASE + "sid/medication-review-finding"
POLYPHARMACY = 5
# Each kind of finding: its _ActDetectedIssueCode (v3 ActCode) and the code's text. Polypharmacy has no code
# of its own, so it takes DACT, the parent of the drug-therapy issues.
KINDS = {
    "interaction": ("DRG", "Drug Interaction Alert", "Drug interaction"),
    "duplication": ("DUPTHPY", "Duplicate Therapy Alert", "Therapeutic duplication"),
    "polypharmacy": ("DACT", "drug action detected issue", "Polypharmacy"),
    "monitoring": ("LAB", "Lab Alert", "Monitoring lab missing"),
    "lab-limit": ("LAB", "Lab Alert", "Lab value under the drug's limit"),
    "older-adult": ("AGE", "Age Alert", "High-risk drug at 65 and over"),
}
_OBSERVED = "final,amended,corrected"
_OPEN_PLAN = "active,draft"
_OPEN_ISSUE = ("registered", "preliminary", "final", "amended", "corrected")


@dataclass(frozen=True)
class Knowledge:
    ingredient_map: dict[str, list[dict]]
    classes: dict[str, dict]
    interactions: list[dict]
    monitoring: list[dict]
    limits: list[dict]
    older_age: int
    older: list[dict]
    ingredients: dict[str, str]  # every RxCUI the knowledge names -> the ingredient's name


@cache
def knowledge() -> Knowledge:
    """The knowledge files, read once."""
    def load(name: str) -> dict:
        return json.loads((KNOWLEDGE / name).read_text(encoding="utf-8"))
    mapping = {code: entry["ingredients"] for code, entry in load("ingredient_map.json")["codes"].items()}
    classes = load("drug_classes.json")["classes"]
    monitoring = load("monitoring.json")
    older = load("older_adults.json")
    interactions = load("drug_interactions.json")["interactions"]
    sides = [*(r[s] for r in interactions for s in ("a", "b")),
             *(e["drugs"] for e in [*monitoring["monitoring"], *monitoring["limits"], *older["drugs"]])]
    named = [*mapping.values(), *(c["members"] for c in classes.values()), *(s["ingredients"] for s in sides)]
    known = {i["rxcui"]: i["name"] for ingredients in named for i in ingredients if i["rxcui"]}
    return Knowledge(mapping, classes, interactions, monitoring["monitoring"], monitoring["limits"],
                     older["ageYears"], older["drugs"], known)


def _key(ingredient: dict) -> str:
    """An ingredient's identity: its RxCUI, or its name where we record none."""
    return ingredient["rxcui"] or "name:" + ingredient["name"]


@dataclass
class Medicine:
    """One reconciled ingredient and the records it comes from."""

    ingredient: dict
    sources: list[str] = field(default_factory=list)


@dataclass
class Review:
    medicines: dict[str, Medicine]
    unmapped: list[tuple[str, str]]
    issues: list[dict]

    def summary(self) -> str:
        """Counts: ingredients, the records they come from, unmapped records, and issues by kind."""
        counts = {kind: sum(1 for i in self.issues if i["code"]["text"] == text) for kind, (*_, text) in KINDS.items()}
        found = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "none"
        records = {s for m in self.medicines.values() for s in m.sources}
        return (f"{len(self.medicines)} ingredients from {len(records)} records; {len(self.unmapped)} unmapped; "
                f"issues: {found}")


def review(repo: Repository, patient_id: str, persist: bool) -> Review:
    """Review the member's medicines; with `persist`, write the findings and add them to the care plan."""
    patient = repo.read("Patient", patient_id).resource()
    member = f"Patient/{patient_id}"
    records = search(repo, "MedicationRequest", [("patient", member), ("status", "active")], count=1000) + \
        search(repo, "MedicationStatement", [("patient", member), ("status", "active,intended")], count=1000)
    medicines: dict[str, Medicine] = {}
    unmapped: list[tuple[str, str]] = []
    for record in records:
        reference = f"{record['resourceType']}/{record['id']}"
        concept = _medication_concept(repo, record)
        ingredients = _ingredients(concept)
        if not ingredients:
            unmapped.append((reference, _describe(concept)))
        for ingredient in ingredients:
            medicines.setdefault(_key(ingredient), Medicine(ingredient)).sources.append(reference)
    found = _Findings(member, medicines)
    _interactions(found)
    _duplications(found)
    if len(medicines) >= POLYPHARMACY:
        found.add("polypharmacy", "polypharmacy", "low", medicines, f"{len(medicines)} distinct active ingredients: "
                  f"{_names(medicines)}. Review with the member and the PCP whether each is still needed.")
    _monitoring(repo, found)
    _limits(repo, found)
    _older_adult(patient, found)
    if persist:
        found.issues = _persist(repo, member, found.issues)
    return Review(medicines, unmapped, found.issues)


def _medication_concept(repo: Repository, record: dict) -> dict:
    """The medication's CodeableConcept: the record's own, or its Medication's code (contained or on the server)."""
    if "medicationCodeableConcept" in record:
        return record["medicationCodeableConcept"]
    target = (record.get("medicationReference") or {}).get("reference") or ""
    if target.startswith("#"):
        contained = next((r for r in record.get("contained") or [] if r.get("id") == target[1:]), {})
        return contained.get("code") or {}
    if target.startswith("Medication/"):
        try:
            return repo.read("Medication", target.partition("/")[2]).resource().get("code") or {}
        except FhirError as exc:
            if exc.status in (404, 410):  # a dangling reference: the medicine is reported as unmapped
                return {}
            raise
    return {}


def _ingredients(concept: dict) -> list[dict]:
    """The ingredients of the first RxNorm coding we know: a clinical drug's, or an ingredient code itself."""
    known = knowledge()
    for coding in concept.get("coding") or []:
        if coding.get("system") != RXNORM:
            continue
        code = coding.get("code")
        if code in known.ingredient_map:
            return known.ingredient_map[code]
        if code in known.ingredients:
            return [{"rxcui": code, "name": known.ingredients[code]}]
    return []


def _describe(concept: dict) -> str:
    codings = concept.get("coding") or []
    return concept.get("text") or "; ".join(f"{c.get('system')}|{c.get('code')} {c.get('display') or ''}".strip()
                                            for c in codings) or "no medication code"


def _names(medicines: dict[str, Medicine]) -> str:
    return ", ".join(sorted(m.ingredient["name"] for m in medicines.values()))


class _Findings:
    """The member's findings so far, as DetectedIssues."""

    def __init__(self, member: str, medicines: dict[str, Medicine]) -> None:
        self.member = member
        self.medicines = medicines
        self.issues: list[dict] = []

    def add(self, kind: str, entry_id: str, severity: str, involved: dict[str, Medicine], detail: str) -> None:
        code, display, text = KINDS[kind]
        keys = "+".join(sorted(involved))
        implicated = sorted({s for m in involved.values() for s in m.sources})
        self.issues.append({
            "resourceType": "DetectedIssue", "status": "final",
            "code": {"coding": [{"system": ACT_CODE, "code": code, "display": display}], "text": text},
            "severity": severity, "patient": {"reference": self.member}, "identifiedDateTime": now(),
            "identifier": [{"system": FINDING_SYSTEM, "value": f"{entry_id}:{keys}"}],
            "implicated": [{"reference": r} for r in implicated], "detail": detail})

    def having(self, drugs: dict) -> dict[str, Medicine]:
        """The member's medicines that a knowledge entry's `drugs` (ingredients and classes) name."""
        return {k: m for k, m in self.medicines.items() if _in_side(k, drugs)}


def _in_side(key: str, side: dict) -> bool:
    classes = knowledge().classes
    return key in {_key(i) for i in side["ingredients"]} or any(
        key in {_key(member) for member in classes[name]["members"]} for name in side["classes"])


def _interactions(found: _Findings) -> None:
    """Each pair of the member's ingredients that an interaction names, one side each (knowledge/drug_interactions)."""
    for rule in knowledge().interactions:
        for x, y in combinations(sorted(found.medicines), 2):
            a, b = rule["a"], rule["b"]
            if (_in_side(x, a) and _in_side(y, b)) or (_in_side(y, a) and _in_side(x, b)):
                pair = {k: found.medicines[k] for k in (x, y)}
                found.add("interaction", rule["id"], rule["severity"], pair,
                          f"{_names(pair)}: {rule['mechanism']} {rule['management']} Source: {rule['source']}.")


def _duplications(found: _Findings) -> None:
    """Two or more different ingredients of one therapeutic class (classes marked `duplication`)."""
    for code, drug_class in knowledge().classes.items():
        if not drug_class["duplication"]:
            continue
        same = found.having({"ingredients": [], "classes": [code]})
        if len(same) >= 2:
            found.add("duplication", f"class-{code}", "moderate", same,
                      f"{_names(same)} are all {drug_class['name'].lower()}. Ask the prescribers whether more than "
                      f"one is meant; if one replaced another, the old one should be stopped.")


def _monitoring(repo: Repository, found: _Findings) -> None:
    """A drug whose label asks for a lab that has no result within the interval (knowledge/monitoring.json)."""
    for entry in knowledge().monitoring:
        drugs = found.having(entry["drugs"])
        if not drugs:
            continue
        since = (datetime.now(UTC) - timedelta(days=entry["intervalDays"])).date().isoformat()
        for lab in entry["labs"]:
            if not search(repo, "Observation", [("patient", found.member), ("code", _codes(lab["loinc"])),
                                                ("status", _OBSERVED), ("date", f"ge{since}")], count=1):
                found.add("monitoring", f"{entry['id']}/{lab['name']}", "moderate", drugs,
                          f"{_names(drugs)}: no {lab['name']} result (LOINC {', '.join(lab['loinc'])}) in the last "
                          f"{entry['intervalDays']} days. Arrange the test with the PCP. Source: {entry['source']}.")


def _limits(repo: Repository, found: _Findings) -> None:
    """A drug taken while the member's latest result of a lab is under the drug's limit (metformin and eGFR)."""
    for entry in knowledge().limits:
        drugs = found.having(entry["drugs"])
        if not drugs:
            continue
        results = search(repo, "Observation", [("patient", found.member), ("code", _codes(entry["lab"]["loinc"])),
                                               ("status", _OBSERVED)], count=1000)
        dated = [(instant(d), o) for o in results if (d := o.get("effectiveDateTime") or o.get("issued"))]
        if not dated:
            continue
        when, latest = max(dated, key=lambda pair: pair[0])
        value = (latest.get("valueQuantity") or {}).get("value")
        if isinstance(value, int | float) and value < entry["below"]:
            found.add("lab-limit", entry["id"], entry["severity"], drugs,
                      f"{_names(drugs)} with {entry['lab']['name']} {value} {entry['unit']} on "
                      f"{when.date().isoformat()} (under {entry['below']}): {entry['concern']} "
                      f"{entry['management']} Source: {entry['source']}.")


def _older_adult(patient: dict, found: _Findings) -> None:
    """Drugs that call for care at 65 and over, from the member's birthDate (knowledge/older_adults.json)."""
    known = knowledge()
    born = patient.get("birthDate")
    if not born:
        return
    birth, today = instant(born).date(), datetime.now(UTC).date()
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    if age < known.older_age:
        return
    for entry in known.older:
        drugs = found.having(entry["drugs"])
        if drugs:
            found.add("older-adult", entry["id"], entry["severity"], drugs,
                      f"{_names(drugs)} at age {age}: {entry['concern']} {entry['management']} "
                      f"Source: {entry['source']}.")


def _codes(loinc: Iterable[str]) -> str:
    return ",".join(f"{LOINC}|{code}" for code in loinc)


def _persist(repo: Repository, member: str, issues: list[dict]) -> list[dict]:
    """Write each finding unless the same one is still open, and add them to the member's program care plan."""
    stored = []
    for issue in issues:
        identifier = issue["identifier"][0]
        # R4 has no DetectedIssue status search parameter: open is filtered here (not withdrawn, not mitigated).
        same = [i for i in search(repo, "DetectedIssue", [
            ("patient", member), ("identifier", f"{identifier['system']}|{identifier['value']}")])
            if i.get("status") in _OPEN_ISSUE and not i.get("mitigation")]
        stored.append(same[0] if same else repo.create(issue)[0].resource())
    plans = search(repo, "CarePlan", [("subject", member), ("status", _OPEN_PLAN),
                                      ("category", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")], count=1)
    if plans and stored:
        plan = copy.deepcopy(plans[0])
        cited = {(r or {}).get("reference") for r in plan.get("supportingInfo") or []}
        added = [f"DetectedIssue/{i['id']}" for i in stored if f"DetectedIssue/{i['id']}" not in cited]
        if added:
            plan["supportingInfo"] = [*(plan.get("supportingInfo") or []), *({"reference": r} for r in added)]
            repo.update("CarePlan", plan["id"], plan)
    return stored
