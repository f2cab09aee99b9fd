"""Open care gaps of a member (`Patient/[id]/$care-gaps`), or of many members at once (`open_gaps`).

A gap is a test, reading or vaccine the member's active chronic conditions call for that is missing or
overdue, or a last result out of the range the guideline aims for. Each rule has a key (a code of the
program's cw-care-gap CodeSystem), a due date and the evidence in words:

- diabetes (ADA Standards of Care, glycaemic targets): an HbA1c every 6 months, every 3 when the last
  was above 9% (CMS122's poor control);
- hypertension (2017 ACC/AHA guideline): a blood pressure every 12 months; a last reading of 140/90 or
  more is not controlled (CMS165's threshold), to be seen again within a month;
- heart failure (2022 AHA/ACC/HFSA guideline): a body weight every 30 days, and an ejection fraction on
  record at least once, since the guideline asks for it at diagnosis and again only when the clinical
  picture changes (so "ever", not a fixed interval);
- chronic kidney disease (KDIGO 2024): an eGFR and a urine albumin/creatinine ratio every 12 months,
  each a gap of its own since the two together stage the disease;
- influenza (ACIP; chronic heart, kidney and metabolic disease put a member at high risk): for a member
  with any of those conditions, a vaccine given since 1 August of the season, while the season runs
  (August to March), due by the end of October.

A test is due on the day its interval after the last result ends, and the gap opens on that day; a
member who never had one is due on the day asked about. The member's conditions are their active
Conditions (clinicalStatus active, recurrence or relapse; not refuted or entered in error; begun by the
day) coded from the program's chronic-condition ValueSets (cw-chronic-*, ICD-10-CM and SNOMED CT),
expanded once per call through the terminology kernel. Records are read in bulk, one search per type for
each batch of members, under the caller's grant; dates are the calendar days written in the records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from fhir_server.care.candidates import months_before
from fhir_server.care.program import BASE, codings, day_of, effective, every, quantity, value_set_codes
from fhir_server.store.repository import Repository
from fhir_server.store.terminology import StoredTerminology

GAP_SYSTEM = BASE + "CodeSystem/cw-care-gap"
LOINC = "http://loinc.org"
CVX = "http://hl7.org/fhir/sid/cvx"
# The chronic condition groups the rules look at, each a ValueSet in profiles/.
GROUPS = {group: f"{BASE}ValueSet/cw-chronic-{group}" for group in ("diabetes", "hypertension", "heart-failure", "ckd")}
# LOINC codes of the results the rules read, by kind.
RESULTS = {
    "hba1c": ("4548-4", "17856-6", "4549-2"),  # haemoglobin A1c / total haemoglobin, in %
    "weight": ("29463-7",),
    "ejection-fraction": ("10230-1", "8806-2", "18043-0"),
    "egfr": ("33914-3", "48642-3", "48643-1", "62238-1", "98979-8"),
    "uacr": ("9318-7", "14959-1", "32294-1"),
}
BP_PANELS = ("85354-9", "55284-4")  # the blood pressure panel, and the older systolic-and-diastolic one
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
# CVX codes of seasonal influenza vaccines: unspecified, trivalent and quadrivalent; injectable, intradermal
# and intranasal; high-dose, adjuvanted, cell-culture and recombinant.
INFLUENZA_CVX = ("88", "111", "135", "140", "141", "144", "149", "150", "151", "153", "155", "158", "161", "166",
                 "168", "171", "185", "186", "197", "205")
HBA1C_LIMIT = Decimal(9)  # %: above it, poor control (CMS122)
BP_LIMITS = (Decimal(140), Decimal(90))  # mmHg: at or above either, not controlled (CMS165)
_FINAL = "final,amended,corrected"  # observation-status of a result that stands
_CLINICAL_ACTIVE = "active,recurrence,relapse"
_NOT_A_CONDITION = frozenset({"refuted", "entered-in-error"})
_BATCH = 100  # members per search, as the worklist batches them


@dataclass(frozen=True)
class Gap:
    code: str
    display: str
    condition: str  # Condition/id the gap comes from (the first by id, when there are several)
    due: date
    evidence: str
    last_result: str | None  # Observation/id of the last result, when there is one


@dataclass(frozen=True)
class _Result:
    day: date
    when: str  # the effective time as written: orders one day's results and pairs BP components
    reference: str
    value: Decimal | None
    diastolic: Decimal | None = None


@dataclass
class _Member:
    conditions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # group -> Condition/id
    results: dict[str, list[_Result]] = field(default_factory=lambda: defaultdict(list))  # kind -> results
    vaccinated: bool = False  # an influenza vaccine this season

    def condition(self, group: str) -> str | None:
        return min(self.conditions[group], default=None)

    def last(self, kind: str) -> _Result | None:
        return max(self.results[kind], key=lambda r: (r.day, r.when, r.reference), default=None)


@dataclass(frozen=True)
class _Open:
    condition: str
    due: date
    evidence: str
    last_result: str | None = None


@dataclass(frozen=True)
class _Rule:
    key: str
    display: str
    check: Callable[[_Member, date], Iterator[_Open]]


def member_gaps(repo: Repository, patient_id: str, as_of: date) -> list[Gap]:
    """The member's open care gaps on `as_of`, in the rules' order; 404 when the Patient is not there."""
    repo.read("Patient", patient_id)
    return open_gaps(repo, [f"Patient/{patient_id}"], as_of).get(f"Patient/{patient_id}", [])


def open_gaps(repo: Repository, patients: list[str], as_of: date) -> dict[str, list[Gap]]:
    """The open care gaps of each member (a Patient/id reference) that has any, read in batches."""
    groups = _groups(StoredTerminology(repo))
    found: dict[str, list[Gap]] = {}
    for start in range(0, len(patients), _BATCH):
        for patient, member in _read(repo, patients[start:start + _BATCH], as_of, groups).items():
            gaps = [Gap(rule.key, rule.display, o.condition, o.due, o.evidence, o.last_result)
                    for rule in _RULES for o in rule.check(member, as_of)]
            if gaps:
                found[patient] = gaps
    return found



# -- the rules ----------------------------------------------------------------------------------------------


def _overdue(member: _Member, kind: str, what: str, group: str, as_of: date,
             due_after: Callable[[date], date]) -> Iterator[_Open]:
    """A result of `kind` never taken, or due (`due_after` the last one) by `as_of`, for a member in `group`."""
    condition = member.condition(group)
    if condition is None:
        return
    last = member.last(kind)
    if last is None:
        yield _Open(condition, as_of, f"no {what} on record")
    elif due_after(last.day) <= as_of:
        yield _Open(condition, due_after(last.day), f"no {what} since {last.day}", last.reference)


def _months(n: int) -> Callable[[date], date]:
    return lambda day: months_before(day, -n)


def _hba1c_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    yield from _overdue(member, "hba1c", "HbA1c", "diabetes", as_of, _months(6))


def _hba1c_poor_control(member: _Member, as_of: date) -> Iterator[_Open]:
    condition, last = member.condition("diabetes"), member.last("hba1c")
    if condition and last and last.value is not None and last.value > HBA1C_LIMIT:
        yield _Open(condition, _months(3)(last.day), f"last HbA1c {last.value}% on {last.day}", last.reference)


def _bp_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    yield from _overdue(member, "bp", "blood pressure", "hypertension", as_of, _months(12))


def _bp_uncontrolled(member: _Member, as_of: date) -> Iterator[_Open]:
    condition, last = member.condition("hypertension"), member.last("bp")
    if condition is None or last is None:
        return
    readings = (last.value, last.diastolic)
    if any(value is not None and value >= limit for value, limit in zip(readings, BP_LIMITS, strict=True)):
        shown = "/".join("?" if value is None else str(value) for value in readings)
        yield _Open(condition, _months(1)(last.day), f"last blood pressure {shown} mmHg on {last.day}",
                    last.reference)


def _weight_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    yield from _overdue(member, "weight", "body weight", "heart-failure", as_of, lambda day: day + timedelta(days=30))


def _ejection_fraction_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    condition = member.condition("heart-failure")
    if condition and member.last("ejection-fraction") is None:
        yield _Open(condition, as_of, "no ejection fraction on record")


def _egfr_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    yield from _overdue(member, "egfr", "eGFR", "ckd", as_of, _months(12))


def _uacr_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    yield from _overdue(member, "uacr", "urine albumin/creatinine ratio", "ckd", as_of, _months(12))


def _influenza_vaccine_missing(member: _Member, as_of: date) -> Iterator[_Open]:
    start = _season_start(as_of)
    condition = min((c for group in GROUPS for c in member.conditions[group]), default=None)
    if start is not None and condition is not None and not member.vaccinated:
        yield _Open(condition, date(start.year, 10, 31), f"no influenza vaccine since {start}")


def _season_start(as_of: date) -> date | None:
    """1 August of the influenza season `as_of` falls in (August to March); None from April to July."""
    if as_of.month >= 8:
        return date(as_of.year, 8, 1)
    return date(as_of.year - 1, 8, 1) if as_of.month <= 3 else None


_RULES = [
    _Rule("diabetes-hba1c-missing", "Diabetes: no HbA1c in 6 months", _hba1c_missing),
    _Rule("diabetes-hba1c-poor-control", "Diabetes: last HbA1c above 9%", _hba1c_poor_control),
    _Rule("hypertension-bp-missing", "Hypertension: no blood pressure in 12 months", _bp_missing),
    _Rule("hypertension-bp-uncontrolled", "Hypertension: last blood pressure 140/90 or above", _bp_uncontrolled),
    _Rule("heart-failure-weight-missing", "Heart failure: no body weight in 30 days", _weight_missing),
    _Rule("heart-failure-ef-missing", "Heart failure: no ejection fraction on record", _ejection_fraction_missing),
    _Rule("ckd-egfr-missing", "Chronic kidney disease: no eGFR in 12 months", _egfr_missing),
    _Rule("ckd-uacr-missing", "Chronic kidney disease: no urine albumin/creatinine ratio in 12 months", _uacr_missing),
    _Rule("influenza-vaccine-missing", "No influenza vaccine this season", _influenza_vaccine_missing),
]


# -- reading in bulk ----------------------------------------------------------------------------------------


def _groups(terminology: StoredTerminology) -> dict[tuple[str, str], list[str]]:
    """The chronic condition groups of each (system, code), from the expanded ValueSets."""
    group_of: dict[tuple[str, str], list[str]] = defaultdict(list)
    for group, url in GROUPS.items():
        for key in value_set_codes(terminology, url, "the care gap rules"):
            group_of[key].append(group)
    return group_of


def _read(repo: Repository, batch: list[str], as_of: date,
          groups: dict[tuple[str, str], list[str]]) -> dict[str, _Member]:
    """The batch's members with their active chronic conditions, results and this season's flu vaccine."""
    members = {patient: _Member() for patient in batch}
    patients = ("patient", ",".join(batch))
    for condition in every(repo, "Condition", [patients, ("clinical-status", _CLINICAL_ACTIVE)]):
        member = members.get((condition.get("subject") or {}).get("reference"))
        if member is not None and _active(condition, as_of):
            for key in codings(condition.get("code")):
                for group in groups.get(key, ()):
                    member.conditions[group].append(f"Condition/{condition['id']}")
    _read_results(repo, members, patients, as_of)
    start = _season_start(as_of)
    if start is not None:
        for immunization in every(repo, "Immunization", [
                patients, ("status", "completed"), ("date", f"ge{start}"), ("date", f"le{as_of}"),
                ("vaccine-code", ",".join(f"{CVX}|{c}" for c in INFLUENZA_CVX))]):
            member = members.get((immunization.get("patient") or {}).get("reference"))
            day = day_of(immunization.get("occurrenceDateTime"))
            if member is not None and day is not None and start <= day <= as_of:
                member.vaccinated = True
    return members


def _read_results(repo: Repository, members: dict[str, _Member], patients: tuple[str, str], as_of: date) -> None:
    """The members' results by kind; blood pressures from panels, or from standalone systolic and diastolic
    readings, those taken at the same time making one blood pressure."""
    kinds = {code: kind for kind, codes in RESULTS.items() for code in codes}
    codes = ",".join(f"{LOINC}|{c}" for c in [*kinds, *BP_PANELS, SYSTOLIC, DIASTOLIC])
    standalone: dict[tuple[str, str], dict[str, _Result]] = defaultdict(dict)
    for observation in every(repo, "Observation", [patients, ("status", _FINAL), ("code", codes),
                                                    ("date", f"le{as_of}")]):
        patient, when = (observation.get("subject") or {}).get("reference"), effective(observation)
        day = day_of(when)
        if patient not in members or when is None or day is None or day > as_of:
            continue
        found = _Result(day, when, f"Observation/{observation['id']}", quantity(observation))
        loinc = {c for s, c in codings(observation.get("code")) if s == LOINC}
        if loinc & set(BP_PANELS):
            parts = {c: quantity(p) for p in observation.get("component") or [] for s, c in codings(p.get("code"))
                     if s == LOINC and c in (SYSTOLIC, DIASTOLIC)}
            members[patient].results["bp"].append(_Result(day, when, found.reference, parts.get(SYSTOLIC),
                                                          parts.get(DIASTOLIC)))
        for code in loinc & {SYSTOLIC, DIASTOLIC}:
            standalone[(patient, when)][code] = found
        for kind in {kinds[c] for c in loinc if c in kinds}:
            members[patient].results[kind].append(found)
    for (patient, when), reading in standalone.items():
        systolic, diastolic = reading.get(SYSTOLIC), reading.get(DIASTOLIC)
        first = systolic or diastolic
        if first is not None:
            members[patient].results["bp"].append(_Result(first.day, when, first.reference,
                                                          systolic.value if systolic else None,
                                                          diastolic.value if diastolic else None))



def _active(condition: dict, as_of: date) -> bool:
    """Neither refuted nor entered in error, and begun (onset, else recorded) by `as_of`."""
    if {c for _, c in codings(condition.get("verificationStatus"))} & _NOT_A_CONDITION:
        return False
    began = day_of(condition.get("onsetDateTime") or (condition.get("onsetPeriod") or {}).get("start")
                 or condition.get("recordedDate"))
    return began is None or began <= as_of


