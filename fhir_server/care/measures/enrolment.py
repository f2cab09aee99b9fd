"""The program's reach: members identified, practices taking part, and the enrolment rate (docs/measures.md).

- cw-members-identified (cohort of members): those who qualify for the program on the period's last day,
  under the deployment's candidate rules (care/candidates.py). Members already enrolled are not candidates,
  so they are counted by the enrolment rate instead.
- cw-practices-participating (proportion of practices): of the practices asked to take part (any
  program-participation status), those whose agreement covers some of the period.
- cw-enrollment-rate (proportion of members): of the members the program called in the period, or enrolled in
  it, those whose program EpisodeOfCare began in the period.
"""

from __future__ import annotations

from fhir_server.care.candidates import find_candidates, load_rules
from fhir_server.care.measures.report import Evaluation, Tally
from fhir_server.care.measures.subjects import Practices, patients, practice_of
from fhir_server.care.outreach import OUTREACH_CALL
from fhir_server.care.program import PARTICIPATION_URL, PROGRAM, PROGRAM_SYSTEM, day_of, every, extension_parts

IDENTIFIED = "https://careweave.example.org/fhir/Measure/cw-members-identified"
PRACTICES = "https://careweave.example.org/fhir/Measure/cw-practices-participating"
ENROLLMENT = "https://careweave.example.org/fhir/Measure/cw-enrollment-rate"
_NOT_HELD = frozenset({"entered-in-error", "cancelled"})


def members_identified(evaluation: Evaluation) -> list[Tally]:
    ranking = find_candidates(evaluation.repo, load_rules(evaluation.program.candidate_rules), evaluation.period.end,
                              count=10**9)
    chosen = [c.patient for c in ranking.candidates if evaluation.members.includes(c.patient)]
    tally = Tally({"initial-population": set(chosen)})
    tally.strata.update(practice_of(evaluation.repo, set(chosen)))
    return [tally]


def practices_participating(evaluation: Evaluation) -> list[Tally]:
    period = evaluation.period
    wanted = None
    if evaluation.members.patients is not None:
        practices = Practices(evaluation.repo)
        wanted = {practices.of(p) for p in patients(evaluation.repo, evaluation.members).values()}
    tally = Tally({code: set() for code in ("initial-population", "denominator", "numerator")})
    for organization in every(evaluation.repo, "Organization", []):
        reference = f"Organization/{organization['id']}"
        status, start, end = _participation(organization)
        if status is None or wanted is not None and reference not in wanted:
            continue
        tally.populations["initial-population"].add(reference)
        tally.populations["denominator"].add(reference)
        tally.add_evidence(reference, reference)
        began, ended = day_of(start), day_of(end)
        if status == "agreed" and (began is None or began <= period.end) and (ended is None or ended >= period.start):
            tally.populations["numerator"].add(reference)
    return [tally]


def enrollment_rate(evaluation: Evaluation) -> list[Tally]:
    repo, period = evaluation.repo, evaluation.period
    called, enrolled = set(), set()
    for call in every(repo, "Communication", [("category", f"{OUTREACH_CALL['system']}|{OUTREACH_CALL['code']}"),
                                              ("sent", f"ge{period.start}"), ("sent", f"le{period.end}")]):
        member = (call.get("subject") or {}).get("reference")
        if evaluation.members.includes(member) and call.get("status") != "entered-in-error":
            called.add(member)
    for episode in every(repo, "EpisodeOfCare", [("type", f"{PROGRAM_SYSTEM}|{PROGRAM['code']}")]):
        member = (episode.get("patient") or {}).get("reference")
        began = day_of((episode.get("period") or {}).get("start"))
        if evaluation.members.includes(member) and episode.get("status") not in _NOT_HELD and began is not None \
                and period.start <= began <= period.end:
            enrolled.add(member)
    offered = called | enrolled
    tally = Tally({"initial-population": set(offered), "denominator": set(offered), "numerator": enrolled})
    tally.strata.update(practice_of(evaluation.repo, offered))
    return [tally]


def _participation(organization: dict) -> tuple[str | None, str | None, str | None]:
    """The practice's participation status and the period its agreement covers."""
    parts = extension_parts(organization, PARTICIPATION_URL)
    covered = parts.get("period", {}).get("valuePeriod") or {}
    return parts.get("status", {}).get("valueCode"), covered.get("start"), covered.get("end")